package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/secrets"
)

// App is apps/<name>/app.yaml: one installed package and the choices made for it.
// Secret configuration values are not here but in the app's encrypted
// secrets.yaml; the user's own overrides are in values.yaml, which berth never
// rewrites.
type App struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Package    string `json:"package"`
	// Version is a semver constraint; empty follows Channel.
	Version   string         `json:"version,omitempty"`
	Channel   string         `json:"channel,omitempty"`
	Namespace string         `json:"namespace"`
	Values    map[string]any `json:"values,omitempty"`
	// Shared marks an app berth installed as a shared dependency of other apps;
	// it is removed when the last of them is.
	Shared bool `json:"shared,omitempty"`
	// Upgrade overrides berth.yaml's upgrade settings for this app.
	Upgrade *UpgradeSettings `json:"upgrade,omitempty"`
	// Placement says which clusters of a fleet workspace run the app (see
	// fleet.go); nil: every cluster.
	Placement *Placement `json:"placement,omitempty"`
}

// ValidateAppName checks an app name by the one rule for app names,
// apply.ValidateAppName: the deploy engine names the app's inventory after it.
func ValidateAppName(name string) error { return apply.ValidateAppName(name) }

// AppDir is the workspace-relative directory of an app's files.
func AppDir(name string) string { return path.Join(AppsDir, name) }

// AppRenderedDir is the workspace-relative directory of an app's rendered objects.
func AppRenderedDir(name string) string { return path.Join(RenderedDir, name) }

// ErrAppNotFound is returned for an app that is not installed in the workspace.
var ErrAppNotFound = errors.New("app not installed")

// App reads an installed app.
func (w *Workspace) App(name string) (*App, error) {
	if err := ValidateAppName(name); err != nil {
		return nil, err
	}
	rel := path.Join(AppDir(name), AppFile)
	data, err := w.ReadFile(rel)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no app %q in this workspace (%s is missing)", ErrAppNotFound, name, rel)
	}
	if err != nil {
		return nil, err
	}
	var a App
	if err := decodeStrict(w.Abs(rel), data, &a); err != nil {
		return nil, err
	}
	if a.Name != name {
		return nil, fmt.Errorf("%s: name is %q, want %q (the directory's name)", w.Abs(rel), a.Name, name)
	}
	if a.Upgrade != nil {
		if err := a.Upgrade.validate("upgrade", nil); err != nil {
			return nil, fmt.Errorf("%s: %w", w.Abs(rel), &UpgradeSettingsError{err})
		}
	}
	return &a, nil
}

// Apps lists the installed apps, sorted by name.
func (w *Workspace) Apps() ([]*App, error) {
	entries, err := os.ReadDir(w.Abs(AppsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var apps []*App
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(w.Abs(path.Join(AppDir(e.Name()), AppFile))); err != nil {
			continue
		}
		a, err := w.App(e.Name())
		if err != nil {
			return nil, err
		}
		apps = append(apps, a)
	}
	return apps, nil
}

// WriteApp writes apps/<name>/app.yaml.
func (w *Workspace) WriteApp(a *App) error {
	if err := ValidateAppName(a.Name); err != nil {
		return err
	}
	a.APIVersion, a.Kind = APIVersion, "App"
	return w.WriteFile(path.Join(AppDir(a.Name), AppFile), mustYAML(a))
}

// UserValues reads the user's own overrides (apps/<name>/values.yaml), which win
// over the values in app.yaml. A missing file means no overrides.
func (w *Workspace) UserValues(name string) (map[string]any, error) {
	rel := path.Join(AppDir(name), ValuesFile)
	data, err := w.ReadFile(rel)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", w.Abs(rel), err)
	}
	return v, nil
}

// Lock is berth.lock: the exact version and content digest of every package
// instance in use, so that the same commit always renders the same bytes.
type Lock struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Instances  []LockInstance `json:"instances"`
	// Charts records the digest of every chart archive the packages take
	// from chart repositories, the first time it is resolved; a different
	// archive is refused afterwards.
	Charts []LockedChart `json:"charts,omitempty"`
	// Kubernetes is the one cluster's Kubernetes version and served API
	// versions that charts saw in .Capabilities, as read from the cluster by
	// the last change that reached it; a render without the cluster uses it.
	// (A fleet records each cluster's in berth.yaml.)
	Kubernetes *ClusterKubernetes `json:"kubernetes,omitempty"`
}

// LockedChart is the digest recorded for one chart version of a repository.
type LockedChart struct {
	catalog.ChartRef `json:",inline"`
	Digest           string `json:"digest"`
}

// ChartDigests returns the recorded digests by chart.
func (l *Lock) ChartDigests() map[catalog.ChartRef]string {
	out := map[catalog.ChartRef]string{}
	for _, c := range l.Charts {
		out[c.ChartRef] = c.Digest
	}
	return out
}

// LockInstance is one resolved package instance.
type LockInstance struct {
	// Key is the resolver's instance key: app:NAME, shared:PACKAGE or
	// app:NAME/DEPENDENCY for a component.
	Key          string            `json:"key"`
	Role         string            `json:"role"`
	Package      string            `json:"package"`
	Version      string            `json:"version"`
	Catalog      string            `json:"catalog,omitempty"`
	Digest       string            `json:"digest,omitempty"`
	Dependencies map[string]string `json:"dependencies,omitempty"`
}

