package cli

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// TestBootstrapReconcileSuspendResume runs the controller's command lines
// against a real API server, with the controller itself running in-process
// and the workspace in a real git repository.
func TestBootstrapReconcileSuspendResume(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	kc := kubeconfig(t)
	ctx := context.Background()

	ws, err := workspace.Init(ctx, filepath.Join(t.TempDir(), "ws"), workspace.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "hello"}, "data": map[string]any{"v": "1"}}}
	err = ws.Change(ctx, "install hello", []string{workspace.AppDir("hello"), workspace.AppRenderedDir("hello")}, func() error {
		if err := ws.WriteApp(&workspace.App{Name: "hello", Package: "hello", Namespace: appNS}); err != nil {
			return err
		}
		_, err := ws.WriteRendered(context.Background(), "hello", []*unstructured.Unstructured{cm})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// bootstrap installs the CRD, the Secrets and the Workspace.
	stdout, stderr, code := run(t, "bootstrap", "--kubeconfig", kc, "-n", ns, "--name", "main", "--repo", "file://"+ws.Root, "--no-controller", "--interval", "1h")
	if code != 0 {
		t.Fatalf("bootstrap: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Workspace "+ns+"/main follows file://"+ws.Root) {
		t.Errorf("bootstrap output:\n%s", stdout)
	}

	opts := controller.DefaultOptions()
	opts.Namespace, opts.CacheDir = ns, t.TempDir()
	opts.MetricsAddr, opts.ProbeAddr, opts.WebhookAddr = "0", "0", "0"
	c, err := controller.New(testcluster.Config(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Start(cctx) }()
	t.Cleanup(func() { cancel(); <-done })

	stdout, stderr, code = run(t, "reconcile", "--kubeconfig", kc, "-n", ns, "--timeout", "60s")
	if code != 0 || !strings.Contains(stdout, "hello") || !strings.Contains(stdout, "ready") {
		t.Fatalf("reconcile: exit %d\n%s\n%s", code, stdout, stderr)
	}

	k, err := client.New(testcluster.Config(t), client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	suspended := func() []string {
		var w berthv1.Workspace
		if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "main"}, &w); err != nil {
			t.Fatal(err)
		}
		return w.Spec.SuspendedApps
	}
	if _, stderr, code := run(t, "suspend", "hello", "--kubeconfig", kc, "-n", ns); code != 0 {
		t.Fatalf("suspend: %d %s", code, stderr)
	}
	if diff := cmp.Diff([]string{"hello"}, suspended()); diff != "" {
		t.Errorf("suspended apps (-want +got):\n%s", diff)
	}
	if _, stderr, code := run(t, "suspend", "nope", "--kubeconfig", kc, "-n", ns); code == 0 || !strings.Contains(stderr, `no app "nope"`) {
		t.Errorf("suspending an unknown app: %d %s", code, stderr)
	}
	if _, stderr, code := run(t, "resume", "hello", "--kubeconfig", kc, "-n", ns); code != 0 {
		t.Fatalf("resume: %d %s", code, stderr)
	}
	if got := suspended(); len(got) != 0 {
		t.Errorf("suspended apps after resume: %v", got)
	}

	stdout, stderr, code = run(t, "reconcile", "hello", "--kubeconfig", kc, "-n", ns, "-o", "json", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("reconcile -o json: %d %s", code, stderr)
	}
	var got struct {
		Apps []berthv1.AppStatus `json:"apps"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(got.Apps) != 1 || got.Apps[0].Name != "hello" || got.Apps[0].Namespace != appNS || got.Apps[0].Inventory.Objects != 1 {
		t.Errorf("reconcile -o json apps: %+v", got.Apps)
	}

	// A second bootstrap keeps the webhook token.
	var before, after string
	tok := func() string {
		var s struct {
			Data map[string][]byte
		}
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("Secret")
		if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "berth-webhook-token"}, u); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(u.Object)
		_ = json.Unmarshal(b, &s)
		return string(s.Data["token"])
	}
	before = tok()
	if _, stderr, code := run(t, "bootstrap", "--kubeconfig", kc, "-n", ns, "--name", "main", "--repo", "file://"+ws.Root, "--no-controller", "--interval", "1h"); code != 0 {
		t.Fatalf("second bootstrap: %d %s", code, stderr)
	}
	after = tok()
	if before == "" || before != after {
		t.Errorf("webhook token changed on a second bootstrap (empty: %v)", before == "")
	}
}
