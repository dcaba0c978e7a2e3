package controller

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// snapshot is a workspace as one commit holds it: its apps in dependency order,
// with their decrypted manifests.
type snapshot struct {
	Revision string
	Apps     []*appSpec
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
// the top) from commit, decrypting secret files with key (nil when the
// Workspace names no key).
func readSnapshot(commit *object.Commit, dir string, key *secrets.Key, cache *snapshotCache) (*snapshot, error) {
	invalid := func(format string, args ...any) error {
		return &invalidWorkspaceError{fmt.Errorf(format, args...)}
	}
	root, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading the tree of commit %s: %w", commit.Hash, err)
	}
	dir = strings.Trim(path.Clean("/"+dir), "/")
	if dir != "" {
		root, err = root.Tree(dir)
		if err != nil {
			return nil, invalid("commit %s has no directory %q: fix spec.path of the Workspace", short(commit.Hash.String()), dir)
		}
	}
	cfgData, err := readTreeFile(root, workspace.ConfigFile)
	if err != nil {
		return nil, invalid("commit %s has no %s in %q: it is not a berth workspace; point spec.url/spec.path at one ('berth init' creates one)", short(commit.Hash.String()), workspace.ConfigFile, "/"+dir)
	}
	var cfg workspace.Config
	if err := yaml.Unmarshal(cfgData, &cfg); err != nil {
		return nil, invalid("%s at commit %s: %w", workspace.ConfigFile, short(commit.Hash.String()), err)
	}
	if cfg.Kind != "Workspace" || cfg.APIVersion != workspace.APIVersion {
		return nil, invalid("%s at commit %s: want apiVersion %s and kind Workspace, got %q and %q", workspace.ConfigFile, short(commit.Hash.String()), workspace.APIVersion, cfg.APIVersion, cfg.Kind)
	}
	var lock workspace.Lock
	if data, err := readTreeFile(root, workspace.LockFile); err == nil {
		if err := yaml.Unmarshal(data, &lock); err != nil {
			return nil, invalid("%s at commit %s: %w; run 'berth build' to rewrite it", workspace.LockFile, short(commit.Hash.String()), err)
		}
	}

	snap := &snapshot{Revision: commit.Hash.String()}
	apps := map[string]*appSpec{}
	// Look directories up once: a path from the root decodes every tree on
	// the way, which is quadratic over a thousand apps.
	appsTree, err := root.Tree(workspace.AppsDir)
	if err == nil && appsTree.Hash == cache.appsTree {
		for name, a := range cache.appFiles {
			apps[name] = &appSpec{Name: a.Name, Namespace: a.Namespace, Err: a.Err}
		}
	} else if err == nil {
		for _, e := range appsTree.Entries {
			if e.Mode.IsFile() {
				continue
			}
			rel := path.Join(workspace.AppsDir, e.Name, workspace.AppFile)
			appTree, err := appsTree.Tree(e.Name)
			if err != nil {
				continue
			}
			data, err := readTreeFile(appTree, workspace.AppFile)
			if err != nil {
				continue
			}
			a := &appSpec{Name: e.Name}
			apps[e.Name] = a
			var wa workspace.App
			switch err := yaml.UnmarshalStrict(data, &wa); {
			case err != nil:
				a.Err = fmt.Errorf("%s: %w", rel, err)
			case wa.Name != e.Name:
				a.Err = fmt.Errorf("%s: name is %q, want %q (the directory's name)", rel, wa.Name, e.Name)
			default:
				a.Namespace = wa.Namespace
			}
		}
	}
	if appsTree != nil {
		cache.appsTree, cache.appFiles = appsTree.Hash, map[string]appSpec{}
		for name, a := range apps {
			cache.appFiles[name] = appSpec{Name: a.Name, Namespace: a.Namespace, Err: a.Err}
		}
	}
	// Shared dependencies are apps of their own, named after their package.
	for _, inst := range lock.Instances {
		if pkg, ok := strings.CutPrefix(inst.Key, "shared:"); ok {
			name, ns := render.SharedApp(pkg)
			if _, ok := apps[name]; !ok {
				apps[name] = &appSpec{Name: name, Namespace: ns}
			}
		}
	}
	renderedTree, _ := root.Tree(workspace.RenderedDir) // nil: every app reports it missing
	deps := appDependencies(&lock)
	for _, a := range apps {
		a.DependsOn = deps[a.Name]
		if a.Namespace == "" && a.Err == nil {
			a.Err = fmt.Errorf("app %s has no namespace in %s", a.Name, path.Join(workspace.AppsDir, a.Name, workspace.AppFile))
		}
		if a.Err == nil {
			a.Objects, a.Digest, a.Err = cache.rendered(renderedTree, a.Name, key)
		}
	}
	cache.keep(apps)
	ordered, err := dependencyOrder(apps)
	if err != nil {
		return nil, invalid("berth.lock at commit %s: %w", short(commit.Hash.String()), err)
	}
	snap.Apps = ordered
	return snap, nil
}

