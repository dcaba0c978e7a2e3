// Package workspace manages the user's git repository that holds what berth
// installs: berth.yaml, the lockfile, one directory per app with the user's choices,
// and the rendered manifests. berth writes files atomically, commits its own
// changes, never rewrites what the user wrote, and leaves the repository as it was
// when a change fails half-way.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"

	"berth.dev/berth/internal/atomicfile"
)

// File and directory names of the workspace layout (see docs/workspace.md).
const (
	ConfigFile  = "berth.yaml"
	LockFile    = "berth.lock"
	AppsDir     = "apps"
	RenderedDir = "rendered"
	AppFile     = "app.yaml"
	ValuesFile  = "values.yaml"
	SecretsFile = "secrets.yaml"

	APIVersion = "berth.dev/v1alpha1"
)

// Config is berth.yaml: which catalogs the workspace uses, which cluster it
// targets, and defaults for new apps.
type Config struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Catalogs   []CatalogRef `json:"catalogs,omitempty"`
	Cluster    ClusterRef   `json:"cluster"`
	Defaults   Defaults     `json:"defaults"`
	// Mirrors read upstream chart repositories from elsewhere (an offline
	// copy); BERTH_CHART_MIRROR adds to them for one process.
	Mirrors []catalog.Mirror `json:"mirrors,omitempty"`
	// Upgrades says how new catalog versions reach the apps (docs/upgrades.md).
	Upgrades *UpgradesConfig `json:"upgrades,omitempty"`
	// Console configures 'berth console': sign-in and roles.
	Console *ConsoleConfig `json:"console,omitempty"`
	// Monitoring says where the workspace's Prometheus and Alertmanager are
	// (docs/monitoring.md).
	Monitoring *MonitoringConfig `json:"monitoring,omitempty"`
	// Clusters and Environments make the workspace a fleet (see fleet.go):
	// several clusters, each rendered under rendered/CLUSTER/, and the stages
	// versions are promoted through. Without clusters, Cluster is the one
	// target and apps render under rendered/APP/.
	Clusters     []ClusterEntry `json:"clusters,omitempty"`
	Environments []Environment  `json:"environments,omitempty"`
}

// CatalogRef names a catalog by name and location; the built-in catalog is
// always available as "builtin".
type CatalogRef struct {
	Name string `json:"name"`
	// Type is dir, git or http; detected from URL when empty.
	Type string `json:"type,omitempty"`
	// URL is where the catalog is read from; a directory's relative path is
	// relative to the workspace's root.
	URL string `json:"url"`
}

// ClusterRef says where to deploy: a kubeconfig file and context (empty means the
// usual KUBECONFIG resolution and its current context).
type ClusterRef struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
}

// Defaults apply to apps installed without explicit choices.
type Defaults struct {
	Channel string `json:"channel,omitempty"`
}

// Workspace is an opened workspace: its root directory and configuration.
type Workspace struct {
	Root   string
	Config Config
	git    git
	lock   held
}

// ErrNotWorkspace means no berth.yaml was found in the directory or its parents.
var ErrNotWorkspace = errors.New("not a berth workspace")

// InitOptions configures Init.
type InitOptions struct {
	Cluster ClusterRef
	Channel string
}

