package catalog

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// LinkError is a package file that is not a regular file or directory: a
// symbolic link (which could point at any file of the machine, such as a
// kubeconfig, and have it rendered into the workspace), a device or a pipe.
// Every catalog source refuses them.
type LinkError struct {
	// Catalog names the catalog (its name, path or URL).
	Catalog string
	Package string
	Version string
	// File is the path inside the package version.
	File string
	Mode fs.FileMode
}

func (e *LinkError) Error() string {
	what := "a symbolic link"
	if e.Mode&fs.ModeSymlink == 0 {
		what = fmt.Sprintf("not a regular file (mode %s)", e.Mode.Type())
	}
	return fmt.Sprintf("catalog %s: package %s %s: %s is %s; packages may hold only regular files and directories, so replace it with a copy of the file", e.Catalog, e.Package, e.Version, e.File, what)
}

// allowed reports whether a package may hold a file of this mode.
func allowed(m fs.FileMode) bool { return m.IsDir() || m.IsRegular() }

// checkTree walks dir of fsys and returns a *LinkError for its first entry that
// is neither a regular file nor a directory. WalkDir does not follow links.
func checkTree(fsys fs.FS, dir string, e LinkError) error {
	return fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !allowed(d.Type()) {
			e.File = strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
			if e.File == "" {
				e.File = "."
			}
			e.Mode = d.Type()
			return &e
		}
		return nil
	})
}

// confinedFS serves the files of one package version and refuses to open any
// path that passes through a link or names a special file, so what a package
// renders can only come from inside it, even when the tree changes after it
// was indexed.
type confinedFS struct {
	fsys fs.FS
	err  LinkError
}

func confine(fsys fs.FS, catalog, pkg, version string) fs.FS {
	return &confinedFS{fsys: fsys, err: LinkError{Catalog: catalog, Package: pkg, Version: version}}
}

// Open implements fs.FS.
func (c *confinedFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name != "." {
		parts := strings.Split(name, "/")
		for i := range parts {
			p := path.Join(parts[:i+1]...)
			fi, err := fs.Lstat(c.fsys, p)
			if err != nil {
				return nil, err
			}
			if !allowed(fi.Mode()) {
				e := c.err
				e.File, e.Mode = p, fi.Mode().Type()
				return nil, &e
			}
		}
	}
	return c.fsys.Open(name)
}
