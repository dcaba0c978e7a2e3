package lifecycle

import (
	"maps"
	"slices"

	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/workspace"
)

// grafanaPackage is the package whose app loads dashboards from ConfigMaps
// labelled for its sidecar (as kube-prometheus-stack's bundled Grafana does).
const grafanaPackage = "grafana"

// monitoring says what rendering makes of the apps' alerts and dashboards in
// this workspace (docs/monitoring.md): PrometheusRule objects when a
// Prometheus loads them (a kube-prometheus-stack app, or the one
// berth.yaml's monitoring: names, unless monitoring.rules says otherwise),
// dashboard ConfigMaps when a Grafana loads them (a grafana app, or a
// kube-prometheus-stack app with its bundled Grafana).
func (e *Env) monitoring(p *plan) (render.Monitoring, error) {
	cfg := e.WS.Config.Monitoring
	err := cfg.CheckMonitoringApps(func(app string) (string, bool) {
		a, ok := p.apps[app]
		if !ok {
			return "", false
		}
		return a.Package, true
	})
	if err != nil {
		return render.Monitoring{}, err
	}
	var m render.Monitoring
	var stacks []string
	for _, name := range slices.Sorted(maps.Keys(p.apps)) {
		switch a := p.apps[name]; a.Package {
		case workspace.MonitoringPackage:
			stacks = append(stacks, name)
			if on, set := a.Values["grafana"].(bool); on || !set {
				m.GrafanaDashboards = true
			}
		case grafanaPackage:
			m.GrafanaDashboards = true
		}
	}
	m.PrometheusRules = len(stacks) > 0 || (cfg != nil && cfg.Prometheus != nil)
	if cfg != nil && cfg.Rules != nil {
		m.PrometheusRules = *cfg.Rules
	}
	// kube-prometheus-stack's Prometheus selects the rules labelled with its
	// release (the app's name) unless it watches every namespace (the
	// package's default), so the label matters only then and harms nothing.
	release := ""
	switch {
	case cfg != nil && cfg.Prometheus != nil && cfg.Prometheus.App != "":
		release = cfg.Prometheus.App
	case len(stacks) == 1:
		release = stacks[0]
	}
	if m.PrometheusRules && release != "" {
		m.RuleLabels = map[string]string{"release": release}
	}
	return m, nil
}
