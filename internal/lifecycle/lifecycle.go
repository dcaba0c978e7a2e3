// Package lifecycle runs berth's app lifecycle over a workspace: install (resolve,
// configure, render, commit), build, deploy (health-gated, in dependency order),
// status, config, upgrade, rollback and uninstall. It joins the catalog, the
// resolver, the renderer, the secrets and the deploy engine; each step that
// changes the workspace is one commit, and a failed step leaves it as it was.
package lifecycle

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"path"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// Env is what lifecycle operations work on.
type Env struct {
	WS       *workspace.Workspace
	Catalogs *catalog.Set
	// Cluster returns the client configuration of the target cluster; only
	// operations that touch the cluster call it.
	Cluster func() (*rest.Config, error)
	// Events, when set, receives progress.
	Events func(Event)
	// DeployEvents, when set, receives the deploy library's events of a
	// deploy this process runs.
	DeployEvents func(deploy.Event)
	// Preflight checks what a change renders against the cluster (a
	// server-side dry run of the objects that change) before it is
	// committed, so what the API server would refuse is never committed.
	Preflight bool
	// KubeVersion is the Kubernetes version charts are rendered for.
	KubeVersion string
	// ChartCache is where charts that packages take from Helm chart
	// repositories are kept once downloaded; empty means no cache.
	ChartCache string
	// LockTimeout bounds how long an operation that changes the workspace
	// waits for another one; workspace.DefaultLockTimeout when zero.
	LockTimeout time.Duration

	// FleetCluster is the cluster of a fleet workspace (berth.yaml
	// clusters:) that deploy and status work on: they read
	// rendered/CLUSTER/APP/ and only the apps placed there. Empty for a
	// workspace without clusters.
	FleetCluster string
	// ClusterOf returns the client configuration of a fleet cluster by
	// name; a fleet build asks each cluster which kinds it serves when set.
	ClusterOf func(name string) (*rest.Config, error)
	// Follow, when set, names the controller's Workspace this checkout is
	// for, instead of finding it by the repository's remotes, and pushes to
	// it: the controller's own clone (the console it serves) sets it.
	Follow *Follow
	// refused are the clusters the last fleet write refused, by app.
	refused []Refusal
}

// chartFetcher returns the fetcher of a build's remote charts: from the
// workspace's mirrors and the process's (BERTH_CHART_MIRROR), checked against
// the digests lock recorded.
func (e *Env) chartFetcher(lock *workspace.Lock) (*catalog.ChartFetcher, error) {
	var mirrors catalog.Mirrors
	for i, m := range e.WS.Config.Mirrors {
		m, err := catalog.ValidateMirror(m, e.WS.Root)
		if err != nil {
			return nil, fmt.Errorf("%s: mirrors[%d]: %w", workspace.ConfigFile, i, err)
		}
		mirrors = append(mirrors, m)
	}
	env, err := catalog.MirrorsFromEnv()
	if err != nil {
		return nil, err
	}
	return &catalog.ChartFetcher{Cache: e.ChartCache, Mirrors: append(env, mirrors...), Locked: lock.ChartDigests()}, nil
}

// Event reports progress: a step starting, a step done, or (Note) what a running
// step is waiting for.
type Event struct {
	App     string
	Message string
	Note    bool
	Done    bool
	Elapsed time.Duration
	Err     error
}

func (e *Env) emit(ev Event) {
	if e.Events != nil {
		e.Events(ev)
	}
}

// step runs fn as a reported step.
func (e *Env) step(app, msg string, fn func() error) error {
	e.emit(Event{App: app, Message: msg})
	start := time.Now()
	err := fn()
	e.emit(Event{App: app, Message: msg, Done: true, Elapsed: time.Since(start), Err: err})
	return err
}

// AnnotationPhase orders an app's rendered objects for deployment (see
// deploy.AnnotationPhase): components before the app that uses them, and within
// each the stages crds, pre (hooks such as migrations), main and post.
const AnnotationPhase = deploy.AnnotationPhase

// stageIndex gives render's stages their place within a part.
func stageIndex(s render.Stage) int {
	for i, st := range render.Stages {
		if st == s {
			return i
		}
	}
	return len(render.Stages)
}

// appSecrets is apps/<app>/secrets.yaml, an encrypted file: the seed that the
// app's generated values (passwords) derive from, so every clone that can
// decrypt renders the same values, and the secret parameters the user set.
type appSecrets struct {
	Seed   string         `json:"seed"`
	Values map[string]any `json:"values,omitempty"`
}

func secretsPath(app string) string { return path.Join(workspace.AppDir(app), workspace.SecretsFile) }

// ErrLocked means the workspace's secrets cannot be read or written.
var ErrLocked = errors.New("the workspace's secrets are encrypted and this clone cannot decrypt them")

func (e *Env) readSecrets(app string) (*appSecrets, error) {
	data, err := e.WS.ReadFile(secretsPath(app))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", secretsPath(app), err)
	}
	if secrets.IsEncrypted(data) {
		return nil, ErrLocked
	}
	var s appSecrets
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		// Never echo the content: it is secret.
		return nil, fmt.Errorf("%s is not valid YAML of a seed and values; restore it with 'berth rollback %s'", secretsPath(app), app)
	}
	return &s, nil
}

func (e *Env) writeSecrets(ctx context.Context, app string, s *appSecrets) error {
	data, err := yaml.Marshal(s)
	if err != nil {
		return err
	}
	if old, err := e.WS.ReadFile(secretsPath(app)); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := secrets.WriteSecretFile(ctx, e.WS.Root, secretsPath(app), data); err != nil {
		if errors.Is(err, secrets.ErrLocked) {
			return ErrLocked
		}
		return fmt.Errorf("writing %s: %w", secretsPath(app), err)
	}
	return nil
}

func newSeed() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func (s *appSecrets) seed() ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s.Seed)
	if err != nil || len(b) < 16 {
		return nil, errors.New("the seed in secrets.yaml is damaged")
	}
	return b, nil
}
