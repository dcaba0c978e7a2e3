package apply

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

func TestPlanShowsChangesAsDiffsAndMasksSecrets(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	before := `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast, size: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: same}
data: {a: b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: dropped}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: old-secret-value, user: admin}
`
	after := `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: slow, size: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: same}
data: {a: b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: added}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: new-secret-value, user: admin}
`
	mustApply(t, e, objects(t, ns, before), applyOpts("plan", ns))

	c.reset()
	res, err := e.Plan(context.Background(), objects(t, ns, after), PlanOptions{App: "plan", Namespace: ns, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Action{
		"configmap/settings": ActionUpdate, "configmap/same": ActionUnchanged, "configmap/added": ActionCreate,
		"configmap/dropped": ActionDelete, "secret/creds": ActionUpdate,
	}
	if diff := cmp.Diff(want, actions(res)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	diffs := map[string]string{}
	for _, ch := range res.Changes {
		diffs[ch.Object.ShortString()] = ch.Diff
	}
	wantSettings := `--- live
+++ after apply
@@ -1,5 +1,5 @@
 data:
-  mode: fast
+  mode: slow
   size: "1"
 metadata:
   labels:
`
	if diff := cmp.Diff(wantSettings, diffs["configmap/settings"]); diff != "" {
		t.Errorf("diff of configmap/settings (-want +got):\n%s", diff)
	}
	secretDiff := diffs["secret/creds"]
	if !strings.Contains(secretDiff, "-  password: '*** (before)'") || !strings.Contains(secretDiff, "+  password: '*** (after)'") || !strings.Contains(secretDiff, "user: '***'") {
		t.Errorf("diff of secret/creds does not mask values as expected:\n%s", secretDiff)
	}
	for _, leak := range []string{"secret-value", "c2VjcmV0", "YWRtaW4"} {
		if strings.Contains(secretDiff, leak) {
			t.Errorf("diff of secret/creds leaks %q:\n%s", leak, secretDiff)
		}
	}
	for _, r := range c.mutating() {
		if !strings.Contains(r, "dryRun=All") {
			t.Errorf("plan sent a mutating request that is not a dry run: %s", r)
		}
	}
	if n := len(c.mutating()); n != 3 {
		t.Errorf("plan sent %d dry runs, want 3 (only for the objects that change): %v", n, c.mutating())
	}
	cm, err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Get(context.Background(), "settings", metav1.GetOptions{})
	if err != nil || cm.Data["mode"] != "fast" {
		t.Errorf("plan changed the cluster: data.mode = %q, %v", cm.Data["mode"], err)
	}
	if _, ok := get(t, cmGVR, ns, "dropped"); !ok {
		t.Error("plan deleted configmap/dropped")
	}
}

func TestApplyDryRunChangesNothing(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	opts := applyOpts("dry", ns)
	opts.DryRun = true
	res := mustApply(t, e, objects(t, ns, configMaps(3, "cm", "v")), opts)
	if got := res.Count(ActionCreate); got != 3 {
		t.Errorf("%d creates planned, want 3", got)
	}
	for _, r := range c.mutating() {
		if !strings.Contains(r, "dryRun=All") {
			t.Errorf("dry run sent a real write: %s", r)
		}
	}
	if _, ok := get(t, cmGVR, ns, "cm-0"); ok {
		t.Error("dry run created configmap/cm-0")
	}
	if _, ok := get(t, secretsGVR, ns, InventoryName("dry")); ok {
		t.Error("dry run wrote an inventory")
	}
}