// appDependencies maps each app to the apps it depends on: the shared instances
// and other apps its lock instance, or any of its components, depend on.
func appDependencies(lock *workspace.Lock) map[string][]string {
	appOf := func(key string) (string, bool) {
		if pkg, ok := strings.CutPrefix(key, "shared:"); ok {
			name, _ := render.SharedApp(pkg)
			return name, true
		}
		if name, ok := strings.CutPrefix(key, "app:"); ok && !strings.Contains(name, "/") {
			return name, true
		}
		return "", false
	}
	out := map[string][]string{}
	for _, inst := range lock.Instances {
		app, ok := appOf(inst.Key)
		if !ok {
			continue
		}
		seen := map[string]bool{inst.Key: true}
		var walk func(key string)
		walk = func(key string) {
			i, ok := lock.Get(key)
			if !ok {
				return
			}
			for _, dep := range i.Dependencies {
				if seen[dep] {
					continue
				}
				seen[dep] = true
				if d, ok := appOf(dep); ok {
					if d != app && !slices.Contains(out[app], d) {
						out[app] = append(out[app], d)
					}
					continue
				}
				walk(dep) // a component: its dependencies are the app's
			}
		}
		walk(inst.Key)
		sort.Strings(out[app])
	}
	return out
}

// dependencyOrder sorts apps so that each comes after the apps it depends on,
// by name among equals. A dependency on an app that is not in the workspace
// makes the dependent fail, not the workspace.
func dependencyOrder(apps map[string]*appSpec) ([]*appSpec, error) {
	indeg := map[string]int{}
	users := map[string][]string{}
	for _, a := range apps {
		for _, d := range a.DependsOn {
			if _, ok := apps[d]; !ok {
				if a.Err == nil {
					a.Err = fmt.Errorf("app %s depends on %s, which is not in the workspace (no apps/%s/app.yaml nor a shared instance in berth.lock); run 'berth build'", a.Name, d, d)
				}
				continue
			}
			indeg[a.Name]++
			users[d] = append(users[d], a.Name)
		}
	}
	var ready, out []string
	for name := range apps {
		if indeg[name] == 0 {
			ready = append(ready, name)
		}
	}
	sort.Strings(ready)
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		out = append(out, n)
		for _, u := range users[n] {
			indeg[u]--
			if indeg[u] == 0 {
				ready = append(ready, u)
				sort.Strings(ready)
			}
		}
	}
	if len(out) != len(apps) {
		var cycle []string
		for name := range apps {
			if indeg[name] > 0 {
				cycle = append(cycle, name)
			}
		}
		sort.Strings(cycle)
		return nil, fmt.Errorf("apps %s depend on each other in a cycle; no order can satisfy them", strings.Join(cycle, ", "))
	}
	res := make([]*appSpec, len(out))
	for i, n := range out {
		res[i] = apps[n]
	}
	return res, nil
}

// snapshotCache keeps the decoded manifests of each app by the hash of its
// rendered/<app>/ tree, so a commit that changes one app of a thousand decodes
// one app.
type snapshotCache struct {
	mu   sync.Mutex
	apps map[string]cachedRendered
	// appsTree is the hash of apps/ whose app.yaml files appFiles holds.
	appsTree plumbing.Hash
	appFiles map[string]appSpec
}

