package apply

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/testcluster"
)

// An app that ships CRDs and creates the namespace holding its own inventory
// (a shared dependency like cert-manager) applies on the first run: the CRD stage
// records the inventory, so the namespace has to exist before it.
func TestFirstApplyWithCRDsCreatesTheInventoryNamespaceFirst(t *testing.T) {
	e, _ := newEngine(t)
	ns := testcluster.UniqueName(t, 40)
	group := testcluster.UniqueName(t, 30) + ".test.berth.dev"
	docs := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.` + group + `}
spec:
  group: ` + group + `
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: ` + group + `/v1
kind: Gadget
metadata: {name: g1}
spec: {size: 1}
`
	objs := objects(t, ns, docs)
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = e.Delete(ctx, DeleteOptions{App: "gadgets", Namespace: ns, Wait: true})
	})
	res := mustApply(t, e, objs, applyOpts("gadgets", ns))
	for _, c := range res.Changes {
		if c.Action == ActionFail {
			t.Errorf("%s failed: %s", c.Object, c.Error)
		}
	}
	inv, err := e.Inventory(context.Background(), "gadgets", ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Entries) != 3 {
		t.Errorf("inventory holds %d objects, want 3", len(inv.Entries))
	}
	gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}
	if _, err := dynClient(t).Resource(gvr).Namespace(ns).Get(context.Background(), "g1", metav1.GetOptions{}); err != nil {
		t.Errorf("the custom resource was not created: %v", err)
	}
	if _, err := testcluster.Clientset(t).CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Error("the namespace does not exist")
	}
}
