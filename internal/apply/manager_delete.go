package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// DeleteOptions say how to delete an app.
type DeleteOptions struct {
	App       string
	Namespace string // holds the app's inventory
	DryRun    bool
	// Wait waits until the deleted objects are gone, or Timeout passes.
	Wait    bool
	Timeout time.Duration
	Events  func(Event)
	// Hooks are the app's objects as last applied (or only its hooks): the
	// pre-delete hooks among them run, to completion and by weight, before
	// anything is deleted; the post-delete hooks run once the app's objects
	// are deleted (and, with Wait, gone), before its namespaces and CRDs.
	// Their objects are left to their delete policy, as in Helm.
	Hooks []*unstructured.Unstructured
	// Previous are objects an interrupted apply of the app may have created
	// without its inventory recording them (ApplyOptions.Previous): they are
	// deleted as recorded ones are, as far as they carry the app's label,
	// with or without an inventory.
	Previous []*unstructured.Unstructured
}

// ReasonNotPruned is the reason of an object kept because it left the
// manifests while pruning is off.
const ReasonNotPruned = "no longer in the manifests; kept, as pruning is off"

// ErrNoInventory is returned (wrapped) by Delete for an app that has no
// inventory: berth applied nothing as that app there, or deleted it already.
var ErrNoInventory = errors.New("no inventory")

// DefaultDeleteOptions returns the options of a plain delete.
func DefaultDeleteOptions() DeleteOptions {
	return DeleteOptions{Namespace: "default", Timeout: 5 * time.Minute}
}

