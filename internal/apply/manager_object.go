package apply

import (
	"context"
	"fmt"
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ObjectOptions say how to re-apply one object of an app.
type ObjectOptions struct {
	// App names the app the object belongs to.
	App string
	// Namespace holds the app's inventory and is given to a namespaced object
	// without one.
	Namespace string
}

// FieldsFingerprint returns what the inventory records (Entry.Fields) for an
// object whose managedFields are fields: a hash of the engine's own
// server-side apply entry. A watch that sees it differ from the recorded one
// knows that someone else changed a field berth applied; changes to fields
// berth does not own, to status, or by defaulting leave it equal.
func (e *Engine) FieldsFingerprint(fields []metav1.ManagedFieldsEntry) string {
	return fieldsHash(fields, e.opts.FieldManager)
}

// FieldManager returns the engine's server-side apply field manager.
func (e *Engine) FieldManager() string { return e.opts.FieldManager }

// ObjectResult is what ApplyObject did, and what the inventory now records
// for the object.
type ObjectResult struct {
	Change Change
	Entry  Entry
}

// ApplyObject applies one object of an app, the way Apply would within the
// whole set, without reading or touching the app's other objects: drift repair
// uses it to put back one object that was deleted or edited. It takes back the
// fields berth applied before (as Apply does for drift) and records the object
// in the app's inventory, writing the inventory only when its entry changed.
func (e *Engine) ApplyObject(ctx context.Context, obj *unstructured.Unstructured, opts ObjectOptions) (*ObjectResult, error) {
	if err := ValidateAppName(opts.App); err != nil {
		return &ObjectResult{}, err
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	items, err := prepare([]*unstructured.Unstructured{obj}, opts.App)
	if err != nil {
		return &ObjectResult{}, err
	}
	it := items[0]
	if it.hook != nil {
		// A hook runs at its events; once it ran, its delete policy or its
		// own TTL may remove it: that is no drift.
		return &ObjectResult{Change: Change{Object: it.ref, Stage: it.stage, Action: ActionUnchanged, Reason: "a Helm hook: not repaired"}}, nil
	}
	if !e.mapItems(items, opts.Namespace) {
		return &ObjectResult{Change: it.change}, it.change.err
	}
	h, err := hashObject(it.obj)
	if err != nil {
		it.fail(fmt.Errorf("%s: %w", it.ref, err))
		return &ObjectResult{Change: it.change}, it.change.err
	}
	it.hash = h
	stored, err := e.loadInventory(ctx, opts.App, opts.Namespace)
	if err != nil {
		return &ObjectResult{Change: it.change}, err
	}
	en, recorded := stored.byKey[it.ref.key()]
	it.force = recorded && en.Desired == h && en.Fields != ""
	it.change.Action = ActionUpdate
	it.change.Reason = "drift repair"
	if !recorded {
		// Record it before creating it, as Apply does, so a crash never
		// orphans it.
		next := maps.Clone(stored.byKey)
		next[it.ref.key()] = entryFor(it.ref)
		if err := e.saveInventory(ctx, opts.App, stored, next); err != nil {
			return &ObjectResult{Change: it.change}, err
		}
	}
	e.applyItem(ctx, it, ApplyOptions{App: opts.App, Namespace: opts.Namespace})
	if it.change.Action == ActionFail {
		return &ObjectResult{Change: it.change}, it.change.err
	}
	if cur := stored.byKey[it.ref.key()]; cur != it.entry {
		next := maps.Clone(stored.byKey)
		next[it.ref.key()] = it.entry
		if err := e.saveInventory(ctx, opts.App, stored, next); err != nil {
			return &ObjectResult{Change: it.change}, err
		}
	}
	return &ObjectResult{Change: it.change, Entry: it.entry}, nil
}
