package workspace

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"sync"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// TreeFS is a git tree (a commit's, or a directory of it) as an fs.FS, so that
// Load and ReadRenderedFS read a commit exactly as they read a working tree.
// Files hold what git stores: encrypted files stay encrypted.
//
// It keeps the directories it has decoded by path: go-git decodes a
// directory again for every path that goes through it, which made reading a
// workspace of 10,000 apps quadratic (each app's files decoded the 10,000
// entries of apps/ and rendered/ again).
type TreeFS struct {
	Tree *object.Tree

	mu    sync.Mutex
	trees map[string]*object.Tree // decoded directories by path
}

// CommitFS opens the repository at dir (a work tree or a bare repository) and
// returns the tree of rev (a branch, tag or commit hash) and the commit's hash.
func CommitFS(dir, rev string) (*TreeFS, string, error) {
	repo, err := gogit.PlainOpenWithOptions(dir, &gogit.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, "", fmt.Errorf("opening the git repository at %s: %w", dir, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, "", fmt.Errorf("%s has no revision %q: %w", dir, rev, err)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return nil, "", fmt.Errorf("reading commit %s of %s: %w", h, dir, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("reading the tree of commit %s: %w", h, err)
	}
	return &TreeFS{Tree: t}, h.String(), nil
}

// Digest identifies the content of a directory of a commit: the first 16
// hex digits of its git tree hash, which covers every file name and content
// under it (secrets as git stores them: encrypted). Equal digests mean equal
// manifests; the controller records an app's as it applies it.
func Digest(tree plumbing.Hash) string { return tree.String()[:16] }

// DirDigest is the Digest of the directory dir, "" when the tree has none.
func (t *TreeFS) DirDigest(dir string) string {
	e, err := t.entry(dir)
	if err != nil || e.Mode.IsFile() {
		return ""
	}
	return Digest(e.Hash)
}

func (t *TreeFS) entry(name string) (*object.TreeEntry, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	if name == "." {
		return &object.TreeEntry{Name: ".", Mode: filemode.Dir, Hash: t.Tree.Hash}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dir, err := t.treeLocked(path.Dir(name))
	if err != nil {
		return nil, err
	}
	e, err := dir.FindEntry(path.Base(name))
	if err != nil {
		return nil, fs.ErrNotExist
	}
	return e, nil
}

func (t *TreeFS) tree(name string) (*object.Tree, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.treeLocked(name)
}

// treeLocked returns the directory name, decoding each directory on the way
// once for the life of t.
func (t *TreeFS) treeLocked(name string) (*object.Tree, error) {
	if name == "." {
		return t.Tree, nil
	}
	if sub, ok := t.trees[name]; ok {
		return sub, nil
	}
	parent, err := t.treeLocked(path.Dir(name))
	if err != nil {
		return nil, err
	}
	sub, err := parent.Tree(path.Base(name))
	if err != nil {
		return nil, fs.ErrNotExist
	}
	if t.trees == nil {
		t.trees = map[string]*object.Tree{}
	}
	t.trees[name] = sub
	return sub, nil
}

// Open implements fs.FS.
func (t *TreeFS) Open(name string) (fs.File, error) {
	e, err := t.entry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	info := treeInfo{e: e, root: t.Tree}
	if e.Mode == filemode.Dir {
		sub, err := t.tree(name)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &treeDir{info: info, root: t.Tree, t: sub}, nil
	}
	data, err := t.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return &treeFile{info: info, r: bytes.NewReader(data)}, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *TreeFS) ReadFile(name string) ([]byte, error) {
	e, err := t.entry(name)
	if err == nil && !e.Mode.IsFile() {
		err = fs.ErrInvalid
	}
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	f, err := t.Tree.TreeEntryFile(e)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	r, err := f.Reader()
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	defer r.Close()
	return io.ReadAll(r)
}

// ReadDir implements fs.ReadDirFS.
func (t *TreeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	sub, err := t.tree(name)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return dirEntries(t.Tree, sub), nil
}

// Stat implements fs.StatFS.
func (t *TreeFS) Stat(name string) (fs.FileInfo, error) {
	e, err := t.entry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return treeInfo{e: e, root: t.Tree}, nil
}

// Sub returns the tree of dir as a TreeFS.
func (t *TreeFS) Sub(dir string) (fs.FS, error) {
	sub, err := t.tree(dir)
	if err != nil {
		return nil, &fs.PathError{Op: "sub", Path: dir, Err: err}
	}
	return &TreeFS{Tree: sub}, nil
}

func dirEntries(root, t *object.Tree) []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(t.Entries))
	for i := range t.Entries {
		out = append(out, fs.FileInfoToDirEntry(treeInfo{e: &t.Entries[i], root: root}))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// treeInfo describes a tree entry; a file's size is read from its blob
// when asked for.
type treeInfo struct {
	e    *object.TreeEntry
	root *object.Tree // resolves the entry's blob
}

func (i treeInfo) Name() string { return path.Base(i.e.Name) }
func (i treeInfo) Size() int64 {
	if i.root == nil || !i.e.Mode.IsFile() {
		return 0
	}
	f, err := i.root.TreeEntryFile(&object.TreeEntry{Name: path.Base(i.e.Name), Mode: i.e.Mode, Hash: i.e.Hash})
	if err != nil {
		return 0
	}
	return f.Size
}
func (i treeInfo) ModTime() time.Time { return time.Time{} }
func (i treeInfo) IsDir() bool        { return i.e.Mode == filemode.Dir }
func (i treeInfo) Sys() any           { return i.e }
func (i treeInfo) Mode() fs.FileMode {
	switch i.e.Mode {
	case filemode.Dir:
		return fs.ModeDir | 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Submodule:
		return fs.ModeIrregular
	case filemode.Executable:
		return 0o755
	}
	return 0o644
}

type treeFile struct {
	info treeInfo
	r    *bytes.Reader
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Read(b []byte) (int, error) { return f.r.Read(b) }
func (f *treeFile) Close() error               { return nil }

type treeDir struct {
	info    treeInfo
	root, t *object.Tree
	entries []fs.DirEntry
	read    bool
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: fs.ErrInvalid}
}
func (d *treeDir) Close() error { return nil }
func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		d.entries, d.read = dirEntries(d.root, d.t), true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n]
	d.entries = d.entries[n:]
	return out, nil
}
