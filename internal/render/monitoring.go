package render

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/pkgspec"
)

// Monitoring says which monitoring objects Render adds for a package's
// alerts and dashboards. The caller decides from the workspace: rules when it
// runs the Prometheus operator (the kube-prometheus-stack package, or a local
// cluster with berth up --monitoring, which loads PrometheusRules itself),
// dashboards when it runs the grafana package.
type Monitoring struct {
	// PrometheusRules renders the package's alerts as one PrometheusRule.
	PrometheusRules bool
	// RuleLabels are added to the PrometheusRule so that the operator's
	// Prometheus selects it (kube-prometheus-stack's selects the label
	// release: <its release name>).
	RuleLabels map[string]string
	// GrafanaDashboards renders each dashboard as a ConfigMap that the
	// grafana chart's dashboard sidecar loads (label grafana_dashboard: "1").
	GrafanaDashboards bool
}

// Labels berth sets on the alerts it renders, which Alertmanager passes on to
// berth's controller.
const (
	AlertLabelApp      = "berth_app"
	AlertLabelSeverity = "severity"
	// GrafanaDashboardLabel is the grafana chart's default sidecar label.
	GrafanaDashboardLabel = "grafana_dashboard"
)

// SubstituteQuery replaces {{ .Namespace }} and {{ .App }} in a package's
// PromQL (alert expressions, panel queries) with the app's.
func SubstituteQuery(q, app, namespace string) string {
	r := strings.NewReplacer("{{ .Namespace }}", namespace, "{{.Namespace}}", namespace, "{{ .App }}", app, "{{.App}}", app)
	return r.Replace(q)
}

// monitoringObjects renders the package's alerts and dashboards as in.Monitoring asks.
func monitoringObjects(in Input) ([]Object, error) {
	p := in.Package
	var objs []Object
	if in.Monitoring.PrometheusRules && len(p.Alerts) > 0 {
		objs = append(objs, Object{Stage: StageMain, Source: "package.yaml#alerts", Object: PrometheusRule(p, in.App, in.Namespace, in.Monitoring.RuleLabels)})
	}
	if in.Monitoring.GrafanaDashboards {
		for i, d := range p.Dashboards {
			b, err := fs.ReadFile(in.Files, d.File)
			if err != nil {
				return nil, fmt.Errorf("%s: dashboards[%d].file: %w", p.File, i, err)
			}
			if !json.Valid(b) {
				return nil, fmt.Errorf("%s: dashboards[%d].file: %s is not JSON; export the dashboard from Grafana as JSON", p.File, i, d.File)
			}
			cm := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{
					"name": in.App + "-dashboard-" + d.Name, "namespace": in.Namespace,
					"labels": map[string]any{GrafanaDashboardLabel: "1"},
				},
				"data": map[string]any{in.App + "-" + path.Base(d.File): string(b)},
			}}
			objs = append(objs, Object{Stage: StageMain, Source: d.File, Object: cm})
		}
	}
	return objs, nil
}

// PrometheusRule renders a package's alerts for one app: one group named
// after the app, each rule labelled with the app (berth_app) and severity, and
// annotated with its summary and runbook.
func PrometheusRule(p *pkgspec.Package, app, namespace string, labels map[string]string) *unstructured.Unstructured {
	var rules []any
	for _, a := range p.Alerts {
		r := map[string]any{
			"alert":  a.Name,
			"expr":   SubstituteQuery(a.Expr, app, namespace),
			"labels": map[string]any{AlertLabelApp: app, AlertLabelSeverity: a.Severity, "namespace": namespace},
			"annotations": map[string]any{
				"summary": a.Summary,
			},
		}
		if a.For != "" {
			r["for"] = a.For
		}
		if a.Runbook != "" {
			r["annotations"].(map[string]any)["runbook"] = a.Runbook
		}
		rules = append(rules, r)
	}
	meta := map[string]any{"name": app + "-alerts", "namespace": namespace}
	if len(labels) > 0 {
		l := map[string]any{}
		for k, v := range maps.All(labels) {
			l[k] = v
		}
		meta["labels"] = l
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
		"metadata": meta,
		"spec":     map[string]any{"groups": []any{map[string]any{"name": app, "rules": rules}}},
	}}
}
