package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/testcluster"
)

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// unchanged asserts that a failed command left the workspace as it was.
func unchanged(t *testing.T, ws, head string) {
	t.Helper()
	if got := gitIn(t, ws, "rev-parse", "HEAD"); got != head {
		t.Errorf("the workspace moved from %.8s to %.8s", head, got)
	}
	if st := gitIn(t, ws, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Errorf("the workspace has changes:\n%s", st)
	}
}

// labelled lists every object in the cluster labelled berth.dev/app=app but
// what Helm keeps after an uninstall (a chart's CRDs, hooks).
func labelled(t *testing.T, app string) []string {
	t.Helper()
	cfg := testcluster.Config(t)
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		t.Fatal(err)
	}
	var found []string
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(context.Background(), metav1.ListOptions{LabelSelector: "berth.dev/app=" + app})
			if err != nil {
				continue
			}
			for _, it := range items.Items {
				// What Helm keeps too: a chart's crds/ and hooks, which
				// their delete policy, not an uninstall, removes.
				if ann := it.GetAnnotations(); ann["berth.dev/chart-crd"] == "true" || ann["berth.dev/hook-events"] != "" {
					continue
				}
				// Deleted, and being finalized by the namespace controller.
				if it.GetDeletionTimestamp() != nil {
					continue
				}
				found = append(found, r.Kind+"/"+it.GetNamespace()+"/"+it.GetName())
			}
		}
	}
	return found
}

type appStatus struct {
	App     string `json:"app"`
	Version string `json:"version"`
	Health  string `json:"health"`
}

