package render

import (
	"strings"
	"testing"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/pkgspec"
)

func monitoredPackage(t *testing.T, dashboard string) (*pkgspec.Package, fstest.MapFS) {
	t.Helper()
	files := fstest.MapFS{
		"package.yaml": {Data: []byte(`apiVersion: berth.dev/v1alpha1
kind: Package
name: demo
version: 1.0.0
description: Demo.
manifests: [cm.yaml]
runbooks:
  - {name: restart, file: restart.md}
dashboards:
  - {name: overview, file: dashboards/overview.json}
alerts:
  - name: DemoDown
    expr: up{namespace="{{ .Namespace }}", job="{{ .App }}"} == 0
    for: 5m
    severity: critical
    summary: demo is down
    runbook: restart
`)},
		"cm.yaml":                  {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n")},
		"restart.md":               {Data: []byte("# Restart\n")},
		"dashboards/overview.json": {Data: []byte(dashboard)},
	}
	p, err := pkgspec.Load(files, ".", "")
	if err != nil {
		t.Fatal(err)
	}
	return p, files
}

func renderMonitored(t *testing.T, p *pkgspec.Package, files fstest.MapFS, mon Monitoring) (*Result, error) {
	t.Helper()
	cfg, err := p.Configure(pkgspec.ConfigureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return Render(Input{Package: p, Files: files, App: "web", Namespace: "shop", Config: cfg, Monitoring: mon})
}

func findKind(res *Result, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range res.Objects {
		if o.Object.GetKind() == kind {
			out = append(out, o.Object)
		}
	}
	return out
}

func TestRenderAlertsAsPrometheusRule(t *testing.T) {
	p, files := monitoredPackage(t, `{"title": "Demo"}`)
	res, err := renderMonitored(t, p, files, Monitoring{PrometheusRules: true, RuleLabels: map[string]string{"release": "kube-prometheus-stack"}})
	if err != nil {
		t.Fatal(err)
	}
	rules := findKind(res, "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("got %d PrometheusRules, want 1", len(rules))
	}
	r := rules[0]
	if r.GetName() != "web-alerts" || r.GetNamespace() != "shop" || r.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("metadata: %s/%s labels %v", r.GetNamespace(), r.GetName(), r.GetLabels())
	}
	groups, _, _ := unstructured.NestedSlice(r.Object, "spec", "groups")
	rule := groups[0].(map[string]any)["rules"].([]any)[0].(map[string]any)
	if rule["alert"] != "DemoDown" || rule["for"] != "5m" || rule["expr"] != `up{namespace="shop", job="web"} == 0` {
		t.Errorf("rule = %v", rule)
	}
	labels := rule["labels"].(map[string]any)
	ann := rule["annotations"].(map[string]any)
	if labels[AlertLabelApp] != "web" || labels["severity"] != "critical" || ann["runbook"] != "restart" || ann["summary"] != "demo is down" {
		t.Errorf("labels %v annotations %v", labels, ann)
	}
	if len(findKind(res, "ConfigMap")) != 1 {
		t.Errorf("dashboards were rendered without GrafanaDashboards")
	}

	none, err := renderMonitored(t, p, files, Monitoring{})
	if err != nil {
		t.Fatal(err)
	}
	if len(findKind(none, "PrometheusRule")) != 0 {
		t.Errorf("a PrometheusRule was rendered without PrometheusRules")
	}
}

func TestRenderDashboardsAsSidecarConfigMaps(t *testing.T) {
	p, files := monitoredPackage(t, `{"title": "Demo"}`)
	res, err := renderMonitored(t, p, files, Monitoring{GrafanaDashboards: true})
	if err != nil {
		t.Fatal(err)
	}
	var dash *unstructured.Unstructured
	for _, cm := range findKind(res, "ConfigMap") {
		if cm.GetName() == "web-dashboard-overview" {
			dash = cm
		}
	}
	if dash == nil {
		t.Fatal("no dashboard ConfigMap")
	}
	if dash.GetLabels()[GrafanaDashboardLabel] != "1" || dash.GetNamespace() != "shop" {
		t.Errorf("labels %v namespace %s", dash.GetLabels(), dash.GetNamespace())
	}
	if data, _, _ := unstructured.NestedString(dash.Object, "data", "web-overview.json"); data != `{"title": "Demo"}` {
		t.Errorf("data = %q", data)
	}

	p, files = monitoredPackage(t, `{"title": `)
	_, err = renderMonitored(t, p, files, Monitoring{GrafanaDashboards: true})
	if err == nil || !strings.Contains(err.Error(), "dashboards[0].file: dashboards/overview.json is not JSON") {
		t.Errorf("error %v, want it to name the dashboard that is not JSON", err)
	}
}
