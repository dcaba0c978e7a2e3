package lifecycle

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// alertingCatalog writes a directory catalog holding one package, webapp
// 1.0.0: a ConfigMap with an alert, a panel and a dashboard.
func alertingCatalog(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"webapp/channels.yaml": "stable: 1.0.0\nwarm: 1.0.0\nlatest: 1.0.0\n",
		"webapp/1.0.0/package.yaml": `apiVersion: berth.dev/v1alpha1
kind: Package
name: webapp
version: 1.0.0
description: A web app that ships an alert and a dashboard.
manifests: [config.yaml]
runbooks:
  - {name: restart, title: Restart it, file: runbooks/restart.md}
dashboards:
  - {name: overview, file: dashboards/overview.json}
alerts:
  - name: WebappDown
    expr: up{namespace="{{ .Namespace }}", job="{{ .App }}"} == 0
    for: 1m
    severity: critical
    summary: webapp {{ $labels.instance }} is down
    runbook: restart
panels:
  - {title: Requests, query: 'sum(rate(http_requests_total{namespace="{{ .Namespace }}"}[5m]))', unit: ops}
`,
		"webapp/1.0.0/config.yaml":              "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: webapp}\ndata: {greeting: hello}\n",
		"webapp/1.0.0/runbooks/restart.md":      "# Restart\n",
		"webapp/1.0.0/dashboards/overview.json": `{"title": "webapp"}`,
	}
	testcluster.WriteFiles(t, dir, files)
	return dir
}

// withCatalog makes env read the fixture catalog and dir as catalog "extra".
func withCatalog(env *Env, dir string) {
	env.Catalogs = catalog.NewSet(
		[]catalog.Ref{{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin}, {Name: "extra", Type: catalog.TypeDir, URL: dir}},
		map[string]catalog.Source{catalog.BuiltinName: catalog.Builtin(), "extra": catalog.NewDirSource(dir)})
}