func status(t *testing.T, home, ws string) map[string]appStatus {
	t.Helper()
	var list []appStatus
	out := berth(t, home, "status", "-C", ws, "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	m := map[string]appStatus{}
	for _, s := range list {
		m[s.App] = s
	}
	return m
}

func TestWorkspaceLifecycleThroughTheCLI(t *testing.T) {
	t.Setenv("BERTH_FILTER_EXECUTABLE", testcluster.BerthBinary(t))
	home := t.TempDir()
	ws := filepath.Join(t.TempDir(), "infra")
	kc := testcluster.Kubeconfig(t)
	ctx := context.Background()
	cs := testcluster.Clientset(t)

	af := testcluster.UniqueName(t, 16)    // airflow: components
	cache := testcluster.UniqueName(t, 16) // redis: upgraded and rolled back
	t.Cleanup(func() {
		for _, a := range []string{"grafana", af, cache} {
			berthResult(home, "uninstall", a, "-C", ws)
		}
	})

	berth(t, home, "init", ws, "--kubeconfig", kc)
	berth(t, home, "install", "airflow", "--name", af, "--yes", "--set", "workers=1", "-C", ws)
	berth(t, home, "install", "grafana", "--yes", "-C", ws)
	berth(t, home, "install", "redis", "--name", cache, "--yes", "-C", ws)

	st := status(t, home, ws)
	for _, a := range []string{af, "grafana", "cert-manager", cache} {
		if st[a].Health != "Healthy" {
			t.Fatalf("app %s is %q after install, want Healthy: %+v", a, st[a].Health, st)
		}
	}
	if log := gitIn(t, ws, "log", "--format=%s"); !strings.Contains(log, "install grafana 11.3.0 with shared cert-manager") {
		t.Errorf("history lacks grafana's install with its shared dependency:\n%s", log)
	}

	// A second deploy of an unchanged workspace changes nothing.
	var dep struct {
		Apps []struct {
			App     string         `json:"app"`
			Actions map[string]int `json:"actions"`
		} `json:"apps"`
	}
	out := berth(t, home, "deploy", "-C", ws, "-o", "json")
	if err := json.Unmarshal([]byte(out), &dep); err != nil {
		t.Fatal(err)
	}
	if len(dep.Apps) != 4 {
		t.Fatalf("deploy touched %d apps, want 4", len(dep.Apps))
	}
	for _, a := range dep.Apps {
		for action, n := range a.Actions {
			if action != "unchanged" && n > 0 {
				t.Errorf("second deploy: app %s: %d %s, want only unchanged", a.App, n, action)
			}
		}
	}
	// Shared dependencies deploy before their dependants.
	var order []string
	for _, a := range dep.Apps {
		order = append(order, a.App)
	}
	if slices.Index(order, "cert-manager") > slices.Index(order, "grafana") {
		t.Errorf("deploy order %v puts grafana before cert-manager", order)
	}

	// plan agrees: nothing to do.
	var plans []struct {
		App     string `json:"app"`
		Changes []struct {
			Action string `json:"action"`
		} `json:"changes"`
	}
	out = berth(t, home, "plan", "-C", ws, "-o", "json")
	if err := json.Unmarshal([]byte(out), &plans); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	if len(plans) != 4 {
		t.Errorf("plan covers %d apps, want 4", len(plans))
	}
	for _, p := range plans {
		for _, c := range p.Changes {
			if c.Action != "unchanged" {
				t.Errorf("plan of an unchanged workspace: app %s would %s an object", p.App, c.Action)
			}
		}
	}
	if _, errOut, code := berthResult(home, "plan", "--app", af, "-C", ws); code == 0 || !strings.Contains(errOut, "-f") {
		t.Errorf("plan --app without -f: exit %d, %q", code, errOut)
	}

	// config: the change reaches the cluster.
	berth(t, home, "config", af, "--set", "workers=3", "-C", ws)
	worker, err := cs.AppsV1().StatefulSets(af).Get(ctx, af+"-worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if worker.Spec.Replicas == nil || *worker.Spec.Replicas != 3 {
		t.Errorf("worker replicas = %v after config workers=3", worker.Spec.Replicas)
	}

	// upgrade to a newer catalog version, then roll back.
	image := func() string {
		s, err := cs.AppsV1().StatefulSets(cache).Get(ctx, cache, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Spec.Template.Spec.Containers[0].Image
	}
	before := image()
	v0 := status(t, home, ws)[cache].Version
	berth(t, home, "upgrade", cache, "--to", "7.4.2", "-C", ws)
	if v := status(t, home, ws)[cache].Version; v != "7.4.2" || v0 == "7.4.2" {
		t.Fatalf("version after upgrade: %s (was %s), want 7.4.2", v, v0)
	}
	if image() == before {
		t.Errorf("the image did not change with the upgrade: %s", before)
	}
	berth(t, home, "rollback", cache, "-C", ws)
	if v := status(t, home, ws)[cache].Version; v != v0 {
		t.Errorf("version after rollback = %s, want %s", v, v0)
	}
	if got := image(); got != before {
		t.Errorf("image after rollback = %s, want %s", got, before)
	}

	// Bad input changes nothing.
	head := gitIn(t, ws, "rev-parse", "HEAD")
	bad := map[string][]string{
		"unknown package":       {"install", "no-such-package", "--yes"},
		"impossible constraint": {"install", "postgresql@>=99.0.0", "--yes", "--name", "pg"},
		"invalid --set":         {"config", af, "--set", "workers=lots"},
		"malformed --set":       {"config", af, "--set", "workers"},
		"unknown app":           {"config", "nope", "--set", "a=b"},
		"dependant exists":      {"uninstall", "cert-manager"},
	}
	wantMsg := map[string]string{
		"unknown package": "no-such-package", "impossible constraint": "postgresql",
		"invalid --set": "workers", "malformed --set": "NAME=VALUE", "unknown app": "nope",
		"dependant exists": "used by grafana",
	}
	for name, args := range bad {
		_, errOut, code := berthResult(home, append(args, "-C", ws)...)
		if code == 0 || !strings.Contains(errOut, wantMsg[name]) {
			t.Errorf("%s: exit %d, stderr %q; want a failure mentioning %q", name, code, errOut, wantMsg[name])
		}
		unchanged(t, ws, head)
	}
	// A hand edit in a file berth would rewrite stops it.
	appFile := filepath.Join(ws, "apps", af, "app.yaml")
	orig, err := os.ReadFile(appFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(appFile, append(orig, []byte("# my note\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := berthResult(home, "config", af, "--set", "workers=2", "-C", ws); code == 0 || !strings.Contains(errOut, "uncommitted changes") {
		t.Errorf("config on a dirty workspace: exit %d, %q", code, errOut)
	}
	if data, _ := os.ReadFile(appFile); !strings.HasSuffix(string(data), "# my note\n") {
		t.Error("the user's edit was lost")
	}
	if err := os.WriteFile(appFile, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	unchanged(t, ws, head)

	// Uninstall: grafana takes cert-manager with it; with its data deleted,
	// nothing labelled remains but what Helm keeps.
	out = berth(t, home, "uninstall", "grafana", "--delete-data", "--yes", "-C", ws)
	for _, a := range []string{"grafana", "cert-manager"} {
		if left := labelled(t, a); len(left) > 0 {
			t.Errorf("objects of %s left after uninstall: %v\nberth uninstall printed:\n%s", a, left, out)
		}
		if _, err := os.Stat(filepath.Join(ws, "apps", a)); !os.IsNotExist(err) {
			t.Errorf("apps/%s still in the workspace", a)
		}
		// A namespace that stays (cert-manager's webhook makes its CA Secret
		// there at run time) is handed over, and the user is told why.
		ns, err := testcluster.Clientset(t).CoreV1().Namespaces().Get(context.Background(), a, metav1.GetOptions{})
		if err == nil && ns.DeletionTimestamp == nil && !strings.Contains(out, "Kept the namespace "+a+" of "+a+": it holds ") {
			t.Errorf("namespace %s is kept (labels %v) and uninstall did not say why:\n%s", a, ns.Labels, out)
		}
	}
	berth(t, home, "uninstall", af, "--delete-data", "--yes", "-C", ws)
	if left := labelled(t, af); len(left) > 0 {
		t.Errorf("objects of %s left after uninstall: %v", af, left)
	}
	if st := gitIn(t, ws, "status", "--porcelain"); st != "" {
		t.Errorf("workspace not clean at the end:\n%s", st)
	}
}

func TestInstallRefusesAnUnreachableClusterBeforeChangingAnything(t *testing.T) {
	t.Setenv("BERTH_FILTER_EXECUTABLE", testcluster.BerthBinary(t))
	home := t.TempDir()
	ws := filepath.Join(t.TempDir(), "infra")
	dead := filepath.Join(t.TempDir(), "dead.kubeconfig")
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(dead, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	berth(t, home, "init", ws, "--kubeconfig", dead)
	head := gitIn(t, ws, "rev-parse", "HEAD")
	_, errOut, code := berthResult(home, "install", "redis", "--yes", "-C", ws)
	if code == 0 || !strings.Contains(errOut, "cannot reach the cluster") || !strings.Contains(errOut, "--no-deploy") {
		t.Errorf("install against a dead cluster: exit %d, %q", code, errOut)
	}
	unchanged(t, ws, head)
	// --no-deploy works without a cluster.
	berth(t, home, "install", "redis", "--yes", "--no-deploy", "-C", ws)
	if gitIn(t, ws, "rev-parse", "HEAD") == head {
		t.Error("install --no-deploy made no commit")
	}
}

// TestQuickstartTwiceIsHarmless runs the demo as 'make demo' does: over the
// real built-in catalog (not the fixture one), its charts from the mirror.
func TestQuickstartTwiceIsHarmless(t *testing.T) {
	t.Setenv(catalog.BuiltinEnv, "")
	t.Setenv("BERTH_FILTER_EXECUTABLE", testcluster.BerthBinary(t))
	home := testcluster.Home(t)
	cluster := testcluster.UniqueName(t, 20)
	ws := filepath.Join(t.TempDir(), "quickstart")
	t.Cleanup(func() { berthResult(home, "down", "--name", cluster, "--purge") })

	out := berth(t, home, "quickstart", "--dir", ws, "--cluster", cluster)
	for _, want := range []string{"airflow 1.17.0", "grafana 10.5.7", "cert-manager", "Healthy", "Try next"} {
		if !strings.Contains(out, want) {
			t.Errorf("quickstart output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Progressing") || strings.Contains(out, "Failed") {
		t.Errorf("quickstart ended with an unhealthy app:\n%s", out)
	}
	// The controller runs locally and repairs drift: delete a Deployment by hand
	// and it comes back.
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(home, "clusters", cluster, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old, err := cs.AppsV1().Deployments("airflow").Get(ctx, "airflow-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.AppsV1().Deployments("airflow").Delete(ctx, "airflow-scheduler", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 60*time.Second, func(ctx context.Context) (bool, string, error) {
		d, err := cs.AppsV1().Deployments("airflow").Get(ctx, "airflow-scheduler", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "deleted, not yet re-created", nil
		}
		if err != nil {
			return false, "", err
		}
		return d.UID != old.UID, "still the old object", nil
	})

	head := gitIn(t, ws, "rev-parse", "HEAD")
	out = berth(t, home, "quickstart", "--dir", ws, "--cluster", cluster)
	if !strings.Contains(out, "Healthy") {
		t.Errorf("second quickstart:\n%s", out)
	}
	unchanged(t, ws, head)
}
