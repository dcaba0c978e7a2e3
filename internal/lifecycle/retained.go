package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// RetainedDir holds the secrets of uninstalled apps whose data was kept:
// apps/.retained/secrets/NAMESPACE/APP.yaml. The workspace's secret path
// apps/*/secrets/** encrypts it like every other secret file, and
// workspace.Apps skips the directory (it has no app.yaml).
const RetainedDir = "apps/.retained/secrets"

// retainedSecrets is a retained file: the package the app was, its seed and its
// secret values, so that a reinstall under the same name and namespace renders
// the same generated passwords for the data that was kept.
type retainedSecrets struct {
	Package string         `json:"package"`
	Seed    string         `json:"seed"`
	Values  map[string]any `json:"values,omitempty"`
}

func retainedPath(namespace, app string) string {
	return path.Join(RetainedDir, namespace, app+".yaml")
}

// retain moves an app's secrets to its retained file (in the work tree; the
// caller commits both paths).
func (e *Env) retain(ctx context.Context, a *workspace.App) (string, error) {
	s, err := e.readSecrets(a.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	data, err := yaml.Marshal(retainedSecrets{Package: a.Package, Seed: s.Seed, Values: s.Values})
	if err != nil {
		return "", err
	}
	rel := retainedPath(a.Namespace, a.Name)
	if err := secrets.WriteSecretFile(ctx, e.WS.Root, rel, data); err != nil {
		if errors.Is(err, secrets.ErrLocked) {
			return "", ErrLocked
		}
		return "", fmt.Errorf("writing %s: %w", rel, err)
	}
	return rel, nil
}

// retained reads the secrets kept for an app of this name and namespace, if any.
func (e *Env) retained(namespace, app string) (*retainedSecrets, error) {
	rel := retainedPath(namespace, app)
	data, err := e.WS.ReadFile(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", rel, err)
	}
	if secrets.IsEncrypted(data) {
		return nil, ErrLocked
	}
	var r retainedSecrets
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, fmt.Errorf("%s is not valid YAML of a package, seed and values; restore it from git history", rel)
	}
	return &r, nil
}

// initialSecrets are the secrets of a newly installed app: those retained for
// an earlier app of the same name and namespace (its seed always, its secret
// values when it was the same package, under the ones given now), or a new
// seed. The retained file is removed from the work tree: the app's own
// secrets.yaml holds them from now on.
func (e *Env) initialSecrets(namespace, app, pkg string, given map[string]any) (*appSecrets, error) {
	r, err := e.retained(namespace, app)
	if err != nil {
		return nil, err
	}
	if r == nil {
		seed, err := newSeed()
		if err != nil {
			return nil, err
		}
		return &appSecrets{Seed: seed, Values: given}, nil
	}
	s := &appSecrets{Seed: r.Seed}
	if r.Package == pkg && len(r.Values) > 0 {
		s.Values = map[string]any{}
		mergeValues(s.Values, r.Values)
	}
	if len(given) > 0 {
		if s.Values == nil {
			s.Values = map[string]any{}
		}
		mergeValues(s.Values, given)
	}
	if _, err := s.seed(); err != nil {
		return nil, fmt.Errorf("%s: %w", retainedPath(namespace, app), err)
	}
	if err := os.Remove(e.WS.Abs(retainedPath(namespace, app))); err != nil {
		return nil, err
	}
	return s, nil
}

// hasRetained reports whether secrets are kept for an app of this name and
// namespace (git cannot commit a path that never existed).
func (e *Env) hasRetained(namespace, app string) bool {
	_, err := os.Stat(e.WS.Abs(retainedPath(namespace, app)))
	return err == nil
}
