package controller

import (
	"errors"
	"fmt"
	"path"
	"runtime"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// snapshot is a workspace as one commit holds it: its apps in dependency order,
// with their decrypted manifests.
type snapshot struct {
	Revision string
	Apps     []*appSpec
	// Gone holds the objects, as this process last read them, of the apps
	// the commit no longer has (their delete hooks run when they are removed).
	Gone map[string][]*unstructured.Unstructured
}

// appSpec is one app of a snapshot.
type appSpec struct {
	Name      string
	Namespace string
	// DependsOn are the apps that must be healthy before this one is applied.
	DependsOn []string
	Objects   []*unstructured.Unstructured
	// Digest hashes the app's files (as git stores them, so secrets stay
	// encrypted in it): equal digests mean equal manifests.
	Digest string
	// Err is why the app cannot be applied from this commit: a malformed
	// manifest, an undecryptable secret. Only this app stalls.
	Err error
}

// invalidWorkspaceError means the commit does not hold a usable workspace at all.
type invalidWorkspaceError struct{ err error }

func (e *invalidWorkspaceError) Error() string { return e.err.Error() }
func (e *invalidWorkspaceError) Unwrap() error { return e.err }

// readSnapshot reads the workspace at dir (a path in the commit's tree, "" for
// the top) from commit with workspace.Load, as the CLI reads it, and decrypts
// the apps' rendered objects with key (nil when the Workspace names no key).
//
// For a cluster of a fleet workspace (cluster not empty) it reads the apps
// rendered under rendered/CLUSTER/ and no others.
func readSnapshot(commit *object.Commit, dir, cluster string, key *secrets.Key, cache *snapshotCache) (*snapshot, error) {
	// The commit read last time, read again (a periodic reconcile with
	// nothing pushed): the same apps, nothing gone since.
	id := strings.Join([]string{commit.Hash.String(), dir, cluster, keyID(key)}, "\x00")
	if last := cache.same(id); last != nil {
		return last, nil
	}
	snap, err := readCommit(commit, dir, cluster, key, cache)
	if err == nil {
		cache.remember(id, snap)
	}
	return snap, err
}

func readCommit(commit *object.Commit, dir, cluster string, key *secrets.Key, cache *snapshotCache) (*snapshot, error) {
	rev := short(commit.Hash.String())
	root, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading the tree of commit %s: %w", commit.Hash, err)
	}
	dir = strings.Trim(path.Clean("/"+dir), "/")
	if dir != "" {
		root, err = root.Tree(dir)
		if err != nil {
			return nil, &invalidWorkspaceError{fmt.Errorf("commit %s has no directory %q: fix spec.path of the Workspace", rev, dir)}
		}
	}
	// One TreeFS for the whole read: it decodes each directory once.
	rootFS := &workspace.TreeFS{Tree: root}
	ws, err := workspace.Load(rootFS)
	if err != nil {
		return nil, &invalidWorkspaceError{fmt.Errorf("workspace at commit %s (directory %q): %w", rev, "/"+dir, err)}
	}
	renderedDir := workspace.RenderedDir
	if cluster != "" {
		ws = ws.PlacedOn(rootFS, cluster)
		renderedDir = path.Join(workspace.RenderedDir, cluster)
	}
	ordered, err := ws.Order()
	if err != nil {
		return nil, &invalidWorkspaceError{fmt.Errorf("%s at commit %s: %w", workspace.LockFile, rev, err)}
	}
	renderedTree, _ := root.Tree(renderedDir) // nil: every app reports it missing
	snap := &snapshot{Revision: commit.Hash.String()}
	apps := map[string]bool{}
	// The apps' files are read from git one app at a time (go-git's storage
	// is not safe for concurrent use) while workers decode the apps read so
	// far: decoding is half of the read of a first sync, and the cluster
	// waits for all of it.
	type decodeJob struct {
		a     *appSpec
		files []workspace.RenderedFile
		tree  plumbing.Hash
	}
	jobs := make(chan decodeJob, 64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if j.a.Objects, j.a.Err = workspace.DecodeRendered(j.files); j.a.Err != nil {
					j.a.Objects, j.a.Digest = nil, ""
					continue
				}
				cache.store(j.a.Name, j.tree, key, j.a.Objects)
			}
		}()
	}
	for _, e := range ordered {
		a := &appSpec{Name: e.Name, Namespace: e.Namespace, DependsOn: e.DependsOn, Err: e.Err}
		if a.Err == nil {
			var r renderedRead
			if r, a.Err = cache.read(rootFS, renderedTree, renderedDir, a.Name, key); a.Err == nil {
				a.Objects, a.Digest = r.objs, r.digest
				if r.miss {
					jobs <- decodeJob{a: a, files: r.files, tree: r.tree}
				}
			}
		}
		apps[a.Name] = true
		snap.Apps = append(snap.Apps, a)
	}
	close(jobs)
	wg.Wait()
	snap.Gone = cache.keep(apps)
	return snap, nil
}

