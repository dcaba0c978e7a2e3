package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"berth.dev/berth/internal/cli"
	"berth.dev/berth/internal/testcluster"
)

// berth runs a berth command line in-process against the given home and returns
// its standard output, failing the test on a non-zero exit.
func berth(t *testing.T, home string, args ...string) string {
	t.Helper()
	out, errOut, code := berthResult(home, args...)
	if code != 0 {
		t.Fatalf("berth %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func berthResult(home string, args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = cli.Execute(context.Background(), &cli.App{Out: &o, Err: &e, Home: home}, args)
	return o.String(), e.String(), code
}

func kubectl(t *testing.T, kubeconfig, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testcluster.Kubectl(t), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type clusterStatus struct {
	Name      string          `json:"name"`
	State     string          `json:"state"`
	APIServer string          `json:"apiServer"`
	Nodes     int             `json:"nodes"`
	Processes map[string]bool `json:"processes"`
}

func listClusters(t *testing.T, home string) map[string]clusterStatus {
	t.Helper()
	var list []clusterStatus
	out := berth(t, home, "cluster", "list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("cluster list -o json is not JSON: %v\n%s", err, out)
	}
	m := map[string]clusterStatus{}
	for _, c := range list {
		m[c.Name] = c
	}
	return m
}

var exportRE = regexp.MustCompile(`export KUBECONFIG=(\S+)`)

const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
`

func TestLocalClusterLifecycleThroughTheCLI(t *testing.T) {
	home := testcluster.Home(t)
	bin := testcluster.BinDir(t)
	a, b := testcluster.UniqueName(t, 20), testcluster.UniqueName(t, 20)
	for _, name := range []string{a, b} {
		t.Cleanup(func() { berthResult(home, "down", "--name", name, "--purge") })
	}

	// Two clusters side by side.
	outA := berth(t, home, "up", "--name", a, "--binaries", bin)
	var upB struct {
		clusterStatus
		Created bool `json:"created"`
	}
	outB := berth(t, home, "up", "--name", b, "--nodes", "1", "--binaries", bin, "-o", "json")
	if err := json.Unmarshal([]byte(outB), &upB); err != nil {
		t.Fatalf("up -o json: %v\n%s", err, outB)
	}
	if !upB.Created || upB.State != "running" || upB.Nodes != 1 || upB.Name != b {
		t.Errorf("up -o json = %+v, want a created, running cluster %s with 1 node", upB, b)
	}
	m := exportRE.FindStringSubmatch(outA)
	if m == nil {
		t.Fatalf("berth up printed no export KUBECONFIG line:\n%s", outA)
	}
	kubeconfig := m[1]

	nodes := kubectl(t, kubeconfig, "", "get", "nodes", "-o",
		`jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	var ready int
	for _, line := range strings.Fields(nodes) {
		if strings.HasSuffix(line, "=True") {
			ready++
		}
	}
	if ready != 3 {
		t.Fatalf("kubectl get nodes shows %d Ready nodes, want 3:\n%s", ready, nodes)
	}
	kubectl(t, kubeconfig, deploymentYAML, "apply", "--server-side", "-f", "-")
	kubectl(t, kubeconfig, "", "wait", "--for=condition=Available", "deployment/web", "--timeout=90s")

	clusters := listClusters(t, home)
	if clusters[a].State != "running" || clusters[b].State != "running" {
		t.Fatalf("cluster list: %+v, want both running", clusters)
	}
	if clusters[a].APIServer == clusters[b].APIServer {
		t.Fatalf("both clusters serve at %s", clusters[a].APIServer)
	}
	if clusters[b].Nodes != 1 {
		t.Errorf("cluster %s has %d nodes, want 1", b, clusters[b].Nodes)
	}

	if out := berth(t, home, "up", "--name", a); !strings.Contains(out, "was already running") {
		t.Errorf("second up did not report the running cluster:\n%s", out)
	}

	// Stop, leave stale pid files naming a live process that is not ours (this
	// test), and restart: the data is kept and the impostor is not signalled.
	berth(t, home, "down", "--name", a)
	dirA := filepath.Join(home, "clusters", a)
	if left := testcluster.ProcessesUnder(t, dirA); len(left) > 0 {
		t.Fatalf("processes still running after down: %v", left)
	}
	for _, comp := range []string{"etcd", "kube-apiserver", "kwok"} {
		stale := fmt.Sprintf(`{"pid":%d,"startTime":1,"binary":"/x"}`, os.Getpid())
		if err := os.WriteFile(filepath.Join(dirA, "pids", comp+".pid"), []byte(stale), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clusters = listClusters(t, home)
	if clusters[a].State != "stopped" || clusters[b].State != "running" {
		t.Fatalf("after down: %+v, want %s stopped and %s running", clusters, a, b)
	}
	if out := berth(t, home, "up", "--name", a); !strings.Contains(out, "restarted with its data") {
		t.Errorf("up of a stopped cluster did not say it restarted:\n%s", out)
	}
	if got := kubectl(t, kubeconfig, "", "get", "deployment", "web", "-o", "jsonpath={.metadata.name}"); got != "web" {
		t.Fatalf("deployment lost across restart: %q", got)
	}

	for _, name := range []string{a, b} {
		berth(t, home, "down", "--name", name, "--purge")
		dir := filepath.Join(home, "clusters", name)
		if left := testcluster.ProcessesUnder(t, dir); len(left) > 0 {
			t.Errorf("processes of %s left after down --purge: %v", name, left)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("state of %s left after down --purge: %v", name, err)
		}
	}
	if _, errOut, code := berthResult(home, "down", "--name", a); code == 0 || !strings.Contains(errOut, "no cluster named") {
		t.Errorf("down of a purged cluster: exit %d, stderr %q; want a clear error", code, errOut)
	}
}

func TestVersionCommand(t *testing.T) {
	var info map[string]string
	out := berth(t, t.TempDir(), "version", "-o", "json")
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	for _, key := range []string{"version", "commit", "goVersion"} {
		if info[key] == "" {
			t.Errorf("version -o json lacks %q: %s", key, out)
		}
	}
	if !strings.HasPrefix(info["goVersion"], "go1.") {
		t.Errorf("goVersion = %q", info["goVersion"])
	}
	if _, errOut, code := berthResult(t.TempDir(), "version", "-o", "yaml"); code == 0 || !strings.Contains(errOut, `unknown output format "yaml"`) {
		t.Errorf("-o yaml: exit %d, stderr %q; want a clear error", code, errOut)
	}
}

func TestClusterListOnAnEmptyHome(t *testing.T) {
	home := t.TempDir()
	if out := berth(t, home, "cluster", "list"); !strings.Contains(out, "No local clusters") {
		t.Errorf("cluster list on an empty home printed %q", out)
	}
	if out := strings.TrimSpace(berth(t, home, "cluster", "list", "-o", "json")); out != "[]" {
		t.Errorf("cluster list -o json on an empty home printed %q, want []", out)
	}
}
