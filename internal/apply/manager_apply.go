package apply

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/health"
)

// ApplyOptions say how to apply an app's objects.
type ApplyOptions struct {
	// App names the app; its objects are labelled berth.dev/app=App.
	App string
	// Namespace is given to namespaced objects without one, and holds the
	// app's inventory.
	Namespace string
	// Operation decides the Helm hooks that run: install or upgrade. The
	// default, OperationAuto, is an install when the app has no inventory
	// yet. A deploy that applies an app in several calls (phase by phase)
	// decides once, before its first call (Result.Operation of the first
	// call says what it was), and passes it to every call.
	Operation Operation
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
	// Timeout bounds the wait for health, for CRDs to be established and for
	// each event's hooks to complete.
	Timeout time.Duration
	// Events, when set, receives the steps of the apply as they happen, from
	// several goroutines one at a time.
	Events func(Event)
	// Revision names what is applied (the workspace commit); an apply in which
	// every object applies records it on the inventory (Engine.Revision).
	Revision string
	// AssumeNew says the caller has no record of the app ever being applied:
	// its inventory is then created without being read first (a request less
	// per app on a first sync). When an inventory exists after all, its
	// creation fails before any object is written and the apply starts over,
	// reading it.
	AssumeNew bool
	// IntentKept says the caller keeps, where its next run finds it, a record
	// from which it can name every object this apply may create (the
	// controller notes on the Workspace the commit whose new apps it
	// installs). With AssumeNew, a first install then writes the inventory
	// once, after its objects are applied, instead of also before: a request
	// less per app on a first sync. When the inventory exists after all, its
	// creation fails and the apply starts over, reading it.
	IntentKept bool
	// Previous are objects an interrupted apply of the app may have created
	// without its inventory recording them (the controller: the app's
	// manifests at the commit whose install was interrupted, see IntentKept).
	// They count as recorded: the ones the set no longer holds are pruned,
	// as far as they carry the app's label.
	Previous []*unstructured.Unstructured
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
	hook   *hook // nil unless the object is a Helm hook
	m      mapping
	mapped bool
	hash   string
	live   *metav1.PartialObjectMetadata
	uid    string // of the object applied
	force  bool
	change Change
	entry  Entry // what the inventory records after this run
	rerun  bool  // a hook of an event that failed: runs again next time
}

// hashed sets the item's manifest hash; false when the item failed already,
// is of a kind the cluster does not serve, or cannot be hashed (then failed).
func (it *item) hashed() bool {
	if it.change.Action == ActionFail || !it.mapped {
		return false
	}
	h, err := hashObject(it.obj)
	if err != nil {
		it.fail(fmt.Errorf("%s: %w", it.ref, err))
		return false
	}
	it.hash = h
	return true
}

func (it *item) fail(err error) {
	it.change.Action = ActionFail
	it.change.err = err
	it.change.Error = err.Error()
}

// Installed reports whether app has an inventory in namespace: whether an
// apply is an upgrade (true) or an install (false).
func (e *Engine) Installed(ctx context.Context, app, namespace string) (bool, error) {
	s, err := e.loadInventory(ctx, app, namespace)
	if err != nil {
		return false, err
	}
	return s.exists, nil
}

// Apply applies objs as the app opts.App, in the order of docs/apply.md:
//
//  1. read and label the objects, read the inventory;
//  2. step by step (CRDs, namespaces, pre hooks, cluster-wide objects,
//     objects, webhooks, post hooks), decide per object whether it is
//     unchanged since the last apply (no write, no dry run), record the
//     objects to apply in the inventory, then apply them in parallel; hooks
//     run to completion, by weight;
//  3. prune what the inventory holds and the set no longer does;
//  4. record the final inventory and, at the same time, wait for health
//     (statusless kinds, ConfigMaps say, are ready once applied).
//
// One object failing does not stop the others (a failing hook stops the steps
// after it); the returned error is then an *ObjectsError and the Result still
// reports every object.
func (e *Engine) Apply(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) (*Result, error) {
	res, err := e.apply(ctx, objs, opts)
	if opts.AssumeNew && !opts.DryRun && apierrors.IsAlreadyExists(err) {
		// The inventory exists: the creation of it failed, the apply's first
		// write but for the app's namespace (or, with IntentKept, its last:
		// the objects are applied again, as the inventory says); start
		// over, reading it.
		opts.AssumeNew = false
		return e.apply(ctx, objs, opts)
	}
	return res, err
}

