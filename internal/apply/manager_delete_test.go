package apply

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"berth.dev/berth/internal/testcluster"
)

func TestPruneDeletesOnlyWhatIsSafe(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	ctx := context.Background()
	cs := testcluster.Clientset(t)
	own := testcluster.UniqueName(t, 40) + "-own"
	shared := testcluster.UniqueName(t, 40) + "-shared"
	t.Cleanup(func() {
		for _, n := range []string{own, shared} {
			_ = cs.CoreV1().Namespaces().Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	})
	full := objects(t, ns, `
apiVersion: v1
kind: ConfigMap
metadata: {name: keep}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: removed}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unlabelled}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: scratch
  annotations: {berth.dev/prune: allow}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Namespace
metadata: {name: `+own+`}
---
apiVersion: v1
kind: Namespace
metadata: {name: `+shared+`}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: in-own, namespace: `+own+`}
`)
	mustApply(t, e, full, applyOpts("prune", ns))

	// Someone else takes over one object, and puts one of theirs in a
	// namespace of the app.
	_, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, "unlabelled", types.MergePatchType, []byte(`{"metadata":{"labels":{"berth.dev/app":null}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := objects(t, shared, `
apiVersion: v1
kind: ConfigMap
metadata: {name: theirs, namespace: %[1]s}
`)
	if _, err := dynClient(t).Resource(cmGVR).Namespace(shared).Apply(ctx, "theirs", foreign[0], metav1.ApplyOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}

	var order []string
	opts := applyOpts("prune", ns)
	opts.Prune = true
	opts.Events = func(ev Event) {
		if ev.Type == EventDeleted {
			order = append(order, ev.Object.Kind)
		}
	}
	res := mustApply(t, e, full[:1], opts)
	want := map[string]Action{
		"configmap/keep":                ActionUnchanged,
		"configmap/removed":             ActionDelete,
		"configmap/unlabelled":          ActionKeep,
		"persistentvolumeclaim/data":    ActionKeep,
		"persistentvolumeclaim/scratch": ActionDelete,
		"namespace/" + own:              ActionDelete,
		"namespace/" + shared:           ActionKeep,
		"configmap/in-own":              ActionDelete,
	}
	if diff := cmp.Diff(want, actions(res)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	for _, c := range res.Changes {
		if c.Object.Name == shared && !strings.Contains(c.Reason, "configmap/theirs") {
			t.Errorf("namespace/%s kept for reason %q, want it to name configmap/theirs", shared, c.Reason)
		}
	}
	if last := order[len(order)-1]; last != "Namespace" {
		t.Errorf("deletion order %v: namespaces must go last", order)
	}

	for name, wantExists := range map[string]bool{"keep": true, "removed": false, "unlabelled": true} {
		if _, ok := get(t, cmGVR, ns, name); ok != wantExists {
			t.Errorf("configmap/%s exists = %v, want %v", name, ok, wantExists)
		}
	}
	if _, ok := get(t, pvcGVR, ns, "data"); !ok {
		t.Error("persistentvolumeclaim/data was pruned; claims are kept unless annotated")
	}
	if pvc, ok := get(t, pvcGVR, ns, "scratch"); ok && pvc.GetDeletionTimestamp() == nil {
		t.Error("persistentvolumeclaim/scratch, annotated berth.dev/prune=allow, was not pruned")
	}
	if n, ok := get(t, nsGVR, "", own); ok && n.GetDeletionTimestamp() == nil {
		t.Errorf("namespace/%s, holding only the app's objects, was not pruned", own)
	}
	if n, ok := get(t, nsGVR, "", shared); !ok || n.GetDeletionTimestamp() != nil {
		t.Errorf("namespace/%s, holding someone else's configmap, was pruned", shared)
	}

	// The kept claim stays in the inventory; the unlabelled object is forgotten.
	inv, err := e.Inventory(ctx, "prune", ns)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range inv.Entries {
		names = append(names, en.Kind+"/"+en.Name)
	}
	if diff := cmp.Diff([]string{"ConfigMap/keep", "Namespace/" + shared, "PersistentVolumeClaim/data"}, names); diff != "" {
		t.Errorf("inventory after prune (-want +got):\n%s", diff)
	}
}

func TestApplyWithoutPruneKeepsRemovedObjectsRecorded(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	mustApply(t, e, objects(t, ns, configMaps(2, "cm", "v")), applyOpts("noprune", ns))
	res := mustApply(t, e, objects(t, ns, configMaps(1, "cm", "v")), applyOpts("noprune", ns))
	if got := actions(res)["configmap/cm-1"]; got != ActionKeep {
		t.Errorf("cm-1: %s, want keep", got)
	}
	if _, ok := get(t, cmGVR, ns, "cm-1"); !ok {
		t.Error("configmap/cm-1 deleted without --prune")
	}
	opts := applyOpts("noprune", ns)
	opts.Prune = true
	res = mustApply(t, e, objects(t, ns, configMaps(1, "cm", "v")), opts)
	if got := actions(res)["configmap/cm-1"]; got != ActionDelete {
		t.Errorf("with --prune later, cm-1: %s, want delete", got)
	}
}

func TestDeleteRemovesTheAppButKeepsClaims(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	ctx := context.Background()
	mustApply(t, e, objects(t, ns, webDeployment+`
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`), applyOpts("gone", ns))
	opts := DefaultDeleteOptions()
	opts.App, opts.Namespace, opts.Wait, opts.Timeout = "gone", ns, true, testTimeout
	res, err := e.Delete(ctx, opts)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	want := map[string]Action{"deployment/web": ActionDelete, "configmap/settings": ActionDelete, "secret/creds": ActionDelete, "persistentvolumeclaim/data": ActionKeep}
	if diff := cmp.Diff(want, actions(res)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if _, ok := get(t, deployGVR, ns, "web"); ok {
		t.Error("deployment/web still exists after delete --wait")
	}
	if _, ok := get(t, pvcGVR, ns, "data"); !ok {
		t.Error("persistentvolumeclaim/data was deleted")
	}
	if _, ok := get(t, secretsGVR, ns, InventoryName("gone")); ok {
		t.Error("the inventory survived the delete")
	}
	if _, err := e.Delete(ctx, opts); err == nil || !strings.Contains(err.Error(), "no inventory") {
		t.Errorf("second delete: err = %v, want one saying there is no inventory", err)
	}
}