// Init creates a workspace in dir: a git repository (created, or adopted when dir
// already is one), berth.yaml and the layout, committed. Initialising a directory
// that already holds a workspace is an error, so nothing of the user's is replaced.
func Init(ctx context.Context, dir string, opts InitOptions) (*Workspace, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", abs, err)
	}
	g := git{dir: abs}
	if !g.isRepo(ctx) {
		if _, err := g.run(ctx, nil, "init", "--quiet", "--initial-branch=main"); err != nil {
			return nil, err
		}
	}
	channel := opts.Channel
	if channel == "" {
		channel = "stable"
	}
	w := &Workspace{Root: abs, git: g, Config: Config{
		APIVersion: APIVersion, Kind: "Workspace", Cluster: opts.Cluster, Defaults: Defaults{Channel: channel},
	}}
	// Holding the lock also discards what an init killed half-way wrote, so
	// running it again works.
	release, err := w.Acquire(ctx, LockOptions{})
	if err != nil {
		return nil, err
	}
	defer release()
	if _, err := os.Stat(filepath.Join(abs, ConfigFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a berth workspace (%s); use it as it is", abs, ConfigFile)
	}
	files := map[string][]byte{
		ConfigFile:                      mustYAML(w.Config),
		path.Join(AppsDir, ".keep"):     nil,
		path.Join(RenderedDir, ".keep"): nil,
	}
	ignore, changed, err := mergeIgnore(w.Abs(".gitignore"))
	if err != nil {
		return nil, err
	}
	if changed {
		files[".gitignore"] = ignore
	}
	err = w.Change(ctx, "initialise berth workspace", slices.Sorted(maps.Keys(files)), func() error {
		for name, data := range files {
			if err := w.WriteFile(name, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// ignoreLines are the .gitignore patterns berth needs: its temporary files.
var ignoreLines = []string{"*.tmp-*"}

// mergeIgnore returns the .gitignore at file with berth's patterns appended
// when they are absent, and whether that changed it; what the user wrote is
// kept as it is.
func mergeIgnore(file string) ([]byte, bool, error) {
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("reading %s: %w", file, err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(old), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var add []string
	for _, l := range ignoreLines {
		if !have[l] {
			add = append(add, l)
		}
	}
	if len(add) == 0 {
		return old, false, nil
	}
	out := slices.Clone(old)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	out = append(out, "# berth: local files that must never be committed\n"...)
	out = append(out, strings.Join(add, "\n")+"\n"...)
	return out, true, nil
}

// Open finds the workspace that contains dir (dir itself or a parent).
func Open(dir string) (*Workspace, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for d := abs; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, ConfigFile))
		if err == nil {
			w := &Workspace{Root: d, git: git{dir: d}}
			if err := decodeStrict(filepath.Join(d, ConfigFile), data, &w.Config); err != nil {
				return nil, err
			}
			if w.Config.Kind != "Workspace" || w.Config.APIVersion != APIVersion {
				return nil, fmt.Errorf("%s: want apiVersion %s and kind Workspace, got %q and %q", filepath.Join(d, ConfigFile), APIVersion, w.Config.APIVersion, w.Config.Kind)
			}
			if u := w.Config.Upgrades; u != nil {
				if err := u.validate("upgrades"); err != nil {
					return nil, fmt.Errorf("%s: %w", filepath.Join(d, ConfigFile), err)
				}
			}
			if err := w.Config.Console.validate(); err != nil {
				return nil, fmt.Errorf("%s: console.%w", filepath.Join(d, ConfigFile), err)
			}
			if err := w.Config.Monitoring.validate(); err != nil {
				return nil, fmt.Errorf("%s: monitoring.%w", filepath.Join(d, ConfigFile), err)
			}
			if err := w.Config.validateFleet(); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(d, ConfigFile), err)
			}
			return w, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if parent := filepath.Dir(d); parent == d {
			return nil, fmt.Errorf("%w: no %s in %s or any parent directory; create one with 'berth init'", ErrNotWorkspace, ConfigFile, abs)
		}
	}
}

// decodeStrict parses YAML into v, rejecting unknown fields, and names the file
// in errors.
func decodeStrict(file string, data []byte, v any) error {
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

func mustYAML(v any) []byte {
	data, err := yaml.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("workspace: marshalling %T: %v", v, err)) // only for types of this package
	}
	return data
}

// Abs returns the absolute path of a workspace-relative path.
func (w *Workspace) Abs(rel string) string { return filepath.Join(w.Root, filepath.FromSlash(rel)) }

// WriteFile writes a workspace-relative file atomically (temporary file, then rename).
func (w *Workspace) WriteFile(rel string, data []byte) error {
	if err := atomicfile.Write(w.Abs(rel), data, 0o644); err != nil {
		return err
	}
	crashPoint()
	return nil
}

// ReadFile reads a workspace-relative file.
func (w *Workspace) ReadFile(rel string) ([]byte, error) { return os.ReadFile(w.Abs(rel)) }

// DirtyError lists files berth would rewrite that hold uncommitted changes.
type DirtyError struct {
	Paths []string
}

func (e *DirtyError) Error() string {
	return fmt.Sprintf("the workspace has uncommitted changes in files berth would rewrite: %s; commit or discard them first (git -C <workspace> status)", strings.Join(e.Paths, ", "))
}

// Change runs fn, which writes files under the given workspace-relative paths,
// and commits exactly those paths with message, as one transaction. It holds
// the workspace lock (see Acquire) throughout. It refuses to start when any of
// the paths holds uncommitted changes (they would be lost or mixed into
// berth's commit), and when fn fails it puts them back as they were at HEAD.
// The journal it keeps in the git directory lets the next command finish or
// discard the change if this process dies before the commit. A change that
// writes identical bytes commits nothing.
func (w *Workspace) Change(ctx context.Context, message string, paths []string, fn func() error) error {
	_, err := w.change(ctx, message, paths, fn)
	return err
}

// ChangeCommitted is Change, also reporting whether a commit was made.
func (w *Workspace) ChangeCommitted(ctx context.Context, message string, paths []string, fn func() error) (bool, error) {
	return w.change(ctx, message, paths, fn)
}

func (w *Workspace) change(ctx context.Context, message string, paths []string, fn func() error) (bool, error) {
	if len(paths) == 0 {
		return false, errors.New("workspace change names no paths")
	}
	release, err := w.Acquire(ctx, LockOptions{})
	if err != nil {
		return false, err
	}
	defer release()
	dirty, err := w.git.dirty(ctx, paths...)
	if err != nil {
		return false, err
	}
	if len(dirty) > 0 {
		sort.Strings(dirty)
		return false, &DirtyError{Paths: dirty}
	}
	file, err := w.journalPath(ctx)
	if err != nil {
		return false, err
	}
	j := &journal{PID: os.Getpid(), Command: commandLine(), Started: time.Now().UTC().Truncate(time.Second),
		Head: w.git.head(ctx), Message: message, Paths: paths, State: stateWriting}
	if err := writeJournal(file, j); err != nil {
		return false, fmt.Errorf("writing the journal of the change: %w", err)
	}
	crashPoint()
	// From here on, whatever happens, the journal goes only once the paths are
	// committed or back as at HEAD.
	undo := func(err error) (bool, error) {
		if rerr := w.git.restore(context.WithoutCancel(ctx), paths...); rerr != nil {
			return false, errors.Join(err, fmt.Errorf("restoring %s after the failure: %w", strings.Join(paths, ", "), rerr))
		}
		return false, errors.Join(err, os.Remove(file))
	}
	if err := fn(); err != nil {
		return undo(err)
	}
	j.State = stateCommitting
	if err := writeJournal(file, j); err != nil {
		return undo(fmt.Errorf("writing the journal of the change: %w", err))
	}
	crashPoint()
	committed, err := w.git.commitPaths(ctx, message, paths...)
	if err != nil {
		return undo(fmt.Errorf("committing %q: %w", message, err))
	}
	crashPoint()
	if err := os.Remove(file); err != nil {
		return committed, fmt.Errorf("removing the journal of the committed change: %w", err)
	}
	crashPoint()
	return committed, nil
}

// History lists the commits that touched the given workspace paths, newest first.
func (w *Workspace) History(ctx context.Context, paths ...string) ([]Revision, error) {
	return w.git.log(ctx, paths...)
}

// Restore makes the given paths exactly as they were at revision rev, as a new
// commit with message. It reports an unknown revision in plain words.
func (w *Workspace) Restore(ctx context.Context, rev, message string, paths ...string) (string, error) {
	hash, err := w.git.resolve(ctx, rev)
	if err != nil {
		return "", err
	}
	err = w.Change(ctx, message, paths, func() error { return w.git.checkoutFrom(ctx, hash, paths...) })
	return hash, err
}

// RestoreFiles makes the given paths exactly as they were at revision rev, in
// the work tree only; call it inside Change to commit the result with more.
func (w *Workspace) RestoreFiles(ctx context.Context, rev string, paths ...string) (string, error) {
	hash, err := w.git.resolve(ctx, rev)
	if err != nil {
		return "", err
	}
	return hash, w.git.checkoutFrom(ctx, hash, paths...)
}

// FileAt returns a workspace file's content at revision rev.
func (w *Workspace) FileAt(ctx context.Context, rev, rel string) ([]byte, error) {
	return w.git.show(ctx, rev, rel)
}

// ResolveRevision turns a revision name (hash prefix, HEAD~2, a tag) into a
// full commit hash, or says in plain words that it is not one.
func (w *Workspace) ResolveRevision(ctx context.Context, rev string) (string, error) {
	return w.git.resolve(ctx, rev)
}

// Trailer returns the value of the trailer key (such as Berth-Rollback-To) in
// the message of revision rev, or "" when it has none.
func (w *Workspace) Trailer(ctx context.Context, rev, key string) (string, error) {
	return w.git.trailer(ctx, rev, key)
}
