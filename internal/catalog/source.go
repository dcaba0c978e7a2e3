package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sync"
)

// Source is one catalog: its index, and the files of each package version.
type Source interface {
	// Index returns the catalog's index.
	Index(ctx context.Context) (*Index, error)
	// Open returns the files of a package version, rooted at its directory.
	Open(ctx context.Context, name, version string) (fs.FS, error)
}

// FSSource is a catalog tree in a file system: a directory, a git checkout, or
// the embedded built-in catalog.
type FSSource struct {
	FS fs.FS
	// Where names the tree in errors, such as its path.
	Where string

	mu    sync.Mutex
	index *Index
}

// NewDirSource returns the catalog in the directory dir.
func NewDirSource(dir string) *FSSource {
	return &FSSource{FS: os.DirFS(dir), Where: dir}
}

// Index implements Source. The tree is scanned once; a failed scan is retried
// on the next call.
func (s *FSSource) Index(ctx context.Context) (*Index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index != nil {
		return s.index, nil
	}
	ix, err := BuildIndex(ctx, s.FS, s.Where)
	if err != nil {
		return nil, err
	}
	s.index = ix
	return ix, nil
}

// Open implements Source. The files it returns are confined to the package
// version: a path through a link, or to a special file, is refused (*LinkError).
func (s *FSSource) Open(ctx context.Context, name, version string) (fs.FS, error) {
	ix, err := s.Index(ctx)
	if err != nil {
		return nil, err
	}
	e, ok := ix.Entry(name)
	if !ok {
		return nil, &NotFoundError{Package: name}
	}
	if _, ok := e.Version(version); !ok {
		return nil, &NotFoundError{Package: name, Version: version, Available: versionList(e)}
	}
	sub, err := fs.Sub(s.FS, path.Join(name, version))
	if err != nil {
		return nil, err
	}
	return confine(sub, s.Where, name, version), nil
}

// NotFoundError is a package or version that a catalog does not have.
type NotFoundError struct {
	Package   string
	Version   string
	Available string
}

func (e *NotFoundError) Error() string {
	if e.Version == "" {
		return fmt.Sprintf("package %s is not in any catalog; search with 'berth search %s' or add a catalog with 'berth catalog add'", e.Package, e.Package)
	}
	return fmt.Sprintf("package %s has no version %s (versions: %s)", e.Package, e.Version, e.Available)
}

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
