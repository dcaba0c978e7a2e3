package lifecycle

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

func TestStatusReportsDriftAndSuspension(t *testing.T) {
	ctx := context.Background()
	cfg := testcluster.Config(t)
	env := newEnv(t, cfg)
	name := testcluster.UniqueName(t, 20)
	ns := name
	if _, err := env.Install(ctx, InstallOptions{Package: "redis", Name: name, Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), ns, metav1DeleteOptions)
	})
	if _, err := env.Deploy(ctx, DeployOptions{Timeout: 3 * time.Minute}); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	status := func() AppStatus {
		t.Helper()
		st, err := env.Status(ctx, name)
		if err != nil || len(st) != 1 {
			t.Fatalf("status: %v, %+v", err, st)
		}
		return st[0]
	}
	if st := status(); st.Summary() != HealthHealthy || st.Suspended || len(st.Drift) != 0 {
		t.Fatalf("status right after a deploy = %+v, want plain Healthy", st)
	}

	// Someone changes a field berth set: drift, though every object is healthy.
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	svcs := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "services"}).Namespace(ns)
	list, err := svcs.List(ctx, metav1.ListOptions{LabelSelector: "berth.dev/app=" + name})
	if err != nil || len(list.Items) == 0 {
		t.Fatalf("services of the app: %v (%d)", err, len(list.Items))
	}
	svc := list.Items[0]
	labels := svc.GetLabels()
	labels["app.kubernetes.io/name"] = "edited-by-hand"
	svc.SetLabels(labels)
	if _, err := svcs.Update(ctx, &svc, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	st := status()
	if st.Health != HealthHealthy || len(st.Drift) != 1 || !strings.Contains(st.Drift[0].Object, svc.GetName()) || st.Drift[0].Action != "update" {
		t.Fatalf("status after a hand edit = %+v, want healthy with service %s drifted (update)", st, svc.GetName())
	}
	if got := st.Summary(); got != "Healthy, drifted (1)" {
		t.Errorf("summary = %q, want \"Healthy, drifted (1)\"", got)
	}

	// The controller managing this workspace suspends the app.
	testcluster.InstallCRDs(t, testcluster.Config(t))
	wss := dyn.Resource(schema.GroupVersionResource{Group: "berth.dev", Version: "v1alpha1", Resource: "workspaces"}).Namespace(ns)
	ws := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "berth.dev/v1alpha1", "kind": "Workspace",
		"metadata": map[string]any{"name": "platform"},
		"spec":     map[string]any{"url": "file://" + env.WS.Root, "suspendedApps": []any{name}},
	}}
	if _, err := wss.Create(ctx, ws, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := status(); !st.Suspended || !strings.Contains(st.Summary(), "suspended") {
		t.Errorf("status of a suspended app = %+v (summary %q), want suspended", st, st.Summary())
	}
}

func TestUpgradeAvailableNeverPointsBackwards(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	tests := map[string]struct {
		app    workspace.App
		locked string
		want   string
	}{
		"channel moved on":              {app: workspace.App{Name: "cache", Package: "redis", Channel: "latest"}, locked: "7.4.1", want: "7.4.2"},
		"channel behind the lock":       {app: workspace.App{Name: "cache", Package: "redis", Channel: "stable"}, locked: "7.4.2", want: ""},
		"default channel is stable":     {app: workspace.App{Name: "cache", Package: "redis"}, locked: "7.4.1", want: ""},
		"constraint allows newer":       {app: workspace.App{Name: "cache", Package: "redis", Version: "^7.4"}, locked: "7.4.1", want: "7.4.2"},
		"constraint pins the lock":      {app: workspace.App{Name: "cache", Package: "redis", Version: "=7.4.1"}, locked: "7.4.1", want: ""},
		"shared apps follow dependants": {app: workspace.App{Name: "redis", Package: "redis", Channel: "latest", Shared: true}, locked: "7.4.1", want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := env.upgradeAvailable(ctx, &tc.app, tc.locked)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("upgradeAvailable = %q, want %q", got, tc.want)
			}
		})
	}
}
