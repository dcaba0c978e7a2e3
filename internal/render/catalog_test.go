package render

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/testcluster"
)

// The packages of the real built-in catalog (catalog.Embedded, not the
// fixture catalog the other tests see), rendered from the offline chart
// mirror.

func embeddedSet() *catalog.Set {
	return catalog.NewSet([]catalog.Ref{{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin}}, map[string]catalog.Source{catalog.BuiltinName: catalog.Embedded()})
}

// recorder is a generator that remembers every value it generates.
type recorder struct {
	mu     sync.Mutex
	values []string
}

func (r *recorder) generator(scope string) pkgspec.Generator {
	return recordingGenerator{inner: pkgspec.SeededGenerator(testSeed, scope), r: r}
}

type recordingGenerator struct {
	inner pkgspec.Generator
	r     *recorder
}

func (g recordingGenerator) Generate(param string, spec pkgspec.Generate) (string, error) {
	v, err := g.inner.Generate(param, spec)
	g.r.mu.Lock()
	g.r.values = append(g.r.values, v)
	g.r.mu.Unlock()
	return v, err
}

// renderEmbedded renders app (package@version) with values and returns every
// part, and the generated values.
func renderEmbedded(t *testing.T, set *catalog.Set, requests []resolve.Request, app string, values map[string]any) (*AppResult, []string) {
	t.Helper()
	ctx := context.Background()
	u, prefer, err := set.Universe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sol, err := resolve.Solve(u, resolve.Input{Requests: requests, Prefer: prefer})
	if err != nil {
		t.Fatal(err)
	}
	mirrors, err := catalog.ParseMirrorEnv(testcluster.ChartMirror(t))
	if err != nil {
		t.Fatal(err)
	}
	fetcher := &catalog.ChartFetcher{Cache: t.TempDir(), Mirrors: mirrors}
	rec := &recorder{}
	res, err := RenderApp(ctx, set.Loader(), AppInput{
		Solution: sol, App: app, Namespace: "apps", Values: values,
		Charts: fetcher.Fetch, Seed: testSeed, Generator: rec.generator,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, rec.values
}

// findObjects returns the rendered objects of kind (and name, when not empty).
func findObjects(res *AppResult, kind, name string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, p := range res.Parts {
		for _, o := range p.Result.Objects {
			if o.Object.GetKind() == kind && (name == "" || o.Object.GetName() == name) {
				out = append(out, o.Object)
			}
		}
	}
	return out
}

func yamlOf(t *testing.T, objs ...*unstructured.Unstructured) string {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		y, err := marshalYAML(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(y)
	}
	return b.String()
}

// checkNoSecretOutsideSecrets fails when a generated value appears, plainly
// or in base64, in an object other than a Secret: rendered manifests are in
// git, and only Secrets are encrypted there.
func checkNoSecretOutsideSecrets(t *testing.T, res *AppResult, generated []string) {
	t.Helper()
	if len(generated) == 0 {
		return // a package without generated values (the hand-written cert-manager)
	}
	for _, p := range res.Parts {
		for _, v := range generated {
			if strings.Contains(p.Result.PackageNotes+p.Result.Notes, v) {
				t.Errorf("the notes of %s %s show a generated secret value", p.Package, p.Version)
			}
		}
		for _, o := range p.Result.Objects {
			if o.Object.GetKind() == "Secret" {
				continue
			}
			y := yamlOf(t, o.Object)
			for _, v := range generated {
				if strings.Contains(y, v) || strings.Contains(y, base64.StdEncoding.EncodeToString([]byte(v))) {
					t.Errorf("%s (%s) holds a generated secret value in plaintext", o.ID(), o.Source)
				}
			}
		}
	}
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q", what, sub)
		}
	}
}