func (e *Engine) apply(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) (*Result, error) {
	r, err := e.startApply(ctx, objs, opts)
	if err != nil {
		return nil, err
	}
	for _, st := range r.steps() {
		if r.aborted != "" {
			r.skip(st)
			continue
		}
		if err := r.applyStep(ctx, st); err != nil {
			return nil, err
		}
	}
	res := r.result()
	if err := r.prune(ctx, res); err != nil {
		return nil, err
	}
	// The final inventory is written while the health wait runs: the wait
	// reads none of it, and an app spends most of its apply waiting, so the
	// write adds nothing to the app's time (on a first sync of many apps,
	// one round trip less in each app's chain of requests).
	recorded := make(chan error, 1)
	go func() { recorded <- r.recordInventory(ctx, res) }()
	return r.finish(ctx, res, recorded)
}

// applyRun is one Apply on its way.
type applyRun struct {
	e      *Engine
	opts   ApplyOptions
	start  time.Time
	items  []*item
	stored *storedInventory
	old    map[string]Entry // the inventory as it was
	// fresh means the app had no inventory when this apply started: nothing
	// of it can be recorded as applied, so its objects' live state decides
	// nothing (a hook's still does).
	fresh bool
	// crdKinds are the group/kinds that CRDs of the set define.
	crdKinds map[string]bool
	// desired are the keys of the set's objects.
	desired map[string]bool
	// newNamespaces are created by this apply, in a dry run.
	newNamespaces map[string]bool
	reset         bool // the REST mapper was reset during this run
	// appNamespace is the app's namespace when the set holds it: the
	// inventory lives there, so it is created before the first write.
	appNamespace *item
	// health of the objects waited for before the post hooks, by key.
	health map[string]string
	// aborted names the hooks that failed; the steps after them are skipped.
	aborted string
}

