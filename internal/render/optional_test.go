package render

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
)

// optionalCatalog: dash uses logs when the workspace has it; kit brings it.
var optionalCatalog = fstest.MapFS{
	"dash/1.0.0/package.yaml": {Data: []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: dash
version: 1.0.0
description: Dashboards.
manifests: [m.yaml]
dependencies:
  - {package: logs, version: ^6, kind: shared, optional: true}
outputs:
  - name: logsSource
    value: '{{ with index .deps "logs" }}{{ .outputs.url }}{{ else }}none{{ end }}'
`)},
	"dash/1.0.0/m.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dash}\n")},
	"logs/6.1.0/package.yaml": {Data: []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: logs
version: 6.1.0
description: Logs.
manifests: [m.yaml]
outputs:
  - {name: url, value: "http://{{ .app.name }}.{{ .app.namespace }}.svc:3100"}
`)},
	"logs/6.1.0/m.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: logs}\n")},
	"kit/1.0.0/package.yaml": {Data: []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: kit
version: 1.0.0
description: Kit.
manifests: [m.yaml]
dependencies:
  - {package: logs, version: ^6, kind: shared}
`)},
	"kit/1.0.0/m.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kit}\n")},
}

// TestRenderOptionalDependency: templates see an optional shared dependency
// (as the shared app) only when the solution wires it.
func TestRenderOptionalDependency(t *testing.T) {
	ctx := context.Background()
	set := catalog.NewSet([]catalog.Ref{{Name: "t", Type: catalog.TypeDir}}, map[string]catalog.Source{"t": &catalog.FSSource{FS: optionalCatalog, Where: "t"}})
	u, prefer, err := set.Universe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		requests []resolve.Request
		want     string
	}{
		"alone":        {[]resolve.Request{{Package: "dash"}}, "none"},
		"with the kit": {[]resolve.Request{{Package: "dash"}, {Package: "kit"}}, "http://logs.logs.svc:3100"},
	} {
		t.Run(name, func(t *testing.T) {
			sol, err := resolve.Solve(u, resolve.Input{Requests: tc.requests, Prefer: prefer})
			if err != nil {
				t.Fatal(err)
			}
			res, err := RenderApp(ctx, set.Loader(), AppInput{Solution: sol, App: "dash", Namespace: "apps",
				Generator: func(scope string) pkgspec.Generator { return pkgspec.SeededGenerator(testSeed, scope) }})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Parts[len(res.Parts)-1].Result.Outputs["logsSource"]; got != tc.want {
				t.Errorf("logsSource = %q, want %q", got, tc.want)
			}
			if tc.want == "none" && len(res.Shared) != 0 {
				t.Errorf("shared dependencies %+v, want none", res.Shared)
			}
		})
	}
}

// TestRenderPackageNotes: a package's notes see its configuration and
// outputs, with every secret parameter hidden.
func TestRenderPackageNotes(t *testing.T) {
	p, err := pkgspec.Parse("web/package.yaml", []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: web
version: 1.0.0
description: Web.
manifests: [m.yaml]
config:
  - {name: user, type: string, default: admin}
  - {name: password, type: password, generate: {length: 16}}
  - {name: token, type: string, secret: true, default: tok-value-123}
notes: |
  Open http://{{ .app.name }}.{{ .app.namespace }}.svc and log in as {{ .config.user }}
  with {{ .config.password }} / {{ .config.token }}.
`))
	if err != nil {
		t.Fatal(err)
	}
	files := fstest.MapFS{"m.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")}}
	cfg, err := p.Configure(pkgspec.ConfigureOptions{Generator: pkgspec.SeededGenerator(testSeed, "apps/web")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(Input{Package: p, Files: files, App: "web", Namespace: "apps", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	want := "Open http://web.apps.svc and log in as admin\nwith (secret) / (secret)."
	if res.PackageNotes != want {
		t.Errorf("notes = %q, want %q", res.PackageNotes, want)
	}
	for _, secret := range []string{cfg["password"].(string), "tok-value-123"} {
		if strings.Contains(res.PackageNotes, secret) {
			t.Errorf("the notes show a secret value")
		}
	}
}
