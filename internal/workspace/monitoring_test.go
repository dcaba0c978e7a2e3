package workspace

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMonitoringConfigIsReadAndCheckedWithTheFileAndField(t *testing.T) {
	good := "apiVersion: " + APIVersion + `
kind: Workspace
cluster: {}
monitoring:
  prometheus: {url: "http://127.0.0.1:9090"}
  alertmanager: {app: monitoring}
`
	var cfg Config
	if err := ParseConfig("berth.yaml", []byte(good), &cfg); err != nil {
		t.Fatal(err)
	}
	want := &MonitoringConfig{Prometheus: &MonitoringEndpoint{URL: "http://127.0.0.1:9090"}, Alertmanager: &MonitoringEndpoint{App: "monitoring"}}
	if d := cmp.Diff(want, cfg.Monitoring); d != "" {
		t.Errorf("monitoring config (-want +got):\n%s", d)
	}
	bad := map[string]struct{ monitoring, want string }{
		"both":           {"monitoring: {prometheus: {url: 'http://x:9090', app: monitoring}}", "berth.yaml: monitoring.prometheus.url: set either url or app"},
		"neither":        {"monitoring: {alertmanager: {}}", "berth.yaml: monitoring.alertmanager.url: set url"},
		"relative url":   {"monitoring: {prometheus: {url: 'localhost:9090'}}", "monitoring.prometheus.url: want an absolute http or https URL"},
		"bad app name":   {"monitoring: {prometheus: {app: Not_An_App}}", "monitoring.prometheus.app:"},
		"unknown field":  {"monitoring: {grafana: {url: 'http://x'}}", "unknown field"},
		"rules not bool": {"monitoring: {rules: maybe}", "berth.yaml"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			doc := "apiVersion: " + APIVersion + "\nkind: Workspace\ncluster: {}\n" + tc.monitoring + "\n"
			err := ParseConfig("berth.yaml", []byte(doc), &Config{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one naming %q", err, tc.want)
			}
		})
	}
	// Open checks it too.
	w := newWorkspace(t)
	data, err := w.ReadFile(ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.Abs(ConfigFile), append(data, []byte("monitoring: {prometheus: {url: ftp://x}}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(w.Root); err == nil || !strings.Contains(err.Error(), "monitoring.prometheus.url") {
		t.Errorf("Open = %v, want an error naming monitoring.prometheus.url", err)
	}
}

func TestMonitoringAppsMustRunKubePrometheusStack(t *testing.T) {
	m := &MonitoringConfig{Prometheus: &MonitoringEndpoint{App: "mon"}, Alertmanager: &MonitoringEndpoint{URL: "http://127.0.0.1:9093"}}
	installed := map[string]string{"mon": MonitoringPackage, "db": "postgresql"}
	pkgOf := func(app string) (string, bool) { p, ok := installed[app]; return p, ok }
	if err := m.CheckMonitoringApps(pkgOf); err != nil {
		t.Errorf("a kube-prometheus-stack app: %v", err)
	}
	m.Prometheus.App = "db"
	if err := m.CheckMonitoringApps(pkgOf); err == nil || !strings.Contains(err.Error(), "berth.yaml: monitoring.prometheus.app: app db runs package postgresql") {
		t.Errorf("an app of another package: %v", err)
	}
	m.Prometheus.App = "gone"
	if err := m.CheckMonitoringApps(pkgOf); err == nil || !strings.Contains(err.Error(), "names app gone, which is not installed") {
		t.Errorf("an app not installed: %v", err)
	}
}
