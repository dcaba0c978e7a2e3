package controller

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/testcluster"
)

// A first install writes its inventory after its objects; what a controller
// stopped in between leaves is named only by the commit the Workspace noted
// (status.installingRevision). The next controller reads that commit and
// prunes what the branch no longer has, of an app still there and of an app
// removed since, and only objects that carry the app's label.
func TestAnInterruptedInstallIsCleanedUpFromTheCommitTheWorkspaceNoted(t *testing.T) {
	installCRD(t)
	ctx := context.Background()
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	cm := func(name string) *unstructured.Unstructured { return configMap(name, map[string]string{"v": "1"}) }
	web := []*unstructured.Unstructured{cm("web-a"), cm("web-b"), cm("web-c")}
	r.app("web", appNS, web, nil)
	r.app("gone", appNS, []*unstructured.Unstructured{cm("gone-a")}, nil)
	r.push()
	installing := r.head()

	// What the interrupted sync left: web-a, web-b and gone-a applied with
	// their apps' labels, no inventory, no WorkspaceApp. web-c was not
	// applied, and a ConfigMap of that name belongs to someone else.
	e, err := apply.NewEngine(testcluster.Config(t), apply.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	left := func(app string, objs []*unstructured.Unstructured) {
		t.Helper()
		opts := apply.DefaultApplyOptions()
		opts.App, opts.Namespace, opts.AssumeNew, opts.IntentKept = app, appNS, true, true
		if _, err := e.Apply(ctx, objs, opts); err != nil {
			t.Fatal(err)
		}
		var inv corev1.Secret
		inv.Name, inv.Namespace = apply.InventoryName(app), appNS
		if err := k.Delete(ctx, &inv); err != nil {
			t.Fatal(err)
		}
	}
	left("web", web[:2])
	left("gone", []*unstructured.Unstructured{cm("gone-a")})
	theirs := &corev1.ConfigMap{Data: map[string]string{"v": "theirs"}}
	theirs.Name, theirs.Namespace = "web-c", appNS
	if err := k.Create(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	ws := createWorkspace(t, k, ns, "main", r.URL, nil)
	noted := []byte(`{"status":{"installingRevision":"` + installing + `"}}`)
	if err := k.Status().Patch(ctx, ws, client.RawPatch(types.MergePatchType, noted)); err != nil {
		t.Fatal(err)
	}

	// Since then, web-b and web-c left the app, and the app gone the branch.
	r.app("web", appNS, web[:1], nil)
	r.remove("gone")
	r.push()
	startController(t, ns, nil)
	ws = waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	if ws.Status.InstallingRevision != "" {
		t.Errorf("installingRevision %s is still noted after the recovery", ws.Status.InstallingRevision)
	}
	for _, name := range []string{"web-b", "gone-a"} {
		if got := getCM(t, k, appNS, name); got != nil {
			t.Errorf("%s, left by the interrupted install, was not pruned: %v", name, got.Labels)
		}
	}
	if got := getCM(t, k, appNS, "web-a"); got == nil || got.Labels[apply.LabelApp] != "web" {
		t.Errorf("web-a = %v, want it applied as web's", got)
	}
	if got := getCM(t, k, appNS, "web-c"); got == nil || got.Data["v"] != "theirs" {
		t.Errorf("web-c, someone else's, = %v; want it left as it was", got)
	}
	if appStatus(ws, "gone") != nil {
		t.Error("the removed app gone has a WorkspaceApp")
	}
	var inv corev1.Secret
	err = k.Get(ctx, client.ObjectKey{Namespace: appNS, Name: apply.InventoryName("web")}, &inv)
	if err != nil {
		t.Fatalf("web's inventory: %v", err)
	}
	if err := k.Get(ctx, client.ObjectKey{Namespace: appNS, Name: apply.InventoryName("gone")}, &inv); !apierrors.IsNotFound(err) {
		t.Errorf("gone's inventory: %v, want none", err)
	}
}