type cachedRendered struct {
	tree plumbing.Hash
	key  string
	objs []*unstructured.Unstructured
}

func newSnapshotCache() *snapshotCache { return &snapshotCache{apps: map[string]cachedRendered{}} }

// rendered returns the app's objects and digest (its rendered tree's hash:
// git hashes every file name and content under it, and secrets as ciphertext).
func (c *snapshotCache) rendered(rendered *object.Tree, app string, key *secrets.Key) ([]*unstructured.Unstructured, string, error) {
	dir := workspace.AppRenderedDir(app)
	var entry *object.TreeEntry
	err := errors.New("no rendered directory")
	if rendered != nil {
		entry, err = rendered.FindEntry(app)
	}
	if err != nil || entry.Mode.IsFile() {
		return nil, "", fmt.Errorf("no %s/ at this commit: render the app with 'berth build' and commit the result", dir)
	}
	keyID := ""
	if key != nil {
		keyID = fmt.Sprintf("%s/%d", key.ID(), len(key.Entries))
	}
	digest := entry.Hash.String()[:16]
	c.mu.Lock()
	hit, ok := c.apps[app]
	c.mu.Unlock()
	if ok && hit.tree == entry.Hash && hit.key == keyID {
		return hit.objs, digest, nil
	}
	t, err := rendered.Tree(app)
	if err != nil {
		return nil, "", fmt.Errorf("reading %s/: %w", dir, err)
	}
	objs, err := readRendered(t, dir, key)
	if err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	c.apps[app] = cachedRendered{tree: entry.Hash, key: keyID, objs: objs}
	c.mu.Unlock()
	return objs, digest, nil
}

// keep drops the apps that are no longer in the workspace.
func (c *snapshotCache) keep(apps map[string]*appSpec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.apps {
		if _, ok := apps[name]; !ok {
			delete(c.apps, name)
		}
	}
}

// readRendered reads an app's rendered tree t (dir in errors): one or more objects per file,
// decrypting the encrypted ones with key.
func readRendered(t *object.Tree, dir string, key *secrets.Key) ([]*unstructured.Unstructured, error) {
	type file struct {
		name string
		f    *object.File
	}
	var files []file
	err := t.Files().ForEach(func(f *object.File) error {
		switch path.Ext(f.Name) {
		case ".yaml", ".yml", ".json":
			files = append(files, file{f.Name, f})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s/: %w", dir, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var objs []*unstructured.Unstructured
	for _, f := range files {
		rel := path.Join(dir, f.name)
		data, err := blob(f.f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", rel, err)
		}
		if secrets.IsEncrypted(data) {
			if key == nil {
				return nil, fmt.Errorf("%s is encrypted but the Workspace has no decryption key: create a Secret with the workspace's key under %q ('berth crypto export-key') and name it in spec.decryptionRef", rel, "key")
			}
			plain, err := secrets.Decrypt(key, data)
			if err != nil {
				return nil, &decryptError{fmt.Errorf("%s: decrypting it with the key of spec.decryptionRef failed (is it this workspace's key?): %w", rel, err)}
			}
			data = plain
		}
		o, err := apply.DecodeManifests(rel, bytes.NewReader(data))
		if err != nil {
			if isSecretFile(f.name) {
				// Never echo a decoder's excerpt of a secret.
				return nil, fmt.Errorf("%s: not a valid Kubernetes manifest", rel)
			}
			return nil, err
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

type decryptError struct{ err error }

func (e *decryptError) Error() string { return e.err.Error() }
func (e *decryptError) Unwrap() error { return e.err }

func isSecretFile(name string) bool { return strings.HasPrefix(name, "secrets/") }

func blob(f *object.File) ([]byte, error) {
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func readTreeFile(t *object.Tree, rel string) ([]byte, error) {
	f, err := t.File(rel)
	if err != nil {
		return nil, err
	}
	return blob(f)
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
