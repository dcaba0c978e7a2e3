package apply

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// ApplyOptions say how to apply an app's objects.
type ApplyOptions struct {
	// App names the app; its objects are labelled berth.dev/app=App.
	App string
	// Namespace is given to namespaced objects without one, and holds the
	// app's inventory.
	Namespace string
	// Prune deletes the objects that the inventory lists but the set no longer holds.
	Prune bool
	// DryRun plans instead of applying: nothing in the cluster changes.
	DryRun bool
	// ForceConflicts takes ownership of fields that other field managers own.
	// Without it berth still takes back fields it applied before and someone
	// else changed since (drift), but reports conflicts on any other field.
	ForceConflicts bool
	// Wait waits until every object is healthy, or Timeout passes.
	Wait bool
	// Timeout bounds the wait for health and for CRDs to be established.
	Timeout time.Duration
	// Events, when set, receives the steps of the apply as they happen, from
	// several goroutines one at a time.
	Events func(Event)
	// Revision names what is applied (the workspace commit); an apply in which
	// every object applies records it on the inventory (Engine.Revision).
	Revision string
}

// DefaultApplyOptions returns the options of a plain apply.
func DefaultApplyOptions() ApplyOptions {
	return ApplyOptions{Namespace: "default", Timeout: 5 * time.Minute}
}

// item is one object of the set on its way through an apply.
type item struct {
	obj    *unstructured.Unstructured
	ref    ObjectRef
	stage  Stage
	m      mapping
	mapped bool
	hash   string
	live   *metav1.PartialObjectMetadata
	force  bool
	change Change
	entry  Entry // what the inventory records after this run
}

func (it *item) fail(err error) {
	it.change.Action = ActionFail
	it.change.err = err
	it.change.Error = err.Error()
}

