package workspace

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/secrets"
)

// Snapshot is a workspace as one tree holds it (the working tree, or a commit):
// its configuration, its lock and its apps with what each depends on. Load
// reads it the same way for the CLI and the controller.
type Snapshot struct {
	Config Config
	Lock   *Lock
	// Apps are every app of the workspace, by name: those under apps/ and the
	// shared instances of the lock.
	Apps map[string]*AppEntry
}

// AppEntry is one app of a Snapshot.
type AppEntry struct {
	Name      string
	Namespace string
	// App is apps/NAME/app.yaml; nil for a shared instance the lock holds
	// without one.
	App *App
	// DependsOn are the apps that must be deployed and healthy before this one.
	DependsOn []string
	// Err is why this app cannot be deployed from this tree (a malformed
	// app.yaml, a dependency that is missing). Only this app is affected.
	Err error
}

// InvalidError means the tree does not hold a usable workspace at all: no or a
// malformed berth.yaml or berth.lock.
type InvalidError struct {
	File string
	Err  error
}

func (e *InvalidError) Error() string { return fmt.Sprintf("%s: %v", e.File, e.Err) }
func (e *InvalidError) Unwrap() error { return e.Err }

// Load reads the workspace at the top of fsys strictly: berth.yaml, berth.lock
// and every apps/NAME/app.yaml, rejecting unknown fields and naming the file in
// every error. A broken berth.yaml or berth.lock is an *InvalidError; a broken
// app is recorded on its entry, so the other apps stay usable.
func Load(fsys fs.FS) (*Snapshot, error) {
	s := &Snapshot{Apps: map[string]*AppEntry{}}
	data, err := fs.ReadFile(fsys, ConfigFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &InvalidError{ConfigFile, errors.New("missing: this is not a berth workspace ('berth init' creates one)")}
		}
		return nil, &InvalidError{ConfigFile, err}
	}
	if err := ParseConfig(ConfigFile, data, &s.Config); err != nil {
		return nil, &InvalidError{ConfigFile, errors.Unwrap(err)}
	}
	s.Lock = &Lock{APIVersion: APIVersion, Kind: "Lock"}
	if data, err := fs.ReadFile(fsys, LockFile); err == nil {
		l, err := parseLock(LockFile, data)
		if err != nil {
			return nil, &InvalidError{LockFile, errors.Unwrap(err)}
		}
		s.Lock = l
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, &InvalidError{LockFile, err}
	}
	keys, err := s.Lock.keys()
	if err != nil {
		return nil, &InvalidError{LockFile, err}
	}
	if err := s.loadApps(fsys); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Role != RoleShared {
			continue
		}
		name, ns := SharedApp(k.Package)
		if _, ok := s.Apps[name]; !ok {
			s.Apps[name] = &AppEntry{Name: name, Namespace: ns}
		}
	}
	deps := s.Lock.appDependencies(keys)
	for _, a := range s.Apps {
		a.DependsOn = deps[a.Name]
		for _, d := range a.DependsOn {
			if _, ok := s.Apps[d]; !ok && a.Err == nil {
				a.Err = fmt.Errorf("app %s depends on %s, which is not in the workspace (no %s nor a shared instance in %s)", a.Name, d, path.Join(AppDir(d), AppFile), LockFile)
			}
		}
	}
	return s, nil
}

