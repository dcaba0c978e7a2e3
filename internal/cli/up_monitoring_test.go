package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/workspace"
)

// TestUpPrintsAMonitoringSectionBerthYAMLAccepts: what 'berth up --monitoring'
// prints for berth.yaml is read back by the workspace's strict loader as the
// local Prometheus and Alertmanager.
func TestUpPrintsAMonitoringSectionBerthYAMLAccepts(t *testing.T) {
	st := localcluster.Status{Prometheus: "http://127.0.0.1:39090", Alertmanager: "http://127.0.0.1:39093"}
	printed := monitoringConfigYAML(st)
	if !strings.HasPrefix(printed, "  monitoring:\n") {
		t.Errorf("printed section is not indented under monitoring:\n%s", printed)
	}
	doc := "apiVersion: " + workspace.APIVersion + "\nkind: Workspace\ncluster: {}\n"
	for _, line := range strings.SplitAfter(printed, "\n") {
		doc += strings.TrimPrefix(line, "  ")
	}
	var cfg workspace.Config
	if err := workspace.ParseConfig("berth.yaml", []byte(doc), &cfg); err != nil {
		t.Fatalf("berth.yaml with the printed section: %v\n%s", err, doc)
	}
	want := &workspace.MonitoringConfig{
		Prometheus:   &workspace.MonitoringEndpoint{URL: st.Prometheus},
		Alertmanager: &workspace.MonitoringEndpoint{URL: st.Alertmanager},
	}
	if d := cmp.Diff(want, cfg.Monitoring); d != "" {
		t.Errorf("monitoring read back (-want +got):\n%s", d)
	}
}