// Lock reads berth.lock; a workspace without one has an empty lock.
func (w *Workspace) Lock() (*Lock, error) {
	data, err := w.ReadFile(LockFile)
	if errors.Is(err, os.ErrNotExist) {
		return &Lock{APIVersion: APIVersion, Kind: "Lock"}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseLock(w.Abs(LockFile), data)
}

// ParseLock parses the content of a berth.lock (from an earlier revision, say).
func ParseLock(data []byte) (*Lock, error) { return parseLock(LockFile, data) }

func parseLock(file string, data []byte) (*Lock, error) {
	var l Lock
	if err := decodeStrict(file, data, &l); err != nil {
		return nil, err
	}
	if k := l.Kubernetes; k != nil {
		if _, err := utilversion.ParseGeneric(k.Version); err != nil {
			return nil, fmt.Errorf("%s: %w", file, fmt.Errorf("kubernetes.version: %q is not a Kubernetes version (like v1.34.1): remove the kubernetes: section and the next change reads it from the cluster", k.Version))
		}
	}
	return &l, nil
}

// WriteLock writes berth.lock with its instances sorted by key, so that equal
// locks are equal bytes.
func (w *Workspace) WriteLock(l *Lock) error {
	l.APIVersion, l.Kind = APIVersion, "Lock"
	sort.Slice(l.Instances, func(i, j int) bool { return l.Instances[i].Key < l.Instances[j].Key })
	sort.Slice(l.Charts, func(i, j int) bool {
		a, b := l.Charts[i].ChartRef, l.Charts[j].ChartRef
		if a.Repo != b.Repo {
			return a.Repo < b.Repo
		}
		if a.Chart != b.Chart {
			return a.Chart < b.Chart
		}
		return a.Version < b.Version
	})
	return w.WriteFile(LockFile, mustYAML(l))
}

// Get returns the instance with key.
func (l *Lock) Get(key string) (LockInstance, bool) {
	for _, in := range l.Instances {
		if in.Key == key {
			return in, true
		}
	}
	return LockInstance{}, false
}

// RenderedFileName is the stable file name of an object under rendered/<app>/:
// kind, group, namespace and name, so that every object has its own file and a
// change to one object is a diff of one file.
func RenderedFileName(obj *unstructured.Unstructured) string {
	gvk := obj.GroupVersionKind()
	parts := []string{strings.ToLower(gvk.Kind)}
	if gvk.Group != "" {
		parts[0] += "." + gvk.Group
	}
	if ns := obj.GetNamespace(); ns != "" {
		parts = append(parts, ns)
	}
	parts = append(parts, obj.GetName())
	return sanitize(strings.Join(parts, "_")) + ".yaml"
}

var unsafeFileChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

func sanitize(s string) string { return unsafeFileChars.ReplaceAllString(s, "-") }

// WriteRendered replaces rendered/<app>/ with one file per object (files of
// objects that are gone are removed). Secret objects go under secrets/, which the
// workspace's .gitattributes encrypts. It returns the workspace-relative paths
// written.
func (w *Workspace) WriteRendered(ctx context.Context, app string, objs []*unstructured.Unstructured) ([]string, error) {
	return w.WriteRenderedIn(ctx, "", app, objs)
}

// WriteRenderedIn is WriteRendered for a cluster of a fleet workspace:
// into rendered/CLUSTER/APP/ ("" is rendered/APP/).
func (w *Workspace) WriteRenderedIn(ctx context.Context, cluster, app string, objs []*unstructured.Unstructured) ([]string, error) {
	dir := AppRenderedDirIn(cluster, app)
	want := map[string][]byte{}
	for _, obj := range objs {
		name := RenderedFileName(obj)
		rel := path.Join(dir, name)
		if obj.GetKind() == "Secret" && obj.GroupVersionKind().Group == "" {
			rel = path.Join(dir, "secrets", name)
		}
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", rel, err)
		}
		if _, dup := want[rel]; dup {
			return nil, fmt.Errorf("app %s renders two objects that map to %s; object names must be unique per kind and namespace", app, rel)
		}
		want[rel] = data
	}
	existing, err := w.files(dir)
	if err != nil {
		return nil, err
	}
	for _, rel := range existing {
		if _, keep := want[rel]; !keep {
			if err := os.Remove(w.Abs(rel)); err != nil {
				return nil, err
			}
		}
	}
	written := make([]string, 0, len(want))
	for rel, data := range want {
		if old, err := w.ReadFile(rel); err == nil && bytes.Equal(old, data) {
			written = append(written, rel)
			continue
		}
		write := w.WriteFile
		if strings.HasPrefix(rel, path.Join(dir, "secrets")+"/") {
			// Only where git encrypts, and only while this clone can.
			write = func(rel string, data []byte) error { return secrets.WriteSecretFile(ctx, w.Root, rel, data) }
		}
		if err := write(rel, data); err != nil {
			return nil, err
		}
		written = append(written, rel)
	}
	sort.Strings(written)
	return written, nil
}

// ReadRendered reads every object under rendered/<app>/, in file name order.
func (w *Workspace) ReadRendered(app string) ([]*unstructured.Unstructured, error) {
	files, err := w.files(AppRenderedDir(app))
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, rel := range files {
		data, err := w.ReadFile(rel)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", w.Abs(rel), err)
		}
		if m == nil {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs, nil
}

// files lists the regular files under a workspace-relative directory, sorted.
func (w *Workspace) files(dir string) ([]string, error) {
	var out []string
	root := w.Abs(dir)
	err := walkFiles(root, func(abs string) {
		rel := strings.TrimPrefix(abs, w.Root+string(os.PathSeparator))
		out = append(out, filepath.ToSlash(rel))
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	sort.Strings(out)
	return out, err
}
