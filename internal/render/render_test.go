package render

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var testSeed = []byte("berth render tests: a fixed seed")

type builtinLoader struct{ set *catalog.Set }

func (l builtinLoader) Load(ctx context.Context, name, version string) (*pkgspec.Package, fs.FS, error) {
	f, err := l.set.Find(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return l.set.Load(ctx, f, version)
}

func builtinSet() *catalog.Set {
	return catalog.NewSet([]catalog.Ref{{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin}}, map[string]catalog.Source{catalog.BuiltinName: catalog.Builtin()})
}

// builtinPrefer returns the stable channel's version of every built-in
// package, which berth prefers for components, as the CLI does.
func builtinPrefer(t testing.TB, set *catalog.Set) map[string]string {
	t.Helper()
	all, err := set.Packages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	prefer := map[string]string{}
	for _, f := range all {
		if v, ok := f.Entry.Channels["stable"]; ok {
			prefer[f.Entry.Name] = v
		}
	}
	return prefer
}

func builtinUniverse(t testing.TB, set *catalog.Set) *resolve.Universe {
	t.Helper()
	all, err := set.Packages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string][]resolve.Candidate{}
	for _, f := range all {
		for _, v := range f.Entry.Versions {
			c := resolve.Candidate{Version: v.Version}
			for _, d := range v.Dependencies {
				c.Dependencies = append(c.Dependencies, resolve.Dependency{Name: d.Key(), Package: d.Package, Constraint: d.Version, Kind: d.Kind, Optional: d.Optional})
			}
			pkgs[f.Entry.Name] = append(pkgs[f.Entry.Name], c)
		}
	}
	u, err := resolve.NewUniverse(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// builtinVersion is one version of a built-in package.
type builtinVersion struct{ name, version string }

func builtinVersions(t testing.TB, set *catalog.Set) []builtinVersion {
	all, err := set.Packages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []builtinVersion
	for _, f := range all {
		for _, v := range f.Entry.Versions {
			out = append(out, builtinVersion{f.Entry.Name, v.Version})
		}
	}
	return out
}

// renderBuiltin renders a built-in package version as app NAME in namespace.
func renderBuiltin(t testing.TB, set *catalog.Set, u *resolve.Universe, bv builtinVersion, namespace string, values map[string]any) *AppResult {
	t.Helper()
	sol, err := resolve.Solve(u, resolve.Input{Requests: []resolve.Request{{Package: bv.name, Constraint: "=" + bv.version}}, Prefer: builtinPrefer(t, set)})
	if err != nil {
		t.Fatalf("%s %s: %v", bv.name, bv.version, err)
	}
	// Charts from upstream repositories come from the mirror testcluster.Main sets.
	mirrors, err := catalog.MirrorsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	res, err := RenderApp(context.Background(), builtinLoader{set}, AppInput{
		Solution: sol, App: bv.name, Namespace: namespace, Values: values,
		Generator: func(scope string) pkgspec.Generator { return pkgspec.SeededGenerator(testSeed, scope) },
		Charts:    (&catalog.ChartFetcher{Cache: t.TempDir(), Mirrors: mirrors}).Fetch,
	})
	if err != nil {
		t.Fatalf("%s %s: %v", bv.name, bv.version, err)
	}
	return res
}

func appYAML(t testing.TB, res *AppResult) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, d := range res.Shared {
		fmt.Fprintf(&b, "# shared %s %s outputs %v\n", d.Package, d.Version, d.Outputs)
	}
	for _, p := range res.Parts {
		fmt.Fprintf(&b, "# %s %s %s as %s, outputs %v, skipped %v\n", p.Role, p.Package, p.Version, p.App, p.Result.Outputs, p.Result.Skipped)
		if err := p.Result.YAML(&b); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestBuiltinGolden renders every version of every built-in package and
// compares it with testdata/golden; run with -update to accept changes.
func TestBuiltinGolden(t *testing.T) {
	set := builtinSet()
	u := builtinUniverse(t, set)
	versions := builtinVersions(t, set)
	if len(versions) < 7 {
		t.Fatalf("the built-in catalog has %d package versions, expected at least 7", len(versions))
	}
	for _, bv := range versions {
		t.Run(bv.name+"@"+bv.version, func(t *testing.T) {
			got := appYAML(t, renderBuiltin(t, set, u, bv, "apps", nil))
			again := appYAML(t, renderBuiltin(t, set, u, bv, "apps", nil))
			if !bytes.Equal(got, again) {
				t.Fatalf("two renders of the same input differ:\n%s", cmp.Diff(string(got), string(again)))
			}
			golden := filepath.Join("testdata", "golden", bv.name+"-"+bv.version+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("render of %s %s differs from %s (-want +got):\n%s", bv.name, bv.version, golden, diff)
			}
		})
	}
}

// testPackage is a small package exercising hooks, CRDs, manifests and namespaces.
var testPackage = fstest.MapFS{
	"package.yaml": {Data: []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: demo
version: 1.0.0
description: Demo.
charts:
  - path: chart
    values: values.tmpl
manifests: [extra.yaml]
config:
  - {name: replicas, type: int, default: 2}
outputs:
  - {name: host, value: "{{ .app.name }}.{{ .app.namespace }}.svc"}
  - {name: dbHost, value: "{{ .deps.db.outputs.host }}"}
`)},
	"values.tmpl": {Data: []byte("replicas: {{ .config.replicas }}\ndb: {{ .deps.db.outputs.host }}\n")},
	"extra.yaml": {Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: extra}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: global-widget}
---
apiVersion: v1
kind: Namespace
metadata: {name: side}
`)},
	"chart/Chart.yaml":        {Data: []byte("apiVersion: v2\nname: demo\nversion: 1.0.0\n")},
	"chart/values.yaml":       {Data: []byte("replicas: 1\ndb: none\n")},
	"chart/crds/widgets.yaml": {Data: []byte("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Cluster\n  names: {kind: Widget, plural: widgets}\n  versions: [{name: v1, served: true, storage: true}]\n")},
	"chart/templates/deploy.yaml": {Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicas }}
  template: {metadata: {annotations: {db: {{ .Values.db }}, widgets: "{{ .Capabilities.APIVersions.Has "example.com/v1" }}"}}}
`)},
	"chart/templates/hooks.yaml": {Data: []byte(`apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {helm.sh/hook: "pre-upgrade,pre-install", helm.sh/hook-weight: "5", helm.sh/hook-delete-policy: hook-succeeded}
---
apiVersion: v1
kind: Secret
metadata:
  name: early
  annotations: {helm.sh/hook: pre-install, helm.sh/hook-weight: "-5"}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: seed
  annotations: {helm.sh/hook: post-install}
---
apiVersion: v1
kind: Pod
metadata:
  name: smoke
  annotations: {helm.sh/hook: test}
`)},
	"chart/templates/NOTES.txt": {Data: []byte("Thanks for installing.")},
}

func TestRenderStagesAndNamespaces(t *testing.T) {
	p, err := pkgspec.Load(testPackage, ".", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := p.Configure(pkgspec.ConfigureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(Input{Package: p, Files: testPackage, App: "web", Namespace: "apps", Config: cfg,
		Deps: map[string]Dep{"db": {Outputs: map[string]string{"host": "db.data.svc"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Objects {
		got = append(got, fmt.Sprintf("%s %d %s", o.Stage, o.Weight, o.ID()))
	}
	want := []string{
		"crds 0 CustomResourceDefinition/widgets.example.com",
		"pre -5 Secret/apps/early",
		"pre 5 Job/apps/migrate",
		"main 0 Namespace/side",
		"main 0 ConfigMap/apps/extra",
		"main 0 Deployment/apps/web",
		"main 0 Widget/global-widget",
		"post 0 Job/apps/seed",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Pod smoke (test hook)"}, res.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"host": "web.apps.svc", "dbHost": "db.data.svc"}, res.Outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	for _, o := range res.Objects {
		ann := o.Object.GetAnnotations()
		switch o.Object.GetName() {
		case "migrate":
			want := map[string]string{AnnotationStage: "pre", AnnotationHookEvents: "pre-install,pre-upgrade", AnnotationDeletePolicy: "hook-succeeded", AnnotationHookWeight: "5"}
			if diff := cmp.Diff(want, ann); diff != "" {
				t.Errorf("migrate annotations (-want +got):\n%s", diff)
			}
		case "web":
			tmpl, _, _ := unstructuredString(o.Object.Object, "spec", "template", "metadata", "annotations", "db")
			widgets, _, _ := unstructuredString(o.Object.Object, "spec", "template", "metadata", "annotations", "widgets")
			if tmpl != "db.data.svc" || widgets != "true" {
				t.Errorf("deployment annotations db=%q widgets=%q; want the dependency output and the CRD's API version", tmpl, widgets)
			}
			if o.Object.GetLabels()[LabelApp] != "web" || o.Object.GetLabels()[LabelPackage] != "demo" {
				t.Errorf("labels = %v", o.Object.GetLabels())
			}
		}
	}
}

func TestRenderErrors(t *testing.T) {
	load := func(t *testing.T, files fstest.MapFS) *pkgspec.Package {
		t.Helper()
		p, err := pkgspec.Load(files, ".", "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	with := func(changes map[string]string) fstest.MapFS {
		m := fstest.MapFS{}
		for k, v := range testPackage {
			m[k] = v
		}
		for k, v := range changes {
			m[k] = &fstest.MapFile{Data: []byte(v)}
		}
		return m
	}
	tests := map[string]struct {
		files fstest.MapFS
		deps  map[string]Dep
		kube  string
		want  string
	}{
		"missing dependency output": {files: testPackage, want: `map has no entry for key "db"`},
		"template error":            {files: with(map[string]string{"chart/templates/bad.yaml": "{{ .Values.nope.deeper }}"}), want: "package.yaml: chart chart: demo/templates/bad.yaml:1:10"},
		"no kind":                   {files: with(map[string]string{"chart/templates/bad.yaml": "metadata: {name: x}"}), want: "demo/templates/bad.yaml: document 1 has no apiVersion or kind"},
		"values not yaml":           {files: with(map[string]string{"values.tmpl": "replicas: [\n"}), want: "values template values.tmpl does not produce YAML"},
		"kube version":              {files: with(map[string]string{"chart/Chart.yaml": "apiVersion: v2\nname: demo\nversion: 1.0.0\nkubeVersion: '>=1.40.0'\n"}), want: "the chart needs Kubernetes >=1.40.0, not v1.34.0"},
		"bad manifest":              {files: with(map[string]string{"extra.yaml": "kind: ConfigMap\n"}), want: "extra.yaml: document 1 has no apiVersion or kind"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			deps := tc.deps
			if deps == nil && name != "missing dependency output" {
				deps = map[string]Dep{"db": {Outputs: map[string]string{"host": "h"}}}
			}
			p := load(t, tc.files)
			_, err := Render(Input{Package: p, Files: tc.files, App: "web", Namespace: "apps", Config: pkgspec.Config{"replicas": int64(1)}, Deps: deps, KubeVersion: tc.kube})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRenderRepositoryChart(t *testing.T) {
	ch, err := loader.LoadFiles([]*archive.BufferedFile{
		{Name: "Chart.yaml", Data: []byte("apiVersion: v2\nname: hello\nversion: 0.3.0\n")},
		{Name: "templates/cm.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata: {greeting: {{ .Values.greeting }}}\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	digest := catalog.Digest(b)
	files := fstest.MapFS{
		"package.yaml": {Data: []byte("apiVersion: berth.dev/v1alpha1\nkind: Package\nname: hello\nversion: 1.0.0\ndescription: d\ncharts:\n  - {repo: https://charts.example.com, chart: hello, version: 0.3.0, digest: \"" + digest + "\", values: v.tmpl}\n")},
		"v.tmpl":       {Data: []byte("greeting: hi\n")},
	}
	p, err := pkgspec.Load(files, ".", "")
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Package: p, Files: files, App: "h", Namespace: "ns", Config: pkgspec.Config{}, Charts: map[string][]byte{"hello": b}}
	res, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 1 || res.Objects[0].ID() != "ConfigMap/ns/h" {
		t.Fatalf("objects = %+v", res.Objects)
	}
	in.Charts = map[string][]byte{"hello": append(b[:len(b):len(b)], 0)}
	if _, err := Render(in); err == nil || !strings.Contains(err.Error(), "but the package pins "+digest) {
		t.Errorf("Render with a changed archive: %v", err)
	}
	in.Charts = nil
	if _, err := Render(in); err == nil || !strings.Contains(err.Error(), "the archive of hello 0.3.0 from https://charts.example.com was not fetched") {
		t.Errorf("Render without the archive: %v", err)
	}
}
