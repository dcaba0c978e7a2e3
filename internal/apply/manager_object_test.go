package apply

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"berth.dev/berth/internal/testcluster"
)

// TestApplyObjectRepairsOneObject: ApplyObject puts back one deleted or edited
// object of an app, touching none of its other objects, and keeps the
// inventory's record so the next full apply is a no-op.
func TestApplyObjectRepairsOneObject(t *testing.T) {
	tests := map[string]struct {
		drift func(t *testing.T, ns string)
	}{
		"deleted": {func(t *testing.T, ns string) {
			if err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Delete(context.Background(), "cm-0", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		"edited by another manager": {func(t *testing.T, ns string) {
			_, err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Patch(context.Background(), "cm-0", types.MergePatchType,
				[]byte(`{"data":{"value":"hand"}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"})
			if err != nil {
				t.Fatal(err)
			}
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ns := testcluster.Namespace(t)
			e, c := newEngine(t)
			objs := objects(t, ns, configMaps(3, "cm", "v1"))
			mustApply(t, e, objs, applyOpts("app", ns))
			inv, err := e.Inventory(context.Background(), "app", ns)
			if err != nil {
				t.Fatal(err)
			}
			tt.drift(t, ns)

			c.reset()
			res, err := e.ApplyObject(context.Background(), objs[0], ObjectOptions{App: "app", Namespace: ns})
			if err != nil {
				t.Fatal(err)
			}
			if res.Change.Object.Name != "cm-0" || res.Change.Action == ActionFail {
				t.Errorf("change = %+v", res.Change)
			}
			for _, w := range c.mutating() {
				if !strings.Contains(w, "/configmaps/cm-0") {
					t.Errorf("ApplyObject wrote something else than the object: %s", w)
				}
			}
			live, ok := get(t, cmGVR, ns, "cm-0")
			if !ok {
				t.Fatal("cm-0 not re-created")
			}
			if v, _, _ := unstructured.NestedString(live.Object, "data", "value"); v != "v1" {
				t.Errorf("cm-0 data.value = %q, want v1", v)
			}
			if got := e.FieldsFingerprint(live.GetManagedFields()); got != res.Entry.Fields || got == "" {
				t.Errorf("recorded fingerprint %q, live %q", res.Entry.Fields, got)
			}
			after, err := e.Inventory(context.Background(), "app", ns)
			if err != nil {
				t.Fatal(err)
			}
			if len(after.Entries) != len(inv.Entries) {
				t.Errorf("inventory has %d entries, had %d", len(after.Entries), len(inv.Entries))
			}

			// The next full apply finds nothing to do.
			c.reset()
			res2 := mustApply(t, e, objs, applyOpts("app", ns))
			if n := res2.Count(ActionUnchanged); n != 3 {
				t.Errorf("full apply after the repair: %d unchanged, want 3: %+v", n, actions(res2))
			}
			if w := c.mutating(); len(w) != 0 {
				t.Errorf("full apply after the repair wrote: %v", w)
			}
		})
	}
}

func TestApplyObjectRefusesBadInput(t *testing.T) {
	e, _ := newEngine(t)
	ns := testcluster.Namespace(t)
	obj := objects(t, ns, configMaps(1, "cm", "v"))[0]
	if _, err := e.ApplyObject(context.Background(), obj, ObjectOptions{App: "Bad Name", Namespace: ns}); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("bad app name: %v", err)
	}
	unknown := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Nope", "metadata": map[string]any{"name": "x"}}}
	if _, err := e.ApplyObject(context.Background(), unknown, ObjectOptions{App: "app", Namespace: ns}); err == nil || !strings.Contains(err.Error(), "does not serve kind") {
		t.Errorf("unknown kind: %v", err)
	}
}
