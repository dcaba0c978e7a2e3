package apply

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/testcluster"
)

func TestStageOf(t *testing.T) {
	tests := map[string]struct {
		gk   schema.GroupKind
		want Stage
	}{
		"crd":             {schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}, StageCRDs},
		"namespace":       {schema.GroupKind{Kind: "Namespace"}, StageNamespaces},
		"cluster role":    {schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}, StageClusterWide},
		"storage class":   {schema.GroupKind{Group: "storage.k8s.io", Kind: "StorageClass"}, StageClusterWide},
		"ingress class":   {schema.GroupKind{Group: "networking.k8s.io", Kind: "IngressClass"}, StageClusterWide},
		"role":            {schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "Role"}, StageObjects},
		"deployment":      {schema.GroupKind{Group: "apps", Kind: "Deployment"}, StageObjects},
		"custom resource": {schema.GroupKind{Group: "cert-manager.io", Kind: "Certificate"}, StageObjects},
		"webhook":         {schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}, StageWebhooks},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := StageOf(tc.gk); got != tc.want {
				t.Errorf("StageOf(%v) = %s, want %s", tc.gk, got, tc.want)
			}
		})
	}
}

func TestApplyCreatesTheAppNamespaceBeforeItsInventory(t *testing.T) {
	e, _ := newEngine(t)
	ns := testcluster.UniqueName(t, 50)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	objs := objects(t, ns, `
apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
`)
	plan, err := e.Plan(context.Background(), objs, PlanOptions{App: "fresh", Namespace: ns})
	if err != nil {
		t.Fatalf("plan into a namespace the set creates: %v", err)
	}
	if plan.Count(ActionCreate) != 2 {
		t.Errorf("plan: %+v, want 2 creates", plan.Changes)
	}
	mustApply(t, e, objs, applyOpts("fresh", ns))
	inv, err := e.Inventory(context.Background(), "fresh", ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Entries) != 2 {
		t.Errorf("inventory holds %+v, want the namespace and the configmap", inv.Entries)
	}
}