// snapshotCache keeps the decoded manifests of each app by the hash of its
// rendered/<app>/ tree, so a commit that changes one app of a thousand decodes
// one app.
type snapshotCache struct {
	mu   sync.Mutex
	apps map[string]cachedRendered
	// lastID identifies the last snapshot read (commit, directory, cluster
	// and key), last is that snapshot.
	lastID string
	last   *snapshot
}

// same returns the last snapshot, without the apps it found gone, when id
// names it; nil otherwise.
func (c *snapshotCache) same(id string) *snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil || c.lastID != id {
		return nil
	}
	return &snapshot{Revision: c.last.Revision, Apps: c.last.Apps}
}

func (c *snapshotCache) remember(id string, s *snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastID, c.last = id, s
}

func keyID(key *secrets.Key) string {
	if key == nil {
		return ""
	}
	return fmt.Sprintf("%s/%d", key.ID(), len(key.Entries))
}

type cachedRendered struct {
	tree plumbing.Hash
	key  string
	objs []*unstructured.Unstructured
}

func newSnapshotCache() *snapshotCache { return &snapshotCache{apps: map[string]cachedRendered{}} }

// renderedRead is what the cache holds of an app's rendered tree: its
// decoded objects, or on a miss its files, to decode and store.
type renderedRead struct {
	objs   []*unstructured.Unstructured
	digest string
	miss   bool
	files  []workspace.RenderedFile
	tree   plumbing.Hash
}

// read returns the app's digest (its rendered tree's hash: git hashes every
// file name and content under it, and secrets as ciphertext) and its
// objects as last decoded from the same tree, or on a miss its files.
func (c *snapshotCache) read(root *workspace.TreeFS, rendered *object.Tree, renderedDir, app string, key *secrets.Key) (renderedRead, error) {
	dir := path.Join(renderedDir, app)
	var entry *object.TreeEntry
	err := errors.New("no rendered directory")
	if rendered != nil {
		entry, err = rendered.FindEntry(app)
	}
	if err != nil || entry.Mode.IsFile() {
		return renderedRead{}, fmt.Errorf("no %s/ at this commit: render the app with 'berth build' and commit the result", dir)
	}
	r := renderedRead{digest: workspace.Digest(entry.Hash), tree: entry.Hash}
	c.mu.Lock()
	hit, ok := c.apps[app]
	c.mu.Unlock()
	if ok && hit.tree == entry.Hash && hit.key == keyID(key) {
		r.objs = hit.objs
		return r, nil
	}
	files, err := workspace.ReadRenderedFiles(root, dir, key)
	var de *workspace.DecryptError
	if key == nil && errors.As(err, &de) {
		err = &workspace.DecryptError{Err: fmt.Errorf("%w: the Workspace has no decryption key; create a Secret with the workspace's key under %q and name it in spec.decryptionRef", err, "key")}
	}
	if err != nil {
		return renderedRead{}, err
	}
	r.miss, r.files = true, files
	return r, nil
}

// store keeps the objects decoded from an app's rendered tree.
func (c *snapshotCache) store(app string, tree plumbing.Hash, key *secrets.Key, objs []*unstructured.Unstructured) {
	c.mu.Lock()
	c.apps[app] = cachedRendered{tree: tree, key: keyID(key), objs: objs}
	c.mu.Unlock()
}

// keep drops the apps that are no longer in the workspace, and returns
// their objects as last read.
func (c *snapshotCache) keep(apps map[string]bool) map[string][]*unstructured.Unstructured {
	c.mu.Lock()
	defer c.mu.Unlock()
	gone := map[string][]*unstructured.Unstructured{}
	for name, hit := range c.apps {
		if _, ok := apps[name]; !ok {
			gone[name] = hit.objs
			delete(c.apps, name)
		}
	}
	return gone
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
