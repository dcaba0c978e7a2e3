package apply

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

// A namespace berth created for an app whose first inventory write never
// happened (berth killed in between, or the write refused) is deleted by a
// delete of the app, instead of "no inventory" forever; one that holds
// another's objects is left.
func TestDeleteOfAnAppWithoutInventoryTakesItsOrphanedNamespace(t *testing.T) {
	ctx := context.Background()
	cs := testcluster.Clientset(t)
	e, _ := newEngine(t)
	label := func(ns, app string) {
		t.Helper()
		n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Labels[LabelApp] = app
		if _, err := cs.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	orphan := testcluster.Namespace(t)
	label(orphan, "orphan")
	res, err := e.Delete(ctx, DeleteOptions{App: "orphan", Namespace: orphan})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Action != ActionDelete || res.Changes[0].Object.Kind != "Namespace" {
		t.Errorf("changes %+v, want the namespace deleted", res.Changes)
	}
	n, err := cs.CoreV1().Namespaces().Get(ctx, orphan, metav1.GetOptions{})
	if err == nil && n.DeletionTimestamp == nil {
		t.Errorf("namespace %s is still there", orphan)
	} else if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}

	shared := testcluster.Namespace(t)
	label(shared, "orphan2")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}}
	if _, err := cs.CoreV1().ConfigMaps(shared).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Delete(ctx, DeleteOptions{App: "orphan2", Namespace: shared}); !errors.Is(err, ErrNoInventory) {
		t.Errorf("delete where others' objects live: %v, want ErrNoInventory", err)
	}
	if n, err := cs.CoreV1().Namespaces().Get(ctx, shared, metav1.GetOptions{}); err != nil || n.DeletionTimestamp != nil {
		t.Errorf("a namespace holding another's objects was deleted (%v)", err)
	}
}