// ParseConfig parses berth.yaml strictly into cfg; file names it in errors.
func ParseConfig(file string, data []byte, cfg *Config) error {
	if err := decodeStrict(file, data, cfg); err != nil {
		return err
	}
	if cfg.Kind != "Workspace" || cfg.APIVersion != APIVersion {
		return fmt.Errorf("%s: %w", file, fmt.Errorf("want apiVersion %s and kind Workspace, got %q and %q", APIVersion, cfg.APIVersion, cfg.Kind))
	}
	if cfg.Upgrades != nil {
		if err := cfg.Upgrades.validate("upgrades"); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	if err := cfg.validateFleet(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for i, m := range cfg.Mirrors {
		if _, err := catalog.ValidateMirror(m, "."); err != nil {
			return fmt.Errorf("%s: %w", file, fmt.Errorf("mirrors[%d]: %w", i, err))
		}
	}
	if err := cfg.Console.validate(); err != nil {
		return fmt.Errorf("%s: console.%w", file, err)
	}
	if err := cfg.Monitoring.validate(); err != nil {
		return fmt.Errorf("%s: monitoring.%w", file, err)
	}
	return nil
}

// ParseApp parses apps/NAME/app.yaml strictly; name is the directory's name.
func ParseApp(name string, data []byte) (*App, error) {
	rel := path.Join(AppDir(name), AppFile)
	var a App
	if err := decodeStrict(rel, data, &a); err != nil {
		return nil, err
	}
	if a.Name != name {
		return nil, fmt.Errorf("%s: name is %q, want %q (the directory's name)", rel, a.Name, name)
	}
	if err := ValidateNamespace(a.Namespace); err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if a.Upgrade != nil {
		if err := a.Upgrade.validate("upgrade", nil); err != nil {
			return nil, fmt.Errorf("%s: %w", rel, &UpgradeSettingsError{err})
		}
	}
	return &a, nil
}

// ValidateNamespace checks the namespace of an app: a DNS label, as
// Kubernetes requires.
func ValidateNamespace(ns string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("namespace %q is not valid: %s", ns, strings.Join(errs, "; "))
	}
	return nil
}

func (s *Snapshot) loadApps(fsys fs.FS) error {
	entries, err := fs.ReadDir(fsys, AppsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &InvalidError{AppsDir, err}
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(AppDir(e.Name()), AppFile))
		if errors.Is(err, fs.ErrNotExist) {
			continue // not an app (yet): a directory the user made
		}
		entry := &AppEntry{Name: e.Name()}
		s.Apps[e.Name()] = entry
		if err == nil {
			err = ValidateAppName(e.Name())
		}
		if err != nil {
			entry.Err = fmt.Errorf("%s: %w", path.Join(AppDir(e.Name()), AppFile), err)
			continue
		}
		a, err := ParseApp(e.Name(), data)
		if err != nil {
			entry.Err = err
			continue
		}
		entry.App, entry.Namespace = a, a.Namespace
	}
	return nil
}

// keys parses every instance key of the lock.
func (l *Lock) keys() ([]InstanceKey, error) {
	out := make([]InstanceKey, 0, len(l.Instances))
	for i, in := range l.Instances {
		k, err := ParseInstanceKey(in.Key)
		if err != nil {
			return nil, fmt.Errorf("instances[%d].key: %w", i, err)
		}
		for name, dep := range in.Dependencies {
			if _, err := ParseInstanceKey(dep); err != nil {
				return nil, fmt.Errorf("instances[%d] (%s).dependencies.%s: %w", i, in.Key, name, err)
			}
		}
		out = append(out, k)
	}
	return out, nil
}

// appDependencies maps each app to the apps it depends on: the apps (shared or
// not) that its own instance or any of its components depends on.
func (l *Lock) appDependencies(keys []InstanceKey) map[string][]string {
	out := map[string][]string{}
	for i, k := range keys {
		if !k.IsApp() {
			continue
		}
		app := k.DeployedBy()
		seen := map[string]bool{l.Instances[i].Key: true}
		var walk func(key string)
		walk = func(key string) {
			in, ok := l.Get(key)
			if !ok {
				return
			}
			for _, dep := range in.Dependencies {
				if seen[dep] {
					continue
				}
				seen[dep] = true
				dk, _ := ParseInstanceKey(dep) // checked by keys
				if dk.IsApp() {
					if d := dk.DeployedBy(); d != app && !slices.Contains(out[app], d) {
						out[app] = append(out[app], d)
					}
					continue
				}
				walk(dep) // a component: its dependencies are the app's
			}
		}
		walk(l.Instances[i].Key)
		sort.Strings(out[app])
	}
	return out
}

// Dependants lists the apps that depend on app, sorted.
func (s *Snapshot) Dependants(app string) []string {
	var out []string
	for _, a := range s.Apps {
		if slices.Contains(a.DependsOn, app) {
			out = append(out, a.Name)
		}
	}
	sort.Strings(out)
	return out
}

// CycleError says which apps depend on each other in a circle.
type CycleError struct{ Apps []string }

func (e *CycleError) Error() string {
	return fmt.Sprintf("apps %s depend on each other in a cycle; no order can satisfy them", strings.Join(e.Apps, ", "))
}