// TestCatalogPackagesRender renders every version of every package of the
// built-in catalog with its defaults (twice: the same bytes) and with
// non-default configuration, and checks what each configuration must change.
func TestCatalogPackagesRender(t *testing.T) {
	ctx := context.Background()
	set := embeddedSet()
	problems, err := set.Problems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("the built-in catalog leaves out %s", p)
	}
	all, err := set.Packages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type check func(t *testing.T, res *AppResult)
	custom := map[string]struct {
		values map[string]any
		check  check
	}{
		"postgresql": {
			values: map[string]any{"readReplicas": 2, "metrics": true, "backup": true, "backupSchedule": "0 3 * * *", "maxConnections": 300, "storage": "20Gi"},
			check: func(t *testing.T, res *AppResult) {
				if len(findObjects(res, "StatefulSet", "postgresql-read")) != 1 {
					t.Error("no StatefulSet postgresql-read with readReplicas=2")
				}
				wantContains(t, "the read replicas", yamlOf(t, findObjects(res, "StatefulSet", "postgresql-read")...), "replicas: 2", "storage: 20Gi")
				wantContains(t, "the backup CronJob", yamlOf(t, findObjects(res, "CronJob", "")...), "0 3 * * *", "pg_dumpall")
				wantContains(t, "the configuration", yamlOf(t, findObjects(res, "ConfigMap", "")...), "max_connections = 300")
				wantContains(t, "the primary", yamlOf(t, findObjects(res, "StatefulSet", "postgresql")...), "name: metrics")
				// The primary keeps the app's name with replicas: its Service is the host output.
				if len(findObjects(res, "Service", "postgresql")) != 1 || res.Parts[0].Result.Outputs["host"] != "postgresql.apps.svc" {
					t.Errorf("with read replicas, Service postgresql: %d, host output %q", len(findObjects(res, "Service", "postgresql")), res.Parts[0].Result.Outputs["host"])
				}
			},
		},
		"redis": {
			values: map[string]any{"replicas": 2, "persistence": false, "memory": "1Gi", "evictionPolicy": "allkeys-lru"},
			check: func(t *testing.T, res *AppResult) {
				wantContains(t, "the replicas", yamlOf(t, findObjects(res, "StatefulSet", "redis-replicas")...), "replicas: 2")
				wantContains(t, "the configuration", yamlOf(t, findObjects(res, "ConfigMap", "redis-configuration")...), "maxmemory 858993459", "maxmemory-policy allkeys-lru", "appendonly no")
				if y := yamlOf(t, findObjects(res, "StatefulSet", "")...); strings.Contains(y, "volumeClaimTemplates") {
					t.Error("persistence=false still asks for volumes")
				}
			},
		},
		"airflow": {
			values: map[string]any{"ingress": true, "domain": "airflow.example.com", "dagsRepo": "https://git.example.com/dags.git", "dagsBranch": "prod", "workers": 3,
				"postgresql": map[string]any{"storage": "30Gi"}},
			check: func(t *testing.T, res *AppResult) {
				wantContains(t, "the Ingress", yamlOf(t, findObjects(res, "Ingress", "")...), "host: airflow.example.com")
				wantContains(t, "the workers", yamlOf(t, findObjects(res, "StatefulSet", "airflow-worker")...), "replicas: 3", "git-sync", "https://git.example.com/dags.git", "prod")
				wantContains(t, "the component's volume", yamlOf(t, findObjects(res, "StatefulSet", "airflow-postgresql")...), "storage: 30Gi")
			},
		},
		"grafana": {
			values: map[string]any{"ingress": true, "domain": "grafana.example.com", "plugins": "grafana-clock-panel", "persistence": false},
			check: func(t *testing.T, res *AppResult) {
				wantContains(t, "the Ingress", yamlOf(t, findObjects(res, "Ingress", "")...), "host: grafana.example.com", "secretName: grafana-tls")
				cert := findObjects(res, "Certificate", "grafana-tls")
				if len(cert) != 1 || cert[0].GetAnnotations()["berth.dev/health-condition"] != "Ready=True" {
					t.Errorf("Certificate grafana-tls = %v, want one gated on Ready", cert)
				}
				wantContains(t, "the Certificate", yamlOf(t, cert...), "grafana.example.com", "issuerRef")
				wantContains(t, "the configuration", yamlOf(t, findObjects(res, "ConfigMap", "grafana")...), "grafana-clock-panel", "root_url = https://grafana.example.com/")
				if len(findObjects(res, "PersistentVolumeClaim", "")) != 0 {
					t.Error("persistence=false still makes a volume claim")
				}
			},
		},
	}
	for _, f := range all {
		for _, v := range f.Entry.Versions {
			name := f.Entry.Name
			req := []resolve.Request{{Package: name, Constraint: "=" + v.Version}}
			t.Run(name+"@"+v.Version, func(t *testing.T) {
				res, generated := renderEmbedded(t, set, req, name, nil)
				again, _ := renderEmbedded(t, set, req, name, nil)
				var a, b bytes.Buffer
				for i := range res.Parts {
					if err := res.Parts[i].Result.YAML(&a); err != nil {
						t.Fatal(err)
					}
					if err := again.Parts[i].Result.YAML(&b); err != nil {
						t.Fatal(err)
					}
				}
				if a.Len() == 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
					t.Fatalf("two renders of %s %s differ (or are empty: %d bytes)", name, v.Version, a.Len())
				}
				checkNoSecretOutsideSecrets(t, res, generated)
				if notes := res.Parts[len(res.Parts)-1].Result.PackageNotes; withPasswordNotes[name] {
					// Post-install notes say how to read the generated password.
					wantContains(t, "the notes", notes, "kubectl -n apps get secret "+name, "base64 -d")
				}
				c, ok := custom[name]
				if !ok {
					return
				}
				res, generated = renderEmbedded(t, set, req, name, c.values)
				checkNoSecretOutsideSecrets(t, res, generated)
				c.check(t, res)
			})
		}
	}
}