// setMonitoring writes berth.yaml's monitoring: section (replacing the one
// it wrote before) and commits it, as a person editing berth.yaml would.
func setMonitoring(t *testing.T, env *Env, m string) {
	t.Helper()
	data, err := env.WS.ReadFile(workspace.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.Index(string(data), "\nmonitoring:"); i >= 0 {
		data = data[:i+1]
	}
	if err := os.WriteFile(env.WS.Abs(workspace.ConfigFile), append(data, []byte(m)...), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, env.WS.Root, "commit", "-qam", "name the workspace's Prometheus")
	ws, err := workspace.Open(env.WS.Root)
	if err != nil {
		t.Fatal(err)
	}
	env.WS.Config = ws.Config
}

func renderedKinds(t *testing.T, env *Env, app string) map[string][]*unstructured.Unstructured {
	t.Helper()
	objs, err := env.WS.ReadRendered(app)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*unstructured.Unstructured{}
	for _, o := range objs {
		out[o.GetKind()] = append(out[o.GetKind()], o)
	}
	return out
}

func TestInstallRendersAlertsAsPrometheusRulesOnceTheWorkspaceNamesAPrometheus(t *testing.T) {
	ctx := context.Background()
	cfg := testcluster.Config(t)
	if err := localcluster.EnsurePrometheusRuleCRD(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, cfg)
	withCatalog(env, alertingCatalog(t))

	// No monitoring in the workspace: the alerts are not rendered.
	before := testcluster.UniqueName(t, 20)
	if _, err := env.Install(ctx, InstallOptions{Package: "webapp", Name: before}); err != nil {
		t.Fatal(err)
	}
	if got := renderedKinds(t, env, before)["PrometheusRule"]; len(got) != 0 {
		t.Fatalf("without monitoring, %d PrometheusRules were rendered", len(got))
	}

	// A monitoring: naming an app that is not there is refused, naming the file and field.
	setMonitoring(t, env, "monitoring: {prometheus: {app: nowhere}}\n")
	head := git(t, env.WS.Root, "rev-parse", "HEAD")
	_, err := env.Install(ctx, InstallOptions{Package: "webapp", Name: "other"})
	if err == nil || !strings.Contains(err.Error(), "berth.yaml: monitoring.prometheus.app: names app nowhere, which is not installed") {
		t.Fatalf("install with monitoring naming a missing app: %v", err)
	}
	if got := git(t, env.WS.Root, "rev-parse", "HEAD"); got != head {
		t.Errorf("the refused install moved HEAD")
	}
	git(t, env.WS.Root, "revert", "--no-edit", "HEAD")

	// The workspace names a Prometheus (the local cluster's): install and
	// deploy put the app's PrometheusRule into the cluster.
	setMonitoring(t, env, "monitoring: {prometheus: {url: 'http://127.0.0.1:9090'}}\n")
	name := testcluster.UniqueName(t, 20)
	t.Cleanup(func() {
		cs := testcluster.Clientset(t)
		for _, ns := range []string{name, before} {
			_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		}
	})
	if _, err := env.Install(ctx, InstallOptions{Package: "webapp", Name: name}); err != nil {
		t.Fatal(err)
	}
	rules := renderedKinds(t, env, name)["PrometheusRule"]
	if len(rules) != 1 || rules[0].GetName() != name+"-alerts" {
		t.Fatalf("rendered PrometheusRules = %v, want %s-alerts", rules, name)
	}
	if got := renderedKinds(t, env, name)["ConfigMap"]; len(got) != 1 {
		t.Errorf("rendered ConfigMaps = %d, want only the app's (no Grafana in the workspace, no dashboard)", len(got))
	}
	if _, err := env.Deploy(ctx, DeployOptions{Apps: []string{name}, Timeout: time.Minute}); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	got, err := dyn.Resource(localcluster.PrometheusRuleGVR).Namespace(name).Get(ctx, name+"-alerts", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the PrometheusRule is not in the cluster: %v", err)
	}
	groups, _, _ := unstructured.NestedSlice(got.Object, "spec", "groups")
	if len(groups) != 1 {
		t.Fatalf("groups = %v", groups)
	}
	rule := groups[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
	want := map[string]any{
		"alert":       "WebappDown",
		"expr":        `up{namespace="` + name + `", job="` + name + `"} == 0`,
		"for":         "1m",
		"labels":      map[string]any{render.AlertLabelApp: name, render.AlertLabelSeverity: "critical", "namespace": name},
		"annotations": map[string]any{"summary": "webapp {{ $labels.instance }} is down", "runbook": "restart"},
	}
	if d := cmp.Diff(want, rule); d != "" {
		t.Errorf("rule in the cluster (-want +got):\n%s", d)
	}

	// rules: false turns them off again: the next build renders the app
	// without them.
	setMonitoring(t, env, "monitoring: {prometheus: {url: 'http://127.0.0.1:9090'}, rules: false}\n")
	if _, err := env.Build(ctx, name); err != nil {
		t.Fatal(err)
	}
	if got := renderedKinds(t, env, name)["PrometheusRule"]; len(got) != 0 {
		t.Errorf("with monitoring.rules false, %d PrometheusRules were rendered", len(got))
	}
}

func TestMonitoringFollowsTheWorkspacesMonitoringApps(t *testing.T) {
	apps := func(pkgs map[string]string) *plan {
		p := &plan{apps: map[string]*workspace.App{}}
		for name, pkg := range pkgs {
			p.apps[name] = &workspace.App{Name: name, Package: pkg, Namespace: name}
		}
		return p
	}
	noGrafana := apps(map[string]string{"mon": workspace.MonitoringPackage, "db": "postgresql"})
	noGrafana.apps["mon"].Values = map[string]any{"grafana": false}
	for name, tc := range map[string]struct {
		plan       *plan
		monitoring *workspace.MonitoringConfig
		want       render.Monitoring
	}{
		"nothing": {plan: apps(map[string]string{"db": "postgresql"}), want: render.Monitoring{}},
		"kube-prometheus-stack": {
			plan: apps(map[string]string{"mon": workspace.MonitoringPackage, "db": "postgresql"}),
			want: render.Monitoring{PrometheusRules: true, RuleLabels: map[string]string{"release": "mon"}, GrafanaDashboards: true},
		},
		"its grafana off": {
			plan: noGrafana,
			want: render.Monitoring{PrometheusRules: true, RuleLabels: map[string]string{"release": "mon"}},
		},
		"grafana alone": {plan: apps(map[string]string{"grafana": "grafana"}), want: render.Monitoring{GrafanaDashboards: true}},
		"a prometheus by url": {
			plan:       apps(map[string]string{"db": "postgresql"}),
			monitoring: &workspace.MonitoringConfig{Prometheus: &workspace.MonitoringEndpoint{URL: "http://127.0.0.1:9090"}},
			want:       render.Monitoring{PrometheusRules: true},
		},
		"two stacks, one named": {
			plan:       apps(map[string]string{"a": workspace.MonitoringPackage, "b": workspace.MonitoringPackage}),
			monitoring: &workspace.MonitoringConfig{Prometheus: &workspace.MonitoringEndpoint{App: "b"}},
			want:       render.Monitoring{PrometheusRules: true, RuleLabels: map[string]string{"release": "b"}, GrafanaDashboards: true},
		},
		"rules off": {
			plan:       apps(map[string]string{"mon": workspace.MonitoringPackage}),
			monitoring: &workspace.MonitoringConfig{Rules: new(bool)},
			want:       render.Monitoring{GrafanaDashboards: true},
		},
	} {
		t.Run(name, func(t *testing.T) {
			env := &Env{WS: &workspace.Workspace{Config: workspace.Config{Monitoring: tc.monitoring}}}
			got, err := env.monitoring(tc.plan)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("monitoring (-want +got):\n%s", d)
			}
		})
	}
}