// Apply applies objs as the app opts.App: in stages, in parallel within a
// stage, recording every object in the app's inventory before it is applied,
// and skipping (without any write or dry run) the objects that are unchanged
// since the last apply and have not drifted. One object failing does not stop
// the others; the returned error is then an *ObjectsError and the Result still
// reports every object.
func (e *Engine) Apply(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) (*Result, error) {
	start := time.Now()
	if err := ValidateAppName(opts.App); err != nil {
		return nil, err
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultApplyOptions().Timeout
	}
	items, err := prepare(objs, opts.App)
	if err != nil {
		return nil, err
	}
	stored, err := e.loadInventory(ctx, opts.App, opts.Namespace)
	if err != nil {
		return nil, err
	}
	old := maps.Clone(stored.byKey)
	res := &Result{App: opts.App, Namespace: opts.Namespace, DryRun: opts.DryRun}
	crdKinds := map[string]bool{} // group/kind defined by CRDs in the set
	for _, it := range items {
		if isCRD(it.ref) {
			g, _, _ := unstructured.NestedString(it.obj.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(it.obj.Object, "spec", "names", "kind")
			crdKinds[g+"/"+k] = true
		}
	}

	desired := map[string]bool{}
	newNamespaces := map[string]bool{} // created by this apply, in a dry run
	reset := false
	// The inventory lives in the app's namespace. When the set creates that
	// namespace and an earlier stage (CRDs) records the inventory first, the
	// namespace must exist by then.
	var appNamespace *item
	for _, it := range items {
		if it.ref.Group == "" && it.ref.Kind == "Namespace" && it.ref.Name == opts.Namespace {
			appNamespace = it
		}
	}
	for stage := range numStages {
		var st []*item
		for _, it := range items {
			if it.stage == stage {
				st = append(st, it)
			}
		}
		if len(st) == 0 {
			continue
		}
		e.emit(opts.Events, Event{Type: EventStage, Message: fmt.Sprintf("%s (%d)", stage, len(st)), Elapsed: time.Since(start)})
		if !e.mapItems(st, opts.Namespace) && !reset {
			// A CRD applied in this run, or by someone else since discovery
			// was cached, may serve the kind now.
			e.resetMapper()
			reset = true
			e.mapItems(st, opts.Namespace)
		}
		if err := checkDuplicates(st); err != nil {
			return nil, err
		}
		for _, it := range st {
			if !it.mapped {
				if opts.DryRun && crdKinds[it.ref.Group+"/"+it.ref.Kind] {
					it.change = Change{Object: it.ref, Stage: stage, Action: ActionCreate, Reason: "its CustomResourceDefinition is created by this apply"}
				}
				continue
			}
			desired[it.ref.key()] = true
		}
		e.readLive(ctx, st, opts.App)
		for _, it := range st {
			e.decide(it, old, opts)
		}
		if opts.DryRun {
			e.planItems(ctx, st, newNamespaces)
			if stage == StageNamespaces {
				for _, it := range st {
					if it.change.Action == ActionCreate {
						newNamespaces[it.ref.Name] = true
					}
				}
			}
			continue
		}
		var todo []*item
		next := maps.Clone(stored.byKey)
		for _, it := range st {
			if it.change.Action == ActionCreate || it.change.Action == ActionUpdate {
				todo = append(todo, it)
				if _, ok := next[it.ref.key()]; !ok {
					next[it.ref.key()] = entryFor(it.ref)
				}
			}
		}
		if len(todo) == 0 {
			continue
		}
		if stage == StageNamespaces && !stored.exists {
			// The inventory lives in the app's namespace: create that first.
			for i, it := range todo {
				if it.ref.Name == opts.Namespace {
					e.applyItem(ctx, it, opts)
					todo = slices.Delete(todo, i, i+1)
					break
				}
			}
		}
		if !stored.exists && appNamespace != nil && stage < StageNamespaces {
			if err := e.createNamespaceEarly(ctx, appNamespace, opts.Namespace); err != nil {
				return nil, err
			}
			appNamespace = nil
		}
		// Record the objects before creating them, so that a crash
		// between here and the final write never orphans one.
		if err := e.saveInventory(ctx, opts.App, stored, next); err != nil {
			return nil, err
		}
		parallel(ctx, e.opts.Workers, len(todo), func(ctx context.Context, i int) {
			e.applyItem(ctx, todo[i], opts)
		})
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("apply of app %s interrupted; the inventory records every object it may have created, so the next apply converges: %w", opts.App, err)
		}
		if stage == StageCRDs {
			e.waitEstablished(ctx, todo, opts, start)
			e.resetMapper()
			reset = true
		}
	}

	for _, it := range items {
		res.Changes = append(res.Changes, it.change)
	}
	{
		pruned, err := e.prune(ctx, stored.byKey, desired, opts)
		if err != nil {
			return nil, err
		}
		res.Changes = append(res.Changes, pruned...)
	}
	if !opts.DryRun {
		final := map[string]Entry{}
		for _, it := range items {
			if it.change.Action == ActionFail {
				if en, ok := old[it.ref.key()]; ok {
					final[it.ref.key()] = en
				} else if it.mapped {
					final[it.ref.key()] = entryFor(it.ref)
				}
				continue
			}
			final[it.ref.key()] = it.entry
		}
		for _, c := range res.Changes {
			if (c.Action == ActionKeep && !c.forget) || (c.Action == ActionFail && !desired[c.Object.key()]) {
				if en, ok := stored.byKey[c.Object.key()]; ok {
					final[c.Object.key()] = en
				}
			}
		}
		if len(res.Failed()) == 0 {
			stored.completed(opts.Revision)
		}
		if err := e.saveInventory(ctx, opts.App, stored, final); err != nil {
			return nil, err
		}
	}
	if opts.Wait && !opts.DryRun {
		var refs []ObjectRef
		for _, it := range items {
			if it.change.Action != ActionFail {
				refs = append(refs, it.ref)
			}
		}
		health, err := e.Wait(ctx, refs, WaitOptions{App: opts.App, Timeout: opts.Timeout, Events: opts.Events})
		for i := range res.Changes {
			if h, ok := health[res.Changes[i].Object.key()]; ok {
				res.Changes[i].Health = h
			}
		}
		if err != nil {
			res.Duration = time.Since(start)
			if failed := res.Failed(); len(failed) > 0 {
				return res, errors.Join(err, &ObjectsError{Failed: failed})
			}
			return res, err
		}
	}
	res.Duration = time.Since(start)
	if failed := res.Failed(); len(failed) > 0 {
		return res, &ObjectsError{Failed: failed}
	}
	return res, nil
}

// prepare copies the objects and labels them as the app's.
func prepare(objs []*unstructured.Unstructured, app string) ([]*item, error) {
	items := make([]*item, 0, len(objs))
	for _, o := range objs {
		obj := o.DeepCopy()
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		if other, ok := labels[LabelApp]; ok && other != app {
			return nil, fmt.Errorf("%s is labelled %s=%s but is applied as app %s: remove the label from the manifest (berth sets it)", RefOf(obj), LabelApp, other, app)
		}
		labels[LabelApp] = app
		labels[LabelManagedBy] = ManagedByValue
		obj.SetLabels(labels)
		// Server-set fields in a manifest (from 'kubectl get -o yaml') would
		// make the apply fail or fight the server.
		for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink"} {
			unstructured.RemoveNestedField(obj.Object, "metadata", f)
		}
		unstructured.RemoveNestedField(obj.Object, "status")
		if err := normalizeSecret(obj); err != nil {
			return nil, err
		}
		ref := RefOf(obj)
		items = append(items, &item{obj: obj, ref: ref, stage: StageOf(ref.GroupKind())})
	}
	return items, nil
}