// Delete deletes every object in the app's inventory that still carries the
// app's label, in reverse stage order, then the inventory. PersistentVolumeClaims
// not annotated berth.dev/prune=allow, and namespaces holding objects of others,
// are kept.
func (e *Engine) Delete(ctx context.Context, opts DeleteOptions) (*Result, error) {
	start := time.Now()
	if err := ValidateAppName(opts.App); err != nil {
		return nil, err
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultDeleteOptions().Timeout
	}
	stored, err := e.loadInventory(ctx, opts.App, opts.Namespace)
	if err != nil {
		return nil, err
	}
	e.addPrevious(stored, opts.Previous, opts.Namespace)
	if !stored.exists && len(stored.byKey) == 0 {
		// The app's namespace may have been created just before the first
		// inventory write, which did not happen (berth was killed, or an
		// admission policy refused it): nothing else was created then.
		if ch, err := e.deleteOrphanedNamespace(ctx, opts); err != nil || ch != nil {
			if err != nil {
				return nil, err
			}
			return &Result{App: opts.App, Namespace: opts.Namespace, DryRun: opts.DryRun, Changes: []Change{*ch}, Duration: time.Since(start)}, nil
		}
		return nil, fmt.Errorf("app %s has no inventory in namespace %s (secret %s): berth applied nothing as %s there: %w", opts.App, opts.Namespace, InventoryName(opts.App), opts.App, ErrNoInventory)
	}
	res := &Result{App: opts.App, Namespace: opts.Namespace, DryRun: opts.DryRun}
	pre, post, err := e.deleteHooks(opts)
	if err != nil {
		return nil, err
	}
	if err := e.runDeleteHooks(ctx, pre, HookPreDelete, opts, res, start); err != nil {
		res.Duration = time.Since(start)
		return res, fmt.Errorf("nothing of app %s was deleted: %w", opts.App, err)
	}
	// The app's objects, then the post-delete hooks, then the namespaces
	// (which the hooks may need) and CRDs.
	var late, early []Entry
	for _, en := range stored.sorted() {
		if StageOf(en.Ref().GroupKind()) > StageNamespaces {
			late = append(late, en)
		} else {
			early = append(early, en)
		}
	}
	kept := map[string][]string{}
	res.Changes = append(res.Changes, e.deleteStages(ctx, late, opts.App, opts.DryRun, kept, opts.Events)...)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(post) > 0 && opts.Wait && !opts.DryRun {
		if err := e.waitGone(ctx, deletedRefs(res.Changes), opts.App, opts.Timeout); err != nil {
			res.Duration = time.Since(start)
			return res, err
		}
	}
	if err := e.runDeleteHooks(ctx, post, HookPostDelete, opts, res, start); err != nil {
		res.Duration = time.Since(start)
		return res, err
	}
	res.Changes = append(res.Changes, e.deleteStages(ctx, early, opts.App, opts.DryRun, kept, opts.Events)...)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res.Duration = time.Since(start)
	if opts.DryRun {
		return res, nil
	}
	failed := res.Failed()
	if len(failed) > 0 {
		// Keep what is left recorded, so that a retry finds it.
		left := map[string]Entry{}
		for _, c := range res.Changes {
			if c.Action == ActionFail || (c.Action == ActionKeep && !c.forget) {
				left[c.Object.key()] = stored.byKey[c.Object.key()]
			}
		}
		if err := e.saveInventory(ctx, opts.App, stored, left); err != nil {
			return res, err
		}
		return res, &ObjectsError{Failed: failed}
	}
	if opts.Wait {
		if err := e.waitGone(ctx, deletedRefs(res.Changes), opts.App, opts.Timeout); err != nil {
			res.Duration = time.Since(start)
			return res, err
		}
	}
	if err := e.deleteInventory(ctx, opts.App, stored); err != nil {
		return res, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

func deletedRefs(changes []Change) []ObjectRef {
	var out []ObjectRef
	for _, c := range changes {
		if c.Action == ActionDelete {
			out = append(out, c.Object)
		}
	}
	return out
}

// deleteHooks picks the pre-delete and post-delete hooks of opts.Hooks.
func (e *Engine) deleteHooks(opts DeleteOptions) (pre, post []*item, err error) {
	items, err := prepare(opts.Hooks, opts.App)
	if err != nil {
		return nil, nil, err
	}
	for _, it := range items {
		switch {
		case it.hook == nil:
		case it.hook.has(HookPreDelete):
			pre = append(pre, it)
		case it.hook.has(HookPostDelete):
			post = append(post, it)
		}
	}
	return pre, post, nil
}

// runDeleteHooks runs the hooks of a delete event: every time, since a
// delete happens once.
func (e *Engine) runDeleteHooks(ctx context.Context, hooks []*item, event string, opts DeleteOptions, res *Result, start time.Time) error {
	if len(hooks) == 0 {
		return nil
	}
	e.emit(opts.Events, Event{Type: EventStage, Message: fmt.Sprintf("%s hooks (%d)", event, len(hooks)), Elapsed: time.Since(start)})
	e.mapItems(hooks, opts.Namespace)
	if err := checkDuplicates(hooks); err != nil {
		return err
	}
	e.readLive(ctx, hooks, opts.App)
	for _, it := range hooks {
		if it.change.Action == ActionFail {
			continue
		}
		it.change.Action, it.change.Reason = ActionCreate, event+" hook: runs"
		it.force = true
	}
	var err error
	if !opts.DryRun {
		aopts := ApplyOptions{App: opts.App, Namespace: opts.Namespace, Timeout: opts.Timeout, Events: opts.Events}
		err = e.runHooks(ctx, hooks, event, aopts, start)
	}
	for _, it := range hooks {
		if err != nil && it.change.Action == ActionCreate && it.uid == "" {
			it.change = Change{Object: it.ref, Stage: it.stage, Action: ActionSkip, Reason: "not run: " + err.Error()}
		}
	}
	for _, it := range hooks {
		res.Changes = append(res.Changes, it.change)
	}
	if err == nil {
		for _, it := range hooks {
			if it.change.Action == ActionFail {
				return &ObjectsError{Failed: []Change{it.change}}
			}
		}
	}
	return err
}

// prune deletes the objects recorded in current that are not desired.
func (e *Engine) prune(ctx context.Context, current map[string]Entry, desired map[string]bool, opts ApplyOptions) ([]Change, error) {
	var cands []Entry
	for _, k := range slices.Sorted(maps.Keys(current)) {
		if !desired[k] {
			cands = append(cands, current[k])
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	if !opts.Prune {
		out := make([]Change, 0, len(cands))
		for _, en := range cands {
			out = append(out, Change{Object: en.Ref(), Stage: StageOf(en.Ref().GroupKind()), Action: ActionKeep, Reason: ReasonNotPruned})
		}
		return out, nil
	}
	changes := e.deleteEntries(ctx, cands, opts.App, opts.DryRun, opts.Events)
	return changes, ctx.Err()
}

type pruneItem struct {
	ref    ObjectRef
	m      mapping
	uid    string
	annot  map[string]string
	change Change
}

// deleteEntries deletes the recorded objects that still carry the app's label,
// stage by stage in reverse order.
func (e *Engine) deleteEntries(ctx context.Context, entries []Entry, app string, dryRun bool, events func(Event)) []Change {
	return e.deleteStages(ctx, entries, app, dryRun, map[string][]string{}, events)
}

// deleteStages is deleteEntries, with kept listing (by namespace) the app's
// objects kept so far: their namespaces are kept too.
func (e *Engine) deleteStages(ctx context.Context, entries []Entry, app string, dryRun bool, kept map[string][]string, events func(Event)) []Change {
	byStage := make([][]*pruneItem, numStages)
	var out []Change
	for _, en := range entries {
		r := en.Ref()
		st := StageOf(r.GroupKind())
		m, err := e.mappingForGroupKind(r)
		if err != nil {
			if errors.Is(err, ErrUnknownKind) {
				// Its CRD is gone, and with it every object of the kind.
				continue
			}
			c := Change{Object: r, Stage: st}
			c.Action, c.err, c.Error = ActionFail, err, err.Error()
			out = append(out, c)
			continue
		}
		byStage[st] = append(byStage[st], &pruneItem{ref: r, m: m, change: Change{Object: r, Stage: st}})
	}
	for st := numStages - 1; st >= 0; st-- {
		items := byStage[st]
		if len(items) == 0 {
			continue
		}
		e.readPruneItems(ctx, items, app)
		parallel(ctx, e.opts.Workers, len(items), func(ctx context.Context, i int) {
			e.deleteItem(ctx, items[i], app, dryRun, kept, events)
		})
		for _, it := range items {
			if it.change.Action != "" {
				out = append(out, it.change)
			}
			if it.change.Action == ActionKeep && it.uid != "" && it.ref.Namespace != "" && !isHook(it.annot) {
				kept[it.ref.Namespace] = append(kept[it.ref.Namespace], it.ref.ShortString())
			}
		}
	}
	return out
}

// readPruneItems finds which recorded objects still carry the app's label, with
// one LIST per resource and namespace.
func (e *Engine) readPruneItems(ctx context.Context, items []*pruneItem, app string) {
	groups := map[listKey][]*pruneItem{}
	for _, it := range items {
		k := listKey{it.m, it.ref.Namespace}
		groups[k] = append(groups[k], it)
	}
	keys := slices.Collect(maps.Keys(groups))
	parallel(ctx, e.opts.Workers, len(keys), func(ctx context.Context, i int) {
		list, err := e.listMeta(ctx, keys[i], app)
		for _, it := range groups[keys[i]] {
			if err != nil {
				it.change.Action, it.change.err = ActionFail, fmt.Errorf("%s: reading it before pruning: %w", it.ref, err)
				it.change.Error = it.change.err.Error()
				continue
			}
			for _, o := range list {
				if o.Name == it.ref.Name {
					it.uid = string(o.UID)
					it.annot = o.Annotations
				}
			}
		}
	})
}

func (e *Engine) deleteItem(ctx context.Context, it *pruneItem, app string, dryRun bool, kept map[string][]string, events func(Event)) {
	if it.change.Action == ActionFail {
		return
	}
	c := &it.change
	if it.uid == "" {
		// Not labelled as the app's: gone, or someone else's now.
		_, err := e.meta.Resource(it.m.gvr).Namespace(it.ref.Namespace).Get(ctx, it.ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			c.forget = true
			return
		}
		c.Action, c.forget = ActionKeep, true
		c.Reason = fmt.Sprintf("no longer labelled %s=%s: it belongs to someone else now", LabelApp, app)
		return
	}
	if why := keepReason(it.ref, it.annot); why != "" {
		// Helm forgets such objects: so does the inventory.
		c.Action, c.forget, c.Reason = ActionKeep, true, why
		e.emit(events, Event{Type: EventProgress, Object: it.ref, Action: ActionKeep, Message: why})
		return
	}
	if isHook(it.annot) {
		c.Action, c.forget = ActionKeep, true
		c.Reason = "a Helm hook: hooks are not the app's resources (their delete policy removes them), as in Helm"
		return
	}
	if it.ref.GroupKind() == (schema.GroupKind{Kind: "PersistentVolumeClaim"}) && it.annot[AnnotationPrune] != PruneAllow {
		c.Action = ActionKeep
		c.Reason = fmt.Sprintf("a PersistentVolumeClaim keeps data: annotate it %s=%s to let berth delete it", AnnotationPrune, PruneAllow)
		return
	}
	if it.ref.GroupKind() == (schema.GroupKind{Kind: "Namespace"}) {
		if objs := kept[it.ref.Name]; len(objs) > 0 {
			slices.Sort(objs)
			c.Action = ActionKeep
			c.Reason = "holds objects of the app that are kept: " + strings.Join(objs, ", ")
			return
		}
		foreign, err := e.ForeignObjects(ctx, it.ref.Name, app)
		if err != nil {
			c.Action, c.err = ActionFail, fmt.Errorf("%s: checking for objects of others before deleting it: %w", it.ref, err)
			c.Error = c.err.Error()
			return
		}
		if len(foreign) > 0 {
			c.Action = ActionKeep
			c.Reason = "holds objects that are not the app's: " + strings.Join(foreign, ", ")
			return
		}
	}
	c.Action = ActionDelete
	if dryRun {
		return
	}
	uid := it.uid
	policy := metav1.DeletePropagationBackground
	err := e.resource(it.m, it.ref.Namespace).Delete(ctx, it.ref.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: (*types.UID)(&uid)},
		PropagationPolicy: &policy,
	})
	if err != nil && !apierrors.IsNotFound(err) {
		c.Action, c.err = ActionFail, fmt.Errorf("%s: delete failed: %w", it.ref, err)
		c.Error = c.err.Error()
		e.emit(events, Event{Type: EventFailed, Object: it.ref, Action: ActionFail, Message: c.Error})
		return
	}
	e.emit(events, Event{Type: EventDeleted, Object: it.ref, Action: ActionDelete})
}

var namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// deleteOrphanedNamespace deletes the app's namespace when berth created it
// for the app (it carries the app's label) and it holds nothing that is not
// the app's, although the app has no inventory there. It returns nil when
// there is no such namespace.
func (e *Engine) deleteOrphanedNamespace(ctx context.Context, opts DeleteOptions) (*Change, error) {
	ns, err := e.dyn.Resource(namespacesGVR).Get(ctx, opts.Namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", opts.Namespace, err)
	}
	if ns.GetLabels()[LabelApp] != opts.App || ns.GetDeletionTimestamp() != nil {
		return nil, nil
	}
	foreign, err := e.ForeignObjects(ctx, opts.Namespace, opts.App)
	if err != nil {
		return nil, err
	}
	if len(foreign) > 0 {
		return nil, nil
	}
	ref := RefOf(ns)
	ch := &Change{Object: ref, Stage: StageNamespaces, Action: ActionDelete,
		Reason: "the app's namespace, created before its first inventory write, which never happened"}
	if opts.DryRun {
		return ch, nil
	}
	uid := ns.GetUID()
	err = e.dyn.Resource(namespacesGVR).Delete(ctx, opts.Namespace, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("deleting namespace %s: %w", opts.Namespace, err)
	}
	e.emit(opts.Events, Event{Type: EventDeleted, Object: ref, Action: ActionDelete, Message: ch.Reason})
	return ch, nil
}

// ForeignObjects lists (up to a few) objects in namespace that are not the app's
// and not made by Kubernetes itself.
func (e *Engine) ForeignObjects(ctx context.Context, namespace, app string) ([]string, error) {
	lists, err := e.disco.ServerPreferredNamespacedResources()
	if err != nil && len(lists) == 0 {
		return nil, err
	}
	type res struct {
		gvr  schema.GroupVersionResource
		kind string
	}
	var all []res
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") || r.Kind == "Event" {
				continue
			}
			all = append(all, res{gv.WithResource(r.Name), r.Kind})
		}
	}
	var mu sync.Mutex
	var found []string
	var firstErr error
	parallel(ctx, e.opts.Workers, len(all), func(ctx context.Context, i int) {
		list, err := e.meta.Resource(all[i].gvr).Namespace(namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "!=" + app, Limit: 20})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) && firstErr == nil {
				firstErr = err
			}
			return
		}
		for _, o := range list.Items {
			if len(o.OwnerReferences) > 0 || builtinObject(all[i].kind, o.Name) {
				continue
			}
			found = append(found, strings.ToLower(all[i].kind)+"/"+o.Name)
		}
	})
	if firstErr != nil {
		return nil, firstErr
	}
	slices.Sort(found)
	if len(found) > 5 {
		found = append(found[:5], fmt.Sprintf("and %d more", len(found)-5))
	}
	return found, nil
}

