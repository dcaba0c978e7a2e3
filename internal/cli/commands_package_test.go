package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The -update flag rewrites golden files; it is registered here unless
// another test file of the package already did.
var _ = func() bool {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
	return true
}()

func updatingGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func pkgBerth(t *testing.T, home string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), &App{Out: &out, Err: &errb, Home: home}, args)
	return out.String(), errb.String(), code
}

func pkgGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "package", name)
	if updatingGolden() {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run TestPackage -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", p, diff)
	}
}

func TestPackageCommandsGolden(t *testing.T) {
	home := t.TempDir()
	tests := map[string]struct {
		args   []string
		golden string
	}{
		"search all":        {[]string{"search"}, "search.txt"},
		"search text":       {[]string{"search", "TLS"}, "search-tls.txt"},
		"search json":       {[]string{"search", "postgres", "-o", "json"}, "search-postgres.json"},
		"search nothing":    {[]string{"search", "zzz"}, "search-nothing.txt"},
		"show":              {[]string{"show", "airflow"}, "show-airflow.txt"},
		"show channel":      {[]string{"show", "postgresql@latest"}, "show-postgresql-latest.txt"},
		"show json":         {[]string{"show", "grafana", "-o", "json"}, "show-grafana.json"},
		"catalog list":      {[]string{"catalog", "list"}, "catalog-list.txt"},
		"catalog list json": {[]string{"catalog", "list", "-o", "json"}, "catalog-list.json"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := pkgBerth(t, home, tc.args...)
			if code != 0 {
				t.Fatalf("berth %v: exit %d: %s", tc.args, code, errOut)
			}
			if strings.HasSuffix(tc.golden, ".json") && !json.Valid([]byte(out)) {
				t.Fatalf("-o json printed invalid JSON:\n%s", out)
			}
			pkgGolden(t, tc.golden, out)
		})
	}
}

func TestPackageCommandErrors(t *testing.T) {
	home := t.TempDir()
	tests := map[string]struct {
		args []string
		want string
	}{
		"unknown package":     {[]string{"show", "postgress"}, "Error: package postgress is not in any catalog; search with 'berth search postgress'"},
		"unknown version":     {[]string{"show", "postgresql@9"}, `Error: postgresql has no version or channel "9" (channels: stable=16.4.0, warm=16.4.0, latest=17.2.0; versions: 17.2.0, 16.4.0)`},
		"range for show":      {[]string{"show", "postgresql@>=16"}, "Error: show needs one version, not a range"},
		"bad type":            {[]string{"template", "postgresql", "--set", "maxConnections=many"}, `Error: invalid configuration for postgresql 16.4.0: config "maxConnections": must be a whole number (got "many"); use digits only, e.g. 3`},
		"rule":                {[]string{"template", "postgresql", "--set", "username=postgres"}, `config "username": the user postgres is the superuser and is reserved; choose another username`},
		"secret hidden":       {[]string{"template", "postgresql", "--set", "password=tooshort"}, `config "password": must be at least 16 characters long (got 8)`},
		"component value":     {[]string{"template", "airflow", "--set", "postgresql.storage=1Mi"}, `Error: component postgresql of app airflow: invalid configuration for postgresql 16.4.0: config "storage": must be at least 1Gi (got 1Mi)`},
		"bad set":             {[]string{"template", "redis", "--set", "novalue"}, `Error: --set "novalue": use NAME=VALUE`},
		"unknown param":       {[]string{"template", "redis", "--set", "colour=blue"}, `config "colour": is not a parameter of redis; known parameters: password, maxMemory`},
		"no constraint fit":   {[]string{"template", "redis@>=9"}, "Error: cannot resolve dependencies: you asked for redis >=9, but the catalog only has 7.4.2, 7.4.1"},
		"missing values file": {[]string{"template", "redis", "-f", "/nonexistent.yaml"}, "Error: --values: open /nonexistent.yaml"},
		"remove builtin":      {[]string{"catalog", "remove", "builtin"}, "Error: the built-in catalog cannot be removed"},
		"add missing dir":     {[]string{"catalog", "add", "x", "/nonexistent/dir"}, "Error: catalog directory /nonexistent/dir does not exist"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := pkgBerth(t, home, tc.args...)
			if code == 0 {
				t.Fatalf("berth %v succeeded, want an error", tc.args)
			}
			if out != "" {
				t.Errorf("berth %v printed to stdout on error:\n%s", tc.args, out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr =\n  %s\nwant it to contain\n  %s", errOut, tc.want)
			}
			if strings.Contains(errOut, "tooshort") {
				t.Errorf("an error shows a secret value: %s", errOut)
			}
		})
	}
}

