package runbook

import (
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/pkgspec"
)

// TestCatalogRunbooksValidate loads each runbooks.yaml of
// testdata/catalog-runbooks into a stand-in package with the configuration
// parameters they set, and renders every step with sample parameters, so the
// definitions handed over for the catalog are valid as they are.
func TestCatalogRunbooksValidate(t *testing.T) {
	params := map[string]string{
		"postgresql": "  - {name: storage, type: size, default: 8Gi}\n  - {name: cpu, type: size, default: 250m}\n  - {name: memory, type: size, default: 512Mi}\n  - {name: password, type: password, generate: {length: 32}}\n  - {name: username, type: string, default: app}\n  - {name: database, type: string, default: app}\n",
		"redis":      "  - {name: storage, type: size, default: 8Gi}\n",
		"airflow":    "  - {name: workers, type: int, default: 1}\n",
		"grafana":    "  - {name: adminPassword, type: password, generate: {length: 24}}\n",
	}
	samples := map[string]map[string]any{
		"resize-storage":       {"size": "16Gi"},
		"scale-resources":      {"cpu": "1", "memory": "2Gi"},
		"backup":               {"name": "nightly"},
		"restore":              {"backup": "nightly"},
		"rotate-password":      nil,
		"scale-workers":        {"workers": 3},
		"reset-admin-password": nil,
	}
	root := os.DirFS("testdata/catalog-runbooks")
	for name, cfg := range params {
		t.Run(name, func(t *testing.T) {
			rbs, err := fs.ReadFile(root, path.Join(name, "runbooks.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			doc := "apiVersion: berth.dev/v1alpha1\nkind: Package\nname: " + name + "\nversion: 1.0.0\ndescription: stand-in\nmanifests: [all.yaml]\nconfig:\n" + cfg +
				"runbooks:\n" + indent(string(rbs))
			files := fstest.MapFS{"package.yaml": {Data: []byte(doc)}, "all.yaml": {Data: []byte("{}\n")}}
			jobs, _ := fs.ReadDir(root, path.Join(name, "jobs"))
			for _, j := range jobs {
				data, err := fs.ReadFile(root, path.Join(name, "jobs", j.Name()))
				if err != nil {
					t.Fatal(err)
				}
				files["jobs/"+j.Name()] = &fstest.MapFile{Data: data}
			}
			p, err := pkgspec.Load(files, ".", name+"/package.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Runbooks) == 0 {
				t.Fatal("no runbooks")
			}
			for _, rb := range p.Runbooks {
				values, ok := samples[rb.Name]
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
					"config": map[string]any{"storage": "8Gi", "database": "app", "username": "app", "workers": 1},
					"app":    map[string]any{"name": "x", "namespace": "x"},
					"run":    map[string]any{"id": "20261206-230000-abcd"},
				}
				steps, err := prepare(rb, files, data)
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
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
