package apply

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

// inventoryWrites returns the writes of app's inventory among the requests.
func inventoryWrites(c *counter, app string) []string {
	var out []string
	for _, m := range c.mutating() {
		if strings.Contains(m, "/secrets") && (strings.HasPrefix(m, "POST ") || strings.Contains(m, "/secrets/"+InventoryName(app))) {
			out = append(out, m)
		}
	}
	return out
}

// A first install whose caller keeps the record of what it installs
// (IntentKept) writes the inventory once, after the objects: the write before
// them, which names what a crash could leave, is the caller's record's job.
func TestAFirstInstallWithTheIntentKeptWritesTheInventoryOnce(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	opts := applyOpts("once", ns)
	opts.AssumeNew, opts.IntentKept, opts.Prune = true, true, true
	mustApply(t, e, objects(t, ns, configMaps(3, "once", "one")), opts)
	writes := inventoryWrites(c, "once")
	if len(writes) != 1 || !strings.HasPrefix(writes[0], "POST ") {
		t.Fatalf("inventory writes %q, want its one creation", writes)
	}
	var objectWrites, afterInventory int
	for _, m := range c.mutating() {
		switch {
		case strings.Contains(m, "/configmaps/"):
			objectWrites++
		case strings.HasPrefix(m, "POST ") && strings.Contains(m, "/secrets"):
			afterInventory = objectWrites
		}
	}
	if objectWrites != 3 || afterInventory != 3 {
		t.Errorf("%d object writes, %d of them before the inventory's creation; want 3 and 3", objectWrites, afterInventory)
	}
	inv, err := e.Inventory(context.Background(), "once", ns)
	if err != nil || len(inv.Entries) != 3 {
		t.Fatalf("inventory %+v (%v), want 3 entries", inv, err)
	}
	for _, en := range inv.Entries {
		if en.Fields == "" || en.Desired == "" {
			t.Errorf("entry %+v lacks the hashes that make the next apply write nothing", en)
		}
	}

	// The next apply writes nothing.
	c.reset()
	opts.AssumeNew, opts.IntentKept = false, false
	mustApply(t, e, objects(t, ns, configMaps(3, "once", "one")), opts)
	if m := c.mutating(); len(m) != 0 {
		t.Errorf("a second apply of the same set wrote %q", m)
	}

	// Wrongly told the app is new: the inventory's creation fails after the
	// objects are applied, and the apply starts over, reading it, so what the
	// set no longer holds is pruned all the same.
	c.reset()
	opts.AssumeNew, opts.IntentKept = true, true
	res := mustApply(t, e, objects(t, ns, configMaps(2, "once", "two")), opts)
	if res.Operation != OperationUpgrade {
		t.Errorf("operation %s, want upgrade: the inventory existed", res.Operation)
	}
	if _, ok := get(t, cmGVR, ns, "once-2"); ok {
		t.Error("once-2, which the set no longer holds, was not pruned")
	}
	if inv, err := e.Inventory(context.Background(), "once", ns); err != nil || len(inv.Entries) != 2 {
		t.Errorf("inventory %+v (%v), want 2 entries", inv, err)
	}
}

// The objects an interrupted install may have left unrecorded (Previous) are
// pruned as recorded ones are, and only where they carry the app's label: an
// object of the same name that someone else owns stays.
func TestObjectsAnInterruptedInstallMayHaveLeftArePrunedByTheirLabel(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	ctx := context.Background()
	// What the interrupted install applied: left-0 and left-1, labelled,
	// with no inventory; left-2 was never applied, and a ConfigMap of that
	// name belongs to someone else.
	crashed := applyOpts("left", ns)
	crashed.AssumeNew, crashed.IntentKept = true, true
	previous := objects(t, ns, configMaps(3, "left", "one"))
	mustApply(t, e, previous[:2], crashed)
	if err := e.kube.CoreV1().Secrets(ns).Delete(ctx, InventoryName("left"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	foreign := objects(t, ns, configMaps(3, "left", "theirs"))[2]
	foreign.SetNamespace(ns)
	if _, err := dynClient(t).Resource(cmGVR).Namespace(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The next commit holds left-0 only.
	opts := applyOpts("left", ns)
	opts.Prune, opts.Previous = true, previous
	res := mustApply(t, e, objects(t, ns, configMaps(1, "left", "two")), opts)
	if _, ok := get(t, cmGVR, ns, "left-1"); ok {
		t.Errorf("left-1, left by the interrupted install, was not pruned: %v", actions(res))
	}
	if cm, ok := get(t, cmGVR, ns, "left-2"); !ok || cm.Object["data"].(map[string]any)["value"] != "theirs" {
		t.Errorf("left-2, someone else's, was deleted or changed: %v", cm)
	}
	inv, err := e.Inventory(ctx, "left", ns)
	if err != nil || len(inv.Entries) != 1 || inv.Entries[0].Name != "left-0" {
		t.Errorf("inventory %+v (%v), want left-0 alone", inv, err)
	}

	// An app removed before any inventory was written: Delete finds its
	// objects the same way.
	mustApply(t, e, previous[:2], crashed)
	if err := e.kube.CoreV1().Secrets(ns).Delete(ctx, InventoryName("left"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Delete(ctx, DeleteOptions{App: "left", Namespace: ns}); !errors.Is(err, ErrNoInventory) {
		t.Fatalf("delete without the previous objects: %v, want ErrNoInventory", err)
	}
	res, err = e.Delete(ctx, DeleteOptions{App: "left", Namespace: ns, Previous: previous, Wait: true})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	for _, name := range []string{"left-0", "left-1"} {
		if _, ok := get(t, cmGVR, ns, name); ok {
			t.Errorf("%s survived the delete: %v", name, actions(res))
		}
	}
	if _, ok := get(t, cmGVR, ns, "left-2"); !ok {
		t.Error("left-2, someone else's, was deleted")
	}
}