// TestCatalogAirflowUsesItsComponents: the chart's own PostgreSQL and Redis
// are off, and every Airflow pod reads the metadata database and the broker
// from the Secrets its components publish.
func TestCatalogAirflowUsesItsComponents(t *testing.T) {
	res, _ := renderEmbedded(t, embeddedSet(), []resolve.Request{{Package: "airflow"}}, "airflow", nil)
	var roles []string
	for _, p := range res.Parts {
		roles = append(roles, fmt.Sprintf("%s %s", p.Role, p.Package))
		if p.Package != "airflow" {
			continue
		}
		for _, o := range p.Result.Objects {
			if strings.HasPrefix(o.Source, "airflow/charts/") || o.Object.GetName() == "airflow-redis" || o.Object.GetName() == "airflow-postgresql" {
				t.Errorf("the airflow chart renders %s (%s): its bundled database or broker is on", o.ID(), o.Source)
			}
		}
	}
	if strings.Join(roles, ", ") != "component postgresql, component redis, app airflow" {
		t.Errorf("parts %v, want postgresql and redis as components, then airflow", roles)
	}
	for _, d := range findObjects(res, "Deployment", "airflow-scheduler") {
		wantContains(t, "the scheduler", yamlOf(t, d), "name: airflow-postgresql-connection", "name: airflow-redis-connection")
	}
	for _, s := range []string{"airflow-postgresql-connection", "airflow-redis-connection"} {
		if len(findObjects(res, "Secret", s)) != 1 {
			t.Errorf("no Secret %s", s)
		}
	}
}

// monitoringCatalog stands in for the loki and kube-prometheus-stack packages
// (another catalog's) with the outputs grafana reads, and a kit that installs
// both as shared apps. (The built-in catalog, searched first, now has the
// real loki and kube-prometheus-stack, which the kit's dependencies resolve
// to; these stand-ins remain for a catalog without them.)
var monitoringCatalog = fstest.MapFS{
	"loki/6.49.0/package.yaml": {Data: []byte("apiVersion: berth.dev/v1alpha1\nkind: Package\nname: loki\nversion: 6.49.0\ndescription: Logs.\nmanifests: [m.yaml]\n" +
		"outputs:\n  - {name: url, value: \"http://{{ .app.name }}-gateway.{{ .app.namespace }}.svc\"}\n")},
	"loki/6.49.0/m.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loki}\n")},
	"kube-prometheus-stack/80.14.4/package.yaml": {Data: []byte("apiVersion: berth.dev/v1alpha1\nkind: Package\nname: kube-prometheus-stack\nversion: 80.14.4\ndescription: Metrics.\nmanifests: [m.yaml]\n" +
		"outputs:\n  - {name: prometheusUrl, value: \"http://prometheus.{{ .app.namespace }}.svc:9090\"}\n")},
	"kube-prometheus-stack/80.14.4/m.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kps}\n")},
	"kit/1.0.0/package.yaml": {Data: []byte("apiVersion: berth.dev/v1alpha1\nkind: Package\nname: kit\nversion: 1.0.0\ndescription: Kit.\nmanifests: [m.yaml]\n" +
		"dependencies:\n  - {package: loki, version: ^6, kind: shared}\n  - {package: kube-prometheus-stack, version: ^80, kind: shared}\n")},
	"kit/1.0.0/m.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kit}\n")},
}

// withPasswordNotes are the built-in packages whose post-install notes say
// how to read a generated password (the batteries' getting-started runbooks
// do it for theirs).
var withPasswordNotes = map[string]bool{"postgresql": true, "redis": true, "airflow": true, "grafana": true}

// TestCatalogGrafanaDataSources: grafana has no data sources alone, and Loki
// and Prometheus ones when the workspace has those packages as shared apps.
func TestCatalogGrafanaDataSources(t *testing.T) {
	set := catalog.NewSet([]catalog.Ref{{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin}, {Name: "monitoring", Type: catalog.TypeDir}},
		map[string]catalog.Source{catalog.BuiltinName: catalog.Embedded(), "monitoring": &catalog.FSSource{FS: monitoringCatalog, Where: "monitoring"}})

	alone, _ := renderEmbedded(t, set, []resolve.Request{{Package: "grafana"}}, "grafana", nil)
	if y := yamlOf(t, findObjects(alone, "ConfigMap", "grafana")...); strings.Contains(y, "datasources.yaml") {
		t.Errorf("grafana alone has data sources:\n%s", y)
	}
	// Its sidecar loads the dashboards packages ship (render's
	// GrafanaDashboards) from ConfigMaps of every namespace.
	wantContains(t, "grafana's dashboard sidecar", yamlOf(t, findObjects(alone, "Deployment", "grafana")...),
		"name: grafana-sc-dashboard", "name: LABEL\n          value: grafana_dashboard", "name: LABEL_VALUE\n          value: \"1\"", "name: NAMESPACE\n          value: ALL")
	if len(alone.Shared) != 1 || alone.Shared[0].Package != "cert-manager" {
		t.Errorf("grafana alone needs %+v, want cert-manager only", alone.Shared)
	}

	res, _ := renderEmbedded(t, set, []resolve.Request{{Package: "grafana"}, {Package: "kit"}}, "grafana", nil)
	wantContains(t, "grafana's data sources", yamlOf(t, findObjects(res, "ConfigMap", "grafana")...),
		"datasources.yaml", "type: prometheus", "url: http://kube-prometheus-stack-prometheus.kube-prometheus-stack.svc:9090", "type: loki", "url: http://loki-gateway.loki.svc")
}