func TestTemplateIsStableAndHonoursFlags(t *testing.T) {
	home := t.TempDir()
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("storage: 20Gi\nmaxConnections: 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"template", "postgresql@latest", "--name", "db", "--namespace", "data", "-f", values, "--set", "maxConnections=200"}
	first, errOut, code := pkgBerth(t, home, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	second, _, _ := pkgBerth(t, home, args...)
	if first != second {
		t.Errorf("two runs printed different objects:\n%s", cmp.Diff(first, second))
	}
	for _, want := range []string{"# app postgresql 17.2.0 as app db", "namespace: data", "storage: 20Gi", "max_connections=200", "image: docker.io/library/postgres:17.2"} {
		if !strings.Contains(first, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	other, _, _ := pkgBerth(t, t.TempDir(), args...)
	if other == first {
		t.Error("two homes generated the same password; the seed must be per home")
	}
}

func TestTemplateAirflowStages(t *testing.T) {
	out, errOut, code := pkgBerth(t, t.TempDir(), "template", "airflow", "--namespace", "etl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Components come first, then the app with its migration Job before the
	// main objects and the admin Job after them.
	order := []string{
		"# component postgresql", "# component redis", "# app airflow 2.10.3 as app airflow",
		"name: airflow-migrate", "# Stage: main", "name: airflow-create-admin",
	}
	pos := 0
	for _, s := range order {
		i := strings.Index(out[pos:], s)
		if i < 0 {
			t.Fatalf("%q is missing or out of order in:\n%s", s, out)
		}
		pos += i
	}
	if !strings.Contains(out, "host: airflow-postgresql.etl.svc") && !strings.Contains(out, "@airflow-postgresql.etl.svc:5432/airflow") {
		t.Error("airflow does not use its postgresql component's output")
	}
}

func TestCatalogCommands(t *testing.T) {
	home := t.TempDir()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "tool", "1.0.0")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "package.yaml"), []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: tool
version: 1.0.0
description: A tool with a secret default.
manifests: [m.yaml]
config:
  - {name: token, type: password, default: s3cret-default-token}
  - {name: apiKey, type: string, secret: true, default: another-secret}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "m.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tool}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := pkgBerth(t, home, "catalog", "add", "team", dir); code != 0 || !strings.Contains(out, "Added catalog team (dir, "+dir+")") {
		t.Fatalf("catalog add: %d %s %s", code, out, errOut)
	}
	out, _, _ := pkgBerth(t, home, "catalog", "list", "-o", "json")
	var refs []map[string]string
	if err := json.Unmarshal([]byte(out), &refs); err != nil || len(refs) != 2 || refs[1]["name"] != "team" || refs[1]["type"] != "dir" {
		t.Errorf("catalog list -o json = %s (%v)", out, err)
	}
	out, _, _ = pkgBerth(t, home, "search", "tool")
	if !strings.Contains(out, "tool") || !strings.Contains(out, "team") {
		t.Errorf("search tool = %s", out)
	}
	out, errOut, code := pkgBerth(t, home, "show", "team/tool", "-o", "json")
	if code != 0 {
		t.Fatalf("show: %s", errOut)
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "another-secret") {
		t.Errorf("show -o json reveals a secret default:\n%s", out)
	}
	if strings.Count(out, `"default": "********"`) != 2 {
		t.Errorf("show -o json does not mask both secret defaults:\n%s", out)
	}
	out, _, _ = pkgBerth(t, home, "show", "tool")
	if strings.Contains(out, "s3cret") {
		t.Errorf("show reveals a secret default:\n%s", out)
	}
	if out, _, code := pkgBerth(t, home, "catalog", "update"); code != 0 || !strings.Contains(out, "Updated 2 catalog(s).") {
		t.Errorf("catalog update: %d %s", code, out)
	}
	if out, _, code := pkgBerth(t, home, "catalog", "update", "team", "-o", "json"); code != 0 || out != "{\n  \"updated\": [\n    \"team\"\n  ]\n}\n" {
		t.Errorf("catalog update -o json: %d %q", code, out)
	}
	if out, _, code := pkgBerth(t, home, "catalog", "remove", "team"); code != 0 || out != "Removed catalog team.\n" {
		t.Errorf("catalog remove: %d %s", code, out)
	}
	if _, errOut, code := pkgBerth(t, home, "show", "tool"); code == 0 || !strings.Contains(errOut, "package tool is not in any catalog") {
		t.Errorf("show after remove: %d %s", code, errOut)
	}
}

func TestTemplateAPIVersions(t *testing.T) {
	home := t.TempDir()
	catalogDir := t.TempDir()
	if err := os.CopyFS(filepath.Join(catalogDir, "caps", "1.0.0"), os.DirFS("../render/testdata/helm/caps")); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := pkgBerth(t, home, "catalog", "add", "local", catalogDir); code != 0 {
		t.Fatalf("catalog add: %s", errOut)
	}
	without, errOut, code := pkgBerth(t, home, "template", "caps")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	with, errOut, code := pkgBerth(t, home, "template", "caps", "--api-versions", "monitoring.coreos.com/v1,monitoring.coreos.com/v1/ServiceMonitor")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(without, `monitoring: "false"`) || !strings.Contains(with, `monitoring: "true"`) || !strings.Contains(with, `servicemonitor: "true"`) {
		t.Errorf("charts do not see --api-versions:\nwithout:\n%s\nwith:\n%s", without, with)
	}
}
