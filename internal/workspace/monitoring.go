package workspace

import (
	"errors"
	"fmt"
	"net/url"
)

// MonitoringConfig is berth.yaml's monitoring: section: where the
// workspace's Prometheus and Alertmanager are, for the console's panels and
// for rendering the apps' alerts (docs/monitoring.md).
type MonitoringConfig struct {
	// Prometheus answers the console's panel queries and evaluates the
	// apps' alert rules.
	Prometheus *MonitoringEndpoint `json:"prometheus,omitempty"`
	// Alertmanager receives the alerts Prometheus fires.
	Alertmanager *MonitoringEndpoint `json:"alertmanager,omitempty"`
	// Rules says whether the apps' alerts are rendered as PrometheusRule
	// objects. When unset, they are when the workspace has a
	// kube-prometheus-stack app or Prometheus is set (a Prometheus that
	// loads PrometheusRule objects, such as the local cluster's).
	Rules *bool `json:"rules,omitempty"`
}

// MonitoringEndpoint is a Prometheus or an Alertmanager: either a URL or an
// app of the workspace that runs it (a kube-prometheus-stack app), reached
// through the API server.
type MonitoringEndpoint struct {
	URL string `json:"url,omitempty"`
	App string `json:"app,omitempty"`
}

// MonitoringPackage is the package whose apps can be named by
// monitoring.prometheus.app and monitoring.alertmanager.app.
const MonitoringPackage = "kube-prometheus-stack"

func (m *MonitoringConfig) validate() error {
	if m == nil {
		return nil
	}
	for name, e := range map[string]*MonitoringEndpoint{"prometheus": m.Prometheus, "alertmanager": m.Alertmanager} {
		if err := e.validate(); err != nil {
			return fmt.Errorf("%s.%w", name, err)
		}
	}
	return nil
}

func (e *MonitoringEndpoint) validate() error {
	switch {
	case e == nil:
		return nil
	case e.URL != "" && e.App != "":
		return errors.New("url: set either url or app, not both")
	case e.URL == "" && e.App == "":
		return fmt.Errorf("url: set url (http://127.0.0.1:9090) or app (an app of package %s)", MonitoringPackage)
	case e.App != "":
		if err := ValidateAppName(e.App); err != nil {
			return fmt.Errorf("app: %w", err)
		}
		return nil
	}
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url: want an absolute http or https URL (http://127.0.0.1:9090), got %q", e.URL)
	}
	return nil
}

// CheckMonitoringApps checks that the apps monitoring: names exist and run
// kube-prometheus-stack; pkgOf returns the package of an installed app and
// false for one that is not installed.
func (m *MonitoringConfig) CheckMonitoringApps(pkgOf func(app string) (string, bool)) error {
	if m == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		e    *MonitoringEndpoint
	}{{"prometheus", m.Prometheus}, {"alertmanager", m.Alertmanager}} {
		if f.e == nil || f.e.App == "" {
			continue
		}
		pkg, ok := pkgOf(f.e.App)
		if !ok {
			return fmt.Errorf("%s: monitoring.%s.app: names app %s, which is not installed; install %s as it or name another app", ConfigFile, f.name, f.e.App, MonitoringPackage)
		}
		if pkg != MonitoringPackage {
			return fmt.Errorf("%s: monitoring.%s.app: app %s runs package %s, want an app of %s", ConfigFile, f.name, f.e.App, pkg, MonitoringPackage)
		}
	}
	return nil
}