// normalizeSecret moves a Secret's stringData into data, as the API server
// would: stringData is never stored, so berth's managedFields entry would
// otherwise name fields that do not exist, and miss changes to data.
func normalizeSecret(obj *unstructured.Unstructured) error {
	if obj.GetAPIVersion() != "v1" || obj.GetKind() != "Secret" {
		return nil
	}
	sd, found, err := unstructured.NestedMap(obj.Object, "stringData")
	if err != nil {
		return fmt.Errorf("%s: stringData must map keys to strings: %w", RefOf(obj), err)
	}
	if !found {
		return nil
	}
	data, _, err := unstructured.NestedMap(obj.Object, "data")
	if err != nil {
		return fmt.Errorf("%s: data must map keys to base64 strings: %w", RefOf(obj), err)
	}
	if data == nil {
		data = map[string]any{}
	}
	for k, v := range sd {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: stringData.%s is not a string: quote it", RefOf(obj), k)
		}
		data[k] = base64.StdEncoding.EncodeToString([]byte(s))
	}
	unstructured.RemoveNestedField(obj.Object, "stringData")
	return unstructured.SetNestedMap(obj.Object, data, "data")
}

// mapItems resolves each item's resource and namespace; it reports whether
// every item's kind is known.
func (e *Engine) mapItems(st []*item, namespace string) bool {
	all := true
	for _, it := range st {
		if it.mapped {
			continue
		}
		m, err := e.mappingFor(it.ref.GroupVersionKind())
		if err != nil {
			all = false
			it.change = Change{Object: it.ref, Stage: it.stage}
			it.fail(fmt.Errorf("%s: %w", it.ref, err))
			continue
		}
		it.m, it.mapped = m, true
		if m.namespaced && it.obj.GetNamespace() == "" {
			it.obj.SetNamespace(namespace)
		}
		if !m.namespaced && it.obj.GetNamespace() != "" {
			it.obj.SetNamespace("")
		}
		it.ref = RefOf(it.obj)
		it.change = Change{Object: it.ref, Stage: it.stage}
	}
	return all
}

func checkDuplicates(st []*item) error {
	seen := map[string]bool{}
	for _, it := range st {
		if !it.mapped {
			continue
		}
		if seen[it.ref.key()] {
			return fmt.Errorf("%s appears twice in the manifests: keep one of them", it.ref)
		}
		seen[it.ref.key()] = true
	}
	return nil
}

type listKey struct {
	m         mapping
	namespace string
}

// readLive reads the metadata of the app's objects with one LIST per resource
// and namespace.
func (e *Engine) readLive(ctx context.Context, st []*item, app string) {
	groups := map[listKey][]*item{}
	for _, it := range st {
		if it.mapped {
			k := listKey{it.m, it.ref.Namespace}
			groups[k] = append(groups[k], it)
		}
	}
	keys := slices.Collect(maps.Keys(groups))
	parallel(ctx, e.opts.Workers, len(keys), func(ctx context.Context, i int) {
		k := keys[i]
		list, err := e.listMeta(ctx, k, app)
		if err != nil {
			for _, it := range groups[k] {
				it.fail(fmt.Errorf("%s: reading it from the cluster: %w", it.ref, err))
			}
			return
		}
		byName := make(map[string]*metav1.PartialObjectMetadata, len(list))
		for j := range list {
			byName[list[j].Name] = &list[j]
		}
		for _, it := range groups[k] {
			it.live = byName[it.ref.Name]
		}
	})
}