// builtinObject reports objects Kubernetes puts in every namespace.
func builtinObject(kind, name string) bool {
	switch kind {
	case "ServiceAccount":
		return name == "default"
	case "ConfigMap":
		return name == "kube-root-ca.crt"
	}
	return false
}

// waitGone waits until none of refs exists any more with the app's label.
func (e *Engine) waitGone(ctx context.Context, refs []ObjectRef, app string, timeout time.Duration) error {
	groups := map[listKey][]ObjectRef{}
	for _, r := range refs {
		m, err := e.mappingForGroupKind(r)
		if err != nil {
			continue
		}
		groups[listKey{m, r.Namespace}] = append(groups[listKey{m, r.Namespace}], r)
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// What the last complete round found; before one, everything may exist.
	left := make([]string, 0, len(refs))
	for _, r := range refs {
		left = append(left, r.String())
	}
	err := wait.PollUntilContextCancel(tctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var now []string
		for k, rs := range groups {
			list, err := e.listMeta(ctx, k, app)
			if apierrors.IsNotFound(err) {
				// The resource type itself is gone (its CRD was deleted in the
				// same run): so are its objects.
				continue
			}
			if err != nil {
				return false, err
			}
			for _, r := range rs {
				for _, o := range list {
					if o.Name == r.Name {
						now = append(now, r.String())
					}
				}
			}
		}
		left = now
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%d object(s) still exist after %s (finalizers may hold them): %s: %w", len(left), timeout, strings.Join(left, ", "), err)
	}
	return nil
}
