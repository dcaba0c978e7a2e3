package runbook

import (
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"

	builtin "berth.dev/berth/catalog"
	"berth.dev/berth/internal/pkgspec"
)

// catalogRunbooks are the executable runbooks each package of the built-in
// catalog must have, in every version.
var catalogRunbooks = map[string][]string{
	"postgresql": {"resize-storage", "scale-resources", "backup", "restore", "rotate-password"},
	"redis":      {"resize-storage"},
	"airflow":    {"scale-workers"},
	"grafana":    {"reset-admin-password"},
}

// runbookSamples are parameters each catalog runbook is tried with.
var runbookSamples = map[string]map[string]any{
	"resize-storage":       {"size": "16Gi"},
	"scale-resources":      {"cpu": "1", "memory": "2Gi"},
	"backup":               {"name": "nightly"},
	"restore":              {"backup": "nightly"},
	"rotate-password":      nil,
	"scale-workers":        {"workers": 3},
	"reset-admin-password": nil,
}

// TestCatalogRunbooksValidate loads every version of the built-in catalog's
// packages, as berth does, checks that those above have their runbooks, and
// renders every executable runbook's checks and steps (Job templates
// included) over the package's default configuration with sample
// parameters.
func TestCatalogRunbooksValidate(t *testing.T) {
	files, err := fs.Glob(builtin.FS, "*/*/package.yaml")
	if err != nil || len(files) < 15 {
		t.Fatalf("found %d package versions in the built-in catalog (%v)", len(files), err)
	}
	seen := map[string]int{}
	for _, file := range files {
		dir := path.Dir(file)
		name := path.Dir(dir)
		t.Run(strings.ReplaceAll(dir, "/", "@"), func(t *testing.T) {
			pkgFS, err := fs.Sub(builtin.FS, dir)
			if err != nil {
				t.Fatal(err)
			}
			p, err := pkgspec.Load(pkgFS, ".", file)
			if err != nil {
				t.Fatal(err)
			}
			var executable []string
			for _, rb := range p.Runbooks {
				if rb.Executable() {
					executable = append(executable, rb.Name)
				}
			}
			if want := catalogRunbooks[name]; !slices.Equal(executable, want) {
				t.Errorf("executable runbooks %v, want %v", executable, want)
			}
			if len(executable) > 0 {
				seen[name]++
			}
			cfg, err := p.Configure(pkgspec.ConfigureOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, rb := range p.Runbooks {
				if !rb.Executable() {
					continue
				}
				values, ok := runbookSamples[rb.Name]
				if !ok {
					t.Errorf("runbook %s has no sample parameters in this test", rb.Name)
					continue
				}
				params, err := rb.CheckParams(values, nil)
				if err != nil {
					t.Errorf("runbook %s: %v", rb.Name, err)
					continue
				}
				data := map[string]any{
					"params": map[string]any(params),
					"config": map[string]any(cfg),
					"app":    map[string]any{"name": "x", "namespace": "x"},
					"run":    map[string]any{"id": "20261206-230000-abcd"},
				}
				for i, c := range rb.Checks {
					for field, text := range map[string]string{"name": c.Name, "message": c.Message} {
						if _, err := render("check "+field, text, data); err != nil {
							t.Errorf("runbook %s checks[%d].%s: %v", rb.Name, i, field, err)
						}
					}
				}
				steps, err := prepare(rb, pkgFS, data)
				if err != nil {
					t.Errorf("runbook %s: %v", rb.Name, err)
					continue
				}
				if len(steps) != len(rb.Steps) {
					t.Errorf("runbook %s: %d steps prepared of %d", rb.Name, len(steps), len(rb.Steps))
				}
			}
		})
	}
	for name := range catalogRunbooks {
		if seen[name] == 0 {
			t.Errorf("no version of %s has its runbooks", name)
		}
	}
}

// TestRedisResizeRefusesReadReplicas: the redis runbook grows a Redis
// without read replicas only; with replicas its check names an object that
// cannot exist, and its message says why.
func TestRedisResizeRefusesReadReplicas(t *testing.T) {
	pkgFS, err := fs.Sub(builtin.FS, "redis/22.0.4")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pkgspec.Load(pkgFS, ".", "redis/22.0.4/package.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rb, ok := p.Runbook("resize-storage")
	if !ok || len(rb.Checks) != 1 {
		t.Fatalf("resize-storage: %+v", rb)
	}
	for replicas, want := range map[int64]string{0: "x-master", 2: "x-without-read-replicas"} {
		cfg, err := p.Configure(pkgspec.ConfigureOptions{Values: map[string]any{"replicas": replicas}})
		if err != nil {
			t.Fatal(err)
		}
		data := map[string]any{"config": map[string]any(cfg), "app": map[string]any{"name": "x", "namespace": "x"}}
		got, err := render("check name", rb.Checks[0].Name, data)
		if err != nil || got != want {
			t.Errorf("with %d replicas the check looks for %q (%v), want %q", replicas, got, err, want)
		}
	}
}