// startApply reads and labels the objects, reads the inventory and decides
// whether this is an install or an upgrade.
func (e *Engine) startApply(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) (*applyRun, error) {
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
	stored := &storedInventory{namespace: opts.Namespace, byKey: map[string]Entry{}}
	if !opts.AssumeNew || opts.DryRun {
		if stored, err = e.loadInventory(ctx, opts.App, opts.Namespace); err != nil {
			return nil, err
		}
	}
	e.addPrevious(stored, opts.Previous, opts.Namespace)
	if opts.Operation == OperationAuto {
		opts.Operation = OperationUpgrade
		if !stored.exists {
			opts.Operation = OperationInstall
		}
	}
	r := &applyRun{
		e: e, opts: opts, start: start, items: items, stored: stored, old: maps.Clone(stored.byKey), fresh: !stored.exists,
		crdKinds: map[string]bool{}, desired: map[string]bool{}, newNamespaces: map[string]bool{},
	}
	for _, it := range items {
		if isCRD(it.ref) {
			g, _, _ := unstructured.NestedString(it.obj.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(it.obj.Object, "spec", "names", "kind")
			r.crdKinds[g+"/"+k] = true
		}
		if it.ref.Group == "" && it.ref.Kind == "Namespace" && it.ref.Name == opts.Namespace && it.hook == nil {
			r.appNamespace = it
		}
	}
	return r, nil
}

// step is a set of objects applied together: one stage of the app's objects,
// or the hooks of one event.
type step struct {
	stage Stage
	// event is the hook event whose hooks the step runs; "" for a stage.
	event string
	// idle holds hooks of events other than this operation's: they are
	// recorded as they were, not applied.
	idle  bool
	items []*item
}

func (st step) String() string {
	switch {
	case st.idle:
		return "hooks of other events"
	case st.event != "":
		return st.event + " hooks"
	}
	return st.stage.String()
}

// steps orders the set: CRDs and namespaces, the pre hooks, the other stages,
// the post hooks.
func (r *applyRun) steps() []step {
	pre, post := hookEvents(r.opts.Operation)
	byStage := make([][]*item, numStages)
	var preHooks, postHooks, idle, both []*item
	for _, it := range r.items {
		switch {
		case it.hook == nil:
			byStage[it.stage] = append(byStage[it.stage], it)
		case it.hook.has(pre) && it.hook.has(post):
			preHooks = append(preHooks, it)
			both = append(both, it)
		case it.hook.has(pre):
			preHooks = append(preHooks, it)
		case it.hook.has(post):
			postHooks = append(postHooks, it)
		default:
			idle = append(idle, it)
		}
	}
	// A hook of both events runs at each, as in Helm: a ServiceAccount that
	// a pre-install Job and a post-install Job both use, deleted each time
	// they succeed (hook-succeeded), is there again for the second. Only
	// with other post hooks: alone it would run again for nothing.
	if len(postHooks) > 0 {
		postHooks = append(postHooks, both...)
	}
	var out []step
	add := func(st step) {
		if len(st.items) > 0 {
			out = append(out, st)
		}
	}
	add(step{stage: StageCRDs, items: byStage[StageCRDs]})
	add(step{stage: StageNamespaces, items: byStage[StageNamespaces]})
	add(step{stage: StageObjects, event: pre, items: preHooks})
	for st := StageClusterWide; st < numStages; st++ {
		add(step{stage: st, items: byStage[st]})
	}
	add(step{stage: StageObjects, event: post, items: postHooks})
	add(step{stage: StageObjects, idle: true, items: idle})
	return out
}

// skip marks the items of a step that a failed hook keeps from being applied.
func (r *applyRun) skip(st step) {
	for _, it := range st.items {
		it.change = Change{Object: it.ref, Stage: it.stage, Action: ActionSkip, Reason: "not applied: " + r.aborted}
	}
}

// applyStep decides, records and applies the objects of one step.
func (r *applyRun) applyStep(ctx context.Context, st step) error {
	e, opts := r.e, r.opts
	if !st.idle {
		e.emit(opts.Events, Event{Type: EventStage, Message: fmt.Sprintf("%s (%d)", st, len(st.items)), Elapsed: time.Since(r.start)})
	}
	r.mapStep(ctx, st)
	if err := checkDuplicates(st.items); err != nil {
		return err
	}
	if st.idle {
		r.decideIdle(st)
		return nil
	}
	if !r.fresh || st.event != "" || opts.DryRun {
		// A first install reads nothing: every object is created, or, when
		// it existed without the app's label, adopted (applyItemOut tells
		// which from what the apply returns). That saves a LIST per kind
		// and app, which on a first sync of many apps is a tenth of the
		// requests.
		e.readLive(ctx, st.items, opts.App)
	}
	switch {
	case st.event != "":
		e.decideHooks(st.items, r.old, st.event, opts)
	default:
		for _, it := range st.items {
			e.decide(it, r.old, opts)
		}
	}
	if opts.DryRun {
		e.planItems(ctx, st.items, r.newNamespaces, st.event != "")
		if st.stage == StageNamespaces && st.event == "" {
			for _, it := range st.items {
				if it.change.Action == ActionCreate {
					r.newNamespaces[it.ref.Name] = true
				}
			}
		}
		return nil
	}
	var todo []*item
	for _, it := range st.items {
		if it.change.Action == ActionCreate || it.change.Action == ActionUpdate {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	todo, err := r.createAppNamespace(ctx, st, todo)
	if err != nil {
		return err
	}
	if err := r.recordBeforeApply(ctx, todo); err != nil {
		return err
	}
	if st.event != "" {
		r.runHooks(ctx, st)
	} else {
		parallel(ctx, e.opts.Workers, len(todo), func(ctx context.Context, i int) {
			e.applyItem(ctx, todo[i], opts)
		})
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("apply of app %s interrupted; the inventory records every object it may have created, so the next apply converges: %w", opts.App, err)
	}
	if st.stage == StageCRDs && st.event == "" {
		e.waitEstablished(ctx, todo, opts, r.start)
		e.resetMapper()
		r.reset = true
	}
	return nil
}

// mapStep resolves the resource of each item of a step, refreshing discovery
// once per run when a kind is unknown, and for a while when a CRD of this run
// defines the kind: the API server serves a new kind in discovery a moment
// after it reports the CRD established, longer when it is loaded.
func (r *applyRun) mapStep(ctx context.Context, st step) {
	if !r.e.mapItems(st.items, r.opts.Namespace) && !r.reset {
		// A CRD applied in this run, or by someone else since discovery
		// was cached, may serve the kind now.
		r.e.resetMapper()
		r.reset = true
		r.e.mapItems(st.items, r.opts.Namespace)
	}
	deadline := time.Now().Add(discoveryLag)
	for !r.opts.DryRun && r.unmappedOwnKinds(st) && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
		r.e.resetMapper()
		r.e.mapItems(st.items, r.opts.Namespace)
	}
	for _, it := range st.items {
		if !it.mapped {
			if r.opts.DryRun && r.crdKinds[it.ref.Group+"/"+it.ref.Kind] {
				it.change = Change{Object: it.ref, Stage: it.stage, Action: ActionCreate, Reason: "its CustomResourceDefinition is created by this apply"}
			}
			continue
		}
		r.desired[it.ref.key()] = true
	}
}

// discoveryLag bounds how long an apply waits for discovery to serve the
// kind of a CRD it applied and saw established.
const discoveryLag = 30 * time.Second

// unmappedOwnKinds reports whether an item of st is of a kind that a CRD of
// this apply defines and discovery does not serve yet.
func (r *applyRun) unmappedOwnKinds(st step) bool {
	for _, it := range st.items {
		if !it.mapped && r.crdKinds[it.ref.Group+"/"+it.ref.Kind] {
			return true
		}
	}
	return false
}

// decideIdle reports the hooks of other events: not applied, recorded as
// they were.
func (r *applyRun) decideIdle(st step) {
	for _, it := range st.items {
		// Not applied: a kind the cluster does not serve yet is no failure.
		it.change = Change{Object: it.ref, Stage: it.stage, Action: ActionUnchanged}
		it.change.Reason = fmt.Sprintf("%s hook: does not run at %s", strings.Join(it.hook.events, ","), r.opts.Operation)
		it.entry = r.old[it.ref.key()]
	}
}

// createAppNamespace creates the app's namespace before the first write of
// the inventory, which lives in it, and returns what is left to apply.
func (r *applyRun) createAppNamespace(ctx context.Context, st step, todo []*item) ([]*item, error) {
	if r.stored.exists {
		return todo, nil
	}
	if st.stage == StageNamespaces && st.event == "" {
		for i, it := range todo {
			if it.ref.Name == r.opts.Namespace {
				r.e.applyItem(ctx, it, r.opts)
				r.appNamespace = nil
				return slices.Delete(todo, i, i+1), nil
			}
		}
	}
	if r.appNamespace != nil && (st.stage < StageNamespaces || st.event != "") {
		if err := r.e.createNamespaceEarly(ctx, r.appNamespace, r.opts.Namespace); err != nil {
			return nil, err
		}
		r.appNamespace = nil
	}
	return todo, nil
}

// recordBeforeApply writes the inventory as the union of what it held and the
// objects about to be applied, so that a crash between here and the final
// write never orphans one.
//
// A first install whose caller keeps the record itself (IntentKept) writes
// nothing here.
func (r *applyRun) recordBeforeApply(ctx context.Context, todo []*item) error {
	if r.opts.IntentKept && r.opts.AssumeNew && !r.stored.exists && len(r.stored.byKey) == 0 {
		return nil
	}
	next := maps.Clone(r.stored.byKey)
	for _, it := range todo {
		if _, ok := next[it.ref.key()]; !ok {
			next[it.ref.key()] = entryFor(it.ref)
		}
	}
	return r.e.saveInventory(ctx, r.opts.App, r.stored, next)
}

// runHooks runs the hooks of a step; when they fail, the steps after it are
// skipped and the hooks run again on the next apply.
func (r *applyRun) runHooks(ctx context.Context, st step) {
	if r.opts.Wait && strings.HasPrefix(st.event, "post-") {
		// Post hooks run once what came before is healthy.
		if err := r.waitApplied(ctx); err != nil {
			r.aborted = "the objects before the " + st.event + " hooks did not become healthy: " + err.Error()
			r.skip(st)
			return
		}
	}
	if err := r.e.runHooks(ctx, st.items, st.event, r.opts, r.start); err != nil {
		r.aborted = err.Error()
		for _, it := range st.items {
			it.rerun = true
			if it.change.Action == ActionCreate || it.change.Action == ActionUpdate {
				if it.uid == "" {
					it.change = Change{Object: it.ref, Stage: it.stage, Action: ActionSkip, Reason: "not run: " + r.aborted}
				}
			}
		}
	}
}

// waitApplied waits for the health of the app's objects applied so far.
func (r *applyRun) waitApplied(ctx context.Context) error {
	var refs []ObjectRef
	for _, it := range r.items {
		if it.hook == nil && it.mapped && (it.change.Action == ActionCreate || it.change.Action == ActionUpdate || it.change.Action == ActionUnchanged) {
			refs = append(refs, it.ref)
		}
	}
	h, err := r.e.Wait(ctx, refs, WaitOptions{App: r.opts.App, Timeout: r.opts.Timeout, Events: r.opts.Events})
	r.health = h
	return err
}

// result lists every object's change, in the order of the set.
func (r *applyRun) result() *Result {
	res := &Result{App: r.opts.App, Namespace: r.opts.Namespace, DryRun: r.opts.DryRun, Operation: r.opts.Operation}
	for _, it := range r.items {
		res.Changes = append(res.Changes, it.change)
	}
	return res
}

// prune deletes (or plans the deletion of, or reports as kept) what the
// inventory holds and the set no longer does. A failed hook leaves the set
// half applied: nothing is pruned then.
func (r *applyRun) prune(ctx context.Context, res *Result) error {
	if r.aborted != "" {
		return nil
	}
	pruned, err := r.e.prune(ctx, r.stored.byKey, r.desired, r.opts)
	if err != nil {
		return err
	}
	res.Changes = append(res.Changes, pruned...)
	return nil
}

// recordInventory writes what the app holds now: the objects applied with
// their hashes, the old entries of those that failed or were not applied, and
// the kept ones.
func (r *applyRun) recordInventory(ctx context.Context, res *Result) error {
	if r.opts.DryRun {
		return nil
	}
	final := map[string]Entry{}
	for _, it := range r.items {
		k := it.ref.key()
		en, recorded := r.old[k]
		switch {
		case !it.mapped:
			if recorded {
				final[k] = en
			}
		case it.rerun:
			final[k] = entryFor(it.ref)
		case it.change.Action == ActionFail:
			if recorded {
				final[k] = en
			} else {
				final[k] = entryFor(it.ref)
			}
		case it.change.Action == ActionSkip || it.entry == (Entry{}):
			if recorded {
				final[k] = en
			}
		default:
			final[k] = it.entry
		}
	}
	for _, c := range res.Changes {
		if (c.Action == ActionKeep && !c.forget) || (c.Action == ActionFail && !r.desired[c.Object.key()]) {
			if en, ok := r.stored.byKey[c.Object.key()]; ok {
				final[c.Object.key()] = en
			}
		}
	}
	if r.aborted != "" {
		// Nothing was pruned: what the inventory held stays recorded.
		for k, en := range r.stored.byKey {
			if _, ok := final[k]; !ok {
				final[k] = en
			}
		}
	}
	if len(res.Failed()) == 0 {
		r.stored.completed(r.opts.Revision)
	}
	return r.e.saveInventory(ctx, r.opts.App, r.stored, final)
}

// statuslessKinds have no status: the API server keeps nothing that could
// make one unhealthy once it exists, so an object of theirs that the apply
// just wrote is ready (health.Compute judges it Current) and the wait need
// not list it again. Listing them was a third of the API server's requests
// in the controller's first sync of a thousand apps.
var statuslessKinds = map[schema.GroupKind]bool{
	{Kind: "ConfigMap"}:      true,
	{Kind: "Secret"}:         true,
	{Kind: "ServiceAccount"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "Role"}:               true,
	{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:        true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:        true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: true,
}

// finish waits for health (but not of statusless kinds) and for the final
// inventory's write (recorded), and reports.
func (r *applyRun) finish(ctx context.Context, res *Result, recorded <-chan error) (*Result, error) {
	var waitErr error
	if r.opts.Wait && !r.opts.DryRun && r.aborted == "" {
		var refs []ObjectRef
		ready := map[string]string{}
		for _, it := range r.items {
			// Hooks were waited for when they ran; some are gone since.
			if it.hook != nil || !it.mapped || it.change.Action == ActionFail || it.change.Action == ActionSkip {
				continue
			}
			if statuslessKinds[it.ref.GroupKind()] {
				ready[it.ref.key()] = string(health.Current)
				r.e.emit(r.opts.Events, Event{Type: EventReady, Object: it.ref, Elapsed: time.Since(r.start)})
				continue
			}
			refs = append(refs, it.ref)
		}
		if len(refs) > 0 {
			r.health, waitErr = r.e.Wait(ctx, refs, WaitOptions{App: r.opts.App, Timeout: r.opts.Timeout, Events: r.opts.Events})
		}
		if r.health == nil {
			r.health = map[string]string{}
		}
		maps.Copy(r.health, ready)
	}
	if err := <-recorded; err != nil {
		return nil, err
	}
	if !r.opts.DryRun {
		res.Inventory = &Inventory{App: r.opts.App, Entries: r.stored.sorted(), Revision: r.stored.revision}
	}
	for i := range res.Changes {
		if h, ok := r.health[res.Changes[i].Object.key()]; ok {
			res.Changes[i].Health = h
		}
	}
	res.Duration = time.Since(r.start)
	failed := res.Failed()
	switch {
	case waitErr != nil && len(failed) > 0:
		return res, errors.Join(waitErr, &ObjectsError{Failed: failed})
	case waitErr != nil:
		return res, waitErr
	case len(failed) > 0:
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
		items = append(items, &item{obj: obj, ref: ref, stage: StageOf(ref.GroupKind()), hook: hookOf(obj)})
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
	// Charts render "stringData: null" or "data: null" for an empty map; the
	// API server reads null as absent, and so does berth.
	for _, f := range []string{"stringData", "data"} {
		if v, ok := obj.Object[f]; ok && v == nil {
			delete(obj.Object, f)
		}
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
		if !ok && v != nil {
			return fmt.Errorf("%s: stringData.%s is not a string: quote it", RefOf(obj), k)
		}
		// A null value is an empty string, as the API server reads it.
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
	if !it.hashed() {
		return
	}
	h := it.hash
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

// applyItem applies one item, asking the API server for the object's
// metadata only: what the engine records of an apply (its UID and berth's
// managedFields entry) is there, and the metadata in protobuf costs the API
// server and the engine a fraction of the whole object in JSON, on every
// object of every apply.
func (e *Engine) applyItem(ctx context.Context, it *item, opts ApplyOptions) {
	body, err := it.obj.MarshalJSON()
	if err != nil {
		e.applied(it, nil, fmt.Errorf("encoding %s: %w", it.ref, err), opts)
		return
	}
	ri := e.meta.Resource(it.m.gvr)
	var out *metav1.PartialObjectMetadata
	force := it.force
	po := metav1.PatchOptions{FieldManager: e.opts.FieldManager, Force: &force}
	if it.m.namespaced {
		out, err = ri.Namespace(it.ref.Namespace).Patch(ctx, it.ref.Name, types.ApplyPatchType, body, po)
	} else {
		out, err = ri.Patch(ctx, it.ref.Name, types.ApplyPatchType, body, po)
	}
	if err != nil && isJob(it.ref) && isImmutable(err) {
		var full *unstructured.Unstructured
		if full, err = e.recreate(ctx, it, opts.Timeout, err); err == nil {
			out = &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{UID: full.GetUID(), ManagedFields: full.GetManagedFields()}}
		}
	}
	if err != nil {
		e.applied(it, nil, err, opts)
		return
	}
	e.applied(it, &out.ObjectMeta, nil, opts)
}

// applyItemOut applies one item and returns the whole object the API server
// returned, or nil when it failed: for a hook's run, whose state is read from
// it. A Job whose pod template the API server refuses to change (it is
// immutable) is a run, not a long-lived object: it is deleted and created
// again.
func (e *Engine) applyItemOut(ctx context.Context, it *item, opts ApplyOptions) *unstructured.Unstructured {
	ri := e.resource(it.m, it.ref.Namespace)
	out, err := ri.Apply(ctx, it.ref.Name, it.obj, metav1.ApplyOptions{FieldManager: e.opts.FieldManager, Force: it.force})
	if err != nil && isJob(it.ref) && isImmutable(err) {
		out, err = e.recreate(ctx, it, opts.Timeout, err)
	}
	if err != nil {
		e.applied(it, nil, err, opts)
		return nil
	}
	e.applied(it, &metav1.ObjectMeta{UID: out.GetUID(), ManagedFields: out.GetManagedFields()}, nil, opts)
	return out
}

// applied records the outcome of an item's apply: err, or the metadata the
// API server returned.
func (e *Engine) applied(it *item, out *metav1.ObjectMeta, err error, opts ApplyOptions) {
	if err != nil {
		it.change.Conflicts = conflicts(err)
		it.fail(applyError(it.ref, err, it.change.Conflicts))
		e.emit(opts.Events, Event{Type: EventFailed, Object: it.ref, Action: ActionFail, Message: it.change.Error})
		return
	}
	if it.change.Action == ActionCreate && it.hook == nil {
		for _, f := range out.ManagedFields {
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
	it.uid = string(out.UID)
	it.entry = entryFor(it.ref)
	it.entry.Desired = it.hash
	it.entry.Fields = fieldsHash(out.ManagedFields, e.opts.FieldManager)
	e.emit(opts.Events, Event{Type: EventApplied, Object: it.ref, Action: it.change.Action, Message: it.change.Reason})
}

// recreate deletes a Job and creates it again from the manifest.
// Only a Job of the app is: one of someone else keeps the API server's refusal.
func (e *Engine) recreate(ctx context.Context, it *item, timeout time.Duration, refusal error) (*unstructured.Unstructured, error) {
	ri := e.resource(it.m, it.ref.Namespace)
	live, err := e.meta.Resource(it.m.gvr).Namespace(it.ref.Namespace).Get(ctx, it.ref.Name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err == nil {
		if live.Labels[LabelApp] != it.obj.GetLabels()[LabelApp] {
			return nil, refusal
		}
		if err := e.deleteAndWait(ctx, it, string(live.UID), timeout); err != nil {
			return nil, fmt.Errorf("deleting the Job to create it again with its new pod template: %w", err)
		}
	}
	out, err := ri.Apply(ctx, it.ref.Name, it.obj, metav1.ApplyOptions{FieldManager: e.opts.FieldManager, Force: true})
	if err == nil && it.change.Reason != "" && !strings.Contains(it.change.Reason, "re-created") {
		it.change.Reason += "; re-created (a Job's pod template cannot change)"
	} else if err == nil {
		it.change.Reason = "re-created (a Job's pod template cannot change)"
	}
	return out, err
}

// isImmutable reports an API server refusal to change an immutable field.
func isImmutable(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Details != nil {
		for _, c := range st.Status().Details.Causes {
			if strings.Contains(c.Message, "field is immutable") {
				return true
			}
		}
	}
	return strings.Contains(err.Error(), "field is immutable")
}

// apiError carries the API server's reason, with value dumps cut, in place of
// the full message.
type apiError struct {
	msg string
	err error
}

func (a *apiError) Error() string { return a.msg }
func (a *apiError) Unwrap() error { return a.err }

// apiMessage is the API server's reason for err, without the dumps of Go
// values it puts in some ("Invalid value: core.PodTemplateSpec{...}").
func apiMessage(err error) string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return err.Error()
	}
	s := st.Status()
	if s.Details == nil || len(s.Details.Causes) == 0 {
		return s.Message
	}
	var parts []string
	for _, c := range s.Details.Causes {
		msg := c.Message
		if rest, ok := strings.CutPrefix(msg, "Invalid value: "); ok {
			if i := strings.LastIndex(rest, ": "); i > 0 && (i > 60 || strings.ContainsAny(rest[:i], "{")) {
				msg = rest[i+2:]
			}
		}
		if c.Field != "" {
			msg = c.Field + ": " + msg
		}
		parts = append(parts, msg)
	}
	what := s.Details.Name
	if s.Details.Kind != "" {
		kind := s.Details.Kind
		if s.Details.Group != "" {
			kind += "." + s.Details.Group
		}
		what = kind + " " + strconv.Quote(s.Details.Name)
	}
	return fmt.Sprintf("%s is %s: %s", what, strings.ToLower(string(s.Reason)), strings.Join(parts, "; "))
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
	if apierrors.IsInvalid(err) && isImmutable(err) {
		return fmt.Errorf("%s: rejected by the API server: %w", ref, &apiError{apiMessage(err), err})
	}
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return fmt.Errorf("%s: rejected by the API server; fix the manifest: %w", ref, &apiError{apiMessage(err), err})
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%s: forbidden; the API server or an admission webhook refused it: %w", ref, err)
	}
	return fmt.Errorf("%s: apply failed: %w", ref, err)
}
