package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// memoryAlertCatalog is a directory catalog with one package, web 1.0.0: a
// Deployment and an alert on its pods' memory (kwok simulates it from the
// pod's annotation kwok.x-k8s.io/usage-memory, see docs/monitoring.md).
func memoryAlertCatalog(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"web/channels.yaml": "stable: 1.0.0\nwarm: 1.0.0\nlatest: 1.0.0\n",
		"web/1.0.0/package.yaml": `apiVersion: berth.dev/v1alpha1
kind: Package
name: web
version: 1.0.0
description: A web server that ships an alert on its memory.
manifests: [deployment.yaml]
runbooks:
  - {name: memory, title: Find what holds the memory, file: runbooks/memory.md}
alerts:
  - name: WebMemoryHigh
    expr: max(container_memory_working_set_bytes{namespace="{{ .Namespace }}"}) > 100 * 1024 * 1024
    severity: warning
    summary: a web pod uses more than 100Mi
    runbook: memory
`,
		"web/1.0.0/runbooks/memory.md": "# Memory\n",
		"web/1.0.0/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
`,
	}
	testcluster.WriteFiles(t, dir, files)
	return dir
}

// TestAlertInTheLocalPrometheusOpensAndResolvesAnIncident runs the whole
// path on a local cluster with monitoring, through the CLI: berth up
// --monitoring prints the monitoring: section, the workspace takes it, so
// installing a package with alerts puts its PrometheusRule into the cluster;
// the local Prometheus loads it (the rule sync) and evaluates it over kwok's
// simulated pod metrics; when the pod's memory is raised through the API the
// alert fires, Alertmanager posts it to the local controller's
// /hooks/alertmanager and an Incident opens; when the memory goes down the
// alert resolves, and so does the incident.
func TestAlertInTheLocalPrometheusOpensAndResolvesAnIncident(t *testing.T) {
	t.Setenv("BERTH_FILTER_EXECUTABLE", testcluster.BerthBinary(t))
	home := testcluster.Home(t)
	cluster := testcluster.UniqueName(t, 20)
	t.Cleanup(func() { berthResult(home, "down", "--name", cluster, "--purge") })

	var up struct {
		Monitoring *workspace.MonitoringConfig `json:"monitoring"`
	}
	out := berth(t, home, "up", "--name", cluster, "--nodes", "1", "--binaries", testcluster.BinDir(t), "--monitoring", "-o", "json")
	if err := json.Unmarshal([]byte(out), &up); err != nil || up.Monitoring == nil || up.Monitoring.Prometheus == nil {
		t.Fatalf("up --monitoring -o json: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(home, "clusters", cluster, "kubeconfig")

	// A workspace of this cluster that names its Prometheus, and reads the
	// catalog of the web package.
	ws := filepath.Join(t.TempDir(), "ws")
	berth(t, home, "init", ws, "--kubeconfig", kubeconfig)
	section, err := yaml.Marshal(map[string]any{
		"monitoring": up.Monitoring,
		"catalogs":   []workspace.CatalogRef{{Name: "extra", Type: "dir", URL: memoryAlertCatalog(t)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(ws, workspace.ConfigFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(section); err != nil {
		t.Fatal(err)
	}
	f.Close()
	gitIn(t, ws, "commit", "-qam", "name the local Prometheus and the extra catalog")

	berth(t, home, "install", "web", "-C", ws)
	rendered, err := os.ReadFile(filepath.Join(ws, "rendered", "web", "prometheusrule.monitoring.coreos.com_web_web-alerts.yaml"))
	if err != nil {
		entries, _ := os.ReadDir(filepath.Join(ws, "rendered", "web"))
		t.Fatalf("no PrometheusRule rendered (%v); rendered/web holds %v", err, entries)
	}
	if !strings.Contains(string(rendered), "WebMemoryHigh") {
		t.Errorf("the rendered PrometheusRule lacks the alert:\n%s", rendered)
	}
	// The controller follows the workspace and serves /hooks/alertmanager,
	// which berth connects to the cluster's Alertmanager.
	_, keyPath, err := secrets.RepoKey(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	berth(t, home, "bootstrap", "--local", "--cluster", cluster, "--repo", "file://"+ws, "--key", keyPath)

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pod string
	testcluster.WaitFor(t, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		pods, err := cs.CoreV1().Pods("web").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.Phase != "Running" {
			return false, fmt.Sprintf("pods of web: %v", err), nil
		}
		pod = pods.Items[0].Name
		return true, "", nil
	})
	setMemory := func(q string) {
		t.Helper()
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"kwok.x-k8s.io/usage-memory":%q}}}`, q)
		if _, err := cs.CoreV1().Pods("web").Patch(context.Background(), pod, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	incident := func() (*berthv1.Incident, string) {
		out, errOut, code := berthResult(home, "incidents", "show", "web-alert-webmemoryhigh", "-C", ws, "-o", "json")
		if code != 0 {
			return nil, errOut
		}
		var inc berthv1.Incident
		if err := json.Unmarshal([]byte(out), &inc); err != nil {
			return nil, err.Error()
		}
		return &inc, string(inc.Status.State)
	}

	setMemory("200Mi")
	testcluster.WaitFor(t, 4*time.Minute, func(context.Context) (bool, string, error) {
		inc, state := incident()
		return inc != nil && inc.Status.State == berthv1.IncidentOpen, "incident: " + state, nil
	})
	inc, _ := incident()
	if inc.Spec.App != "web" || inc.Spec.Cause != berthv1.CauseAlert || !strings.Contains(inc.Status.Message, "a web pod uses more than 100Mi (runbook: memory)") {
		t.Errorf("incident of the alert: spec %+v, message %q", inc.Spec, inc.Status.Message)
	}

	setMemory("1Mi")
	testcluster.WaitFor(t, 4*time.Minute, func(context.Context) (bool, string, error) {
		inc, state := incident()
		return inc != nil && inc.Status.State == berthv1.IncidentResolved, "incident: " + state, nil
	})
}