func (e *Engine) listMeta(ctx context.Context, k listKey, app string) ([]metav1.PartialObjectMetadata, error) {
	opts := metav1.ListOptions{LabelSelector: LabelApp + "=" + app}
	var list *metav1.PartialObjectMetadataList
	var err error
	if k.m.namespaced {
		list, err = e.meta.Resource(k.m.gvr).Namespace(k.namespace).List(ctx, opts)
	} else {
		list, err = e.meta.Resource(k.m.gvr).List(ctx, opts)
	}
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// decide sets what to do with an item: create, update or nothing. Unchanged
// means the manifest hashes as recorded and berth's managedFields entry is the
// one the API server returned after the last apply.
func (e *Engine) decide(it *item, old map[string]Entry, opts ApplyOptions) {
	if it.change.Action == ActionFail || !it.mapped {
		return
	}
	h, err := hashObject(it.obj)
	if err != nil {
		it.fail(fmt.Errorf("%s: %w", it.ref, err))
		return
	}
	it.hash = h
	en, recorded := old[it.ref.key()]
	it.force = opts.ForceConflicts || (recorded && en.Desired == h && en.Fields != "")
	switch {
	case it.live == nil:
		it.change.Action = ActionCreate
		if recorded && en.Desired != "" {
			it.change.Reason = "drift: deleted from the cluster, or its " + LabelApp + " label removed"
		}
	case !recorded || en.Desired == "":
		it.change.Action = ActionUpdate
		it.change.Reason = "not recorded as applied"
	case en.Desired != h:
		it.change.Action = ActionUpdate
		it.change.Reason = "manifest changed"
	case en.Fields != fieldsHash(it.live.ManagedFields, e.opts.FieldManager):
		it.change.Action = ActionUpdate
		it.change.Reason = driftReason(it.live.ManagedFields, e.opts.FieldManager)
	default:
		it.change.Action = ActionUnchanged
		it.entry = en
	}
}

// driftReason names the managers that changed the object since berth's last apply.
func driftReason(fields []metav1.ManagedFieldsEntry, manager string) string {
	own := managerEntry(fields, manager)
	var others []string
	for _, f := range fields {
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply {
			continue
		}
		if own == nil || own.Time == nil || f.Time == nil || !f.Time.Before(own.Time) {
			if !slices.Contains(others, f.Manager) {
				others = append(others, f.Manager)
			}
		}
	}
	if len(others) == 0 {
		return "drift: fields berth applied were changed"
	}
	return "drift: fields berth applied were changed by " + strings.Join(others, ", ")
}

func (e *Engine) resource(m mapping, namespace string) dynamic.ResourceInterface {
	if m.namespaced {
		return e.dyn.Resource(m.gvr).Namespace(namespace)
	}
	return e.dyn.Resource(m.gvr)
}

// createNamespaceEarly applies the app's namespace ahead of its stage, so that
// the inventory can be written in it; its stage applies it again as usual.
func (e *Engine) createNamespaceEarly(ctx context.Context, it *item, namespace string) error {
	if !e.mapItems([]*item{it}, namespace) {
		return fmt.Errorf("namespace %s: no mapping for kind Namespace", namespace)
	}
	_, err := e.resource(it.m, "").Apply(ctx, it.ref.Name, it.obj, metav1.ApplyOptions{FieldManager: e.opts.FieldManager})
	if err != nil {
		return fmt.Errorf("creating namespace %s, which holds the inventory of the app: %w", namespace, err)
	}
	return nil
}

func (e *Engine) applyItem(ctx context.Context, it *item, opts ApplyOptions) {
	out, err := e.resource(it.m, it.ref.Namespace).Apply(ctx, it.ref.Name, it.obj, metav1.ApplyOptions{FieldManager: e.opts.FieldManager, Force: it.force})
	if err != nil {
		it.change.Conflicts = conflicts(err)
		it.fail(applyError(it.ref, err, it.change.Conflicts))
		e.emit(opts.Events, Event{Type: EventFailed, Object: it.ref, Action: ActionFail, Message: it.change.Error})
		return
	}
	if it.change.Action == ActionCreate {
		for _, f := range out.GetManagedFields() {
			if f.Manager != e.opts.FieldManager {
				// It existed without the app's label: adopted, not created.
				it.change.Action = ActionUpdate
				if it.change.Reason == "" {
					it.change.Reason = fmt.Sprintf("existed without the %s label; adopted", LabelApp)
				}
				break
			}
		}
	}
	it.entry = entryFor(it.ref)
	it.entry.Desired = it.hash
	it.entry.Fields = fieldsHash(out.GetManagedFields(), e.opts.FieldManager)
	e.emit(opts.Events, Event{Type: EventApplied, Object: it.ref, Action: it.change.Action, Message: it.change.Reason})
}

var conflictManager = regexp.MustCompile(`conflict with "([^"]*)"`)

// conflicts extracts the field conflicts of a failed apply.
func conflicts(err error) []Conflict {
	var status apierrors.APIStatus
	if !apierrors.IsConflict(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	var out []Conflict
	for _, c := range status.Status().Details.Causes {
		if c.Type != metav1.CauseTypeFieldManagerConflict {
			continue
		}
		mgr := ""
		if m := conflictManager.FindStringSubmatch(c.Message); m != nil {
			mgr = m[1]
		}
		out = append(out, Conflict{Field: c.Field, Manager: mgr, Message: c.Message})
	}
	return out
}

func applyError(ref ObjectRef, err error, cs []Conflict) error {
	if len(cs) > 0 {
		return &ConflictError{Object: ref, Conflicts: cs, Err: err}
	}
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return fmt.Errorf("%s: rejected by the API server; fix the manifest: %w", ref, err)
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%s: forbidden; the API server or an admission webhook refused it: %w", ref, err)
	}
	return fmt.Errorf("%s: apply failed: %w", ref, err)
}