// Order returns the named apps (every app when none is named) and the apps
// they depend on, each after its dependencies and by name among equals.
func (s *Snapshot) Order(names ...string) ([]*AppEntry, error) {
	want := map[string]bool{}
	if len(names) == 0 {
		for n := range s.Apps {
			want[n] = true
		}
	}
	var add func(n string) error
	add = func(n string) error {
		a, ok := s.Apps[n]
		if !ok {
			return fmt.Errorf("%w: no app %q in this workspace", ErrAppNotFound, n)
		}
		if want[n] {
			return nil
		}
		want[n] = true
		for _, d := range a.DependsOn {
			if _, ok := s.Apps[d]; ok {
				if err := add(d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	indeg := map[string]int{}
	users := map[string][]string{}
	for n := range want {
		for _, d := range s.Apps[n].DependsOn {
			if want[d] {
				indeg[n]++
				users[d] = append(users[d], n)
			}
		}
	}
	var ready []string
	for n := range want {
		if indeg[n] == 0 {
			ready = append(ready, n)
		}
	}
	sort.Strings(ready)
	var out []*AppEntry
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		out = append(out, s.Apps[n])
		for _, u := range users[n] {
			if indeg[u]--; indeg[u] == 0 {
				ready = append(ready, u)
				sort.Strings(ready)
			}
		}
	}
	if len(out) != len(want) {
		var cycle []string
		for n := range want {
			if indeg[n] > 0 {
				cycle = append(cycle, n)
			}
		}
		sort.Strings(cycle)
		return nil, &CycleError{Apps: cycle}
	}
	return out, nil
}

// DecryptError means an encrypted rendered file could not be decrypted.
type DecryptError struct{ Err error }

func (e *DecryptError) Error() string { return e.Err.Error() }
func (e *DecryptError) Unwrap() error { return e.Err }

// ReadRenderedFS reads every object under dir (rendered/APP in a workspace
// tree) of fsys, in file name order, one or more objects per .yaml, .yml or
// .json file. Files that git-crypt encrypted are decrypted with key (nil: the
// tree holds them in plaintext, as an unlocked working tree does).
func ReadRenderedFS(fsys fs.FS, dir string, key *secrets.Key) ([]*unstructured.Unstructured, error) {
	files, err := ReadRenderedFiles(fsys, dir, key)
	if err != nil {
		return nil, err
	}
	return DecodeRendered(files)
}

// RenderedFile is one manifest file of an app's rendered directory, read and
// decrypted.
type RenderedFile struct {
	Path string
	Data []byte
	// Secret: the file holds secrets (under secrets/, or encrypted), whose
	// contents no error may quote.
	Secret bool
}

// ReadRenderedFiles is the first half of ReadRenderedFS: it reads and
// decrypts the files, and DecodeRendered, which is safe to run in parallel,
// decodes them.
func ReadRenderedFiles(fsys fs.FS, dir string, key *secrets.Key) ([]RenderedFile, error) {
	var paths []string
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			switch path.Ext(p) {
			case ".yaml", ".yml", ".json":
				paths = append(paths, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s/: %w", dir, err)
	}
	sort.Strings(paths)
	files := make([]RenderedFile, 0, len(paths))
	for _, rel := range paths {
		data, err := fs.ReadFile(fsys, rel)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", rel, err)
		}
		secret := strings.HasPrefix(rel, dir+"/secrets/")
		if secrets.IsEncrypted(data) {
			if key == nil {
				return nil, &DecryptError{fmt.Errorf("%s is encrypted and no key to decrypt it was given", rel)}
			}
			plain, err := secrets.Decrypt(key, data)
			if err != nil {
				return nil, &DecryptError{fmt.Errorf("%s: decrypting it failed (is it this workspace's key?): %w", rel, err)}
			}
			data, secret = plain, true
		}
		files = append(files, RenderedFile{Path: rel, Data: data, Secret: secret})
	}
	return files, nil
}

// DecodeRendered decodes the files ReadRenderedFiles read, in their order.
func DecodeRendered(files []RenderedFile) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, f := range files {
		o, err := apply.DecodeManifests(f.Path, bytes.NewReader(f.Data))
		if err != nil {
			if f.Secret {
				// Never echo a decoder's excerpt of a secret.
				return nil, fmt.Errorf("%s: not a valid Kubernetes manifest", f.Path)
			}
			return nil, err
		}
		objs = append(objs, o...)
	}
	return objs, nil
}
