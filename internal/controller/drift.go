package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"berth.dev/berth/internal/apply"
)

// annotationFingerprint is where the watch cache keeps the fingerprint of
// berth's managedFields entry instead of the managedFields themselves, which
// are most of an object's metadata.
const annotationFingerprint = "berth.dev/internal-fields-fingerprint"

// tracked is an object berth applied and repairs.
type tracked struct {
	workspace string // namespace/name of the Workspace
	app       string
	namespace string // of the app's inventory
	// desired is the object as the workspace holds it, shared with the
	// snapshot and never changed (10,000 apps' copies would be 100 MB);
	// objNamespace is the namespace it lives in ("" when cluster-scoped).
	desired      *unstructured.Unstructured
	objNamespace string
	// fields is the fingerprint recorded after the last apply; a live object
	// with another one was changed by someone else.
	fields string
	// seen is when the drift was first noticed, for the latency metric.
	seen time.Time
}

// driftRepairer watches the objects berth applied, metadata only, and
// re-applies one of them when it is deleted or when someone else changes a field
// berth owns.
type driftRepairer struct {
	engine   *apply.Engine
	md       metadata.Interface
	mapper   meta.RESTMapper
	log      logr.Logger
	debounce time.Duration
	metrics  *metrics
	// repaired, when set, is called after each repair (tests, the benchmark).
	repaired func(key string, err error)

	mu        sync.Mutex
	objects   map[string]*tracked // by objectKey
	apps      map[string][]string // workspace/app -> object keys
	busy      map[string]bool     // workspace/app being applied by the reconciler
	suspended map[string]bool     // workspace/app (or workspace/ for all) left alone
	informers map[schema.GroupVersionResource]context.CancelFunc
	ctx       context.Context // set by Start
	queue     workqueue.TypedRateLimitingInterface[string]
}

func newDriftRepairer(engine *apply.Engine, md metadata.Interface, mapper meta.RESTMapper, log logr.Logger, m *metrics) *driftRepairer {
	return &driftRepairer{
		engine: engine, md: md, mapper: mapper, log: log, metrics: m,
		debounce:  50 * time.Millisecond,
		objects:   map[string]*tracked{},
		apps:      map[string][]string{},
		busy:      map[string]bool{},
		suspended: map[string]bool{},
		informers: map[schema.GroupVersionResource]context.CancelFunc{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, time.Minute),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "drift"}),
	}
}

func objectKey(gk schema.GroupKind, namespace, name string) string {
	return gk.Group + "/" + gk.Kind + "/" + namespace + "/" + name
}

// NeedLeaderElection makes only the leader repair drift.
func (d *driftRepairer) NeedLeaderElection() bool { return true }

// Start runs the repair workers until ctx ends.
func (d *driftRepairer) Start(ctx context.Context) error {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	d.queue.ShutDown()
	wg.Wait()
	return nil
}

// begin marks an app as being applied: drift events for its objects wait.
func (d *driftRepairer) begin(ws, app string) {
	d.mu.Lock()
	d.busy[ws+"/"+app] = true
	d.mu.Unlock()
}

// setSuspended records whether an app (or with app "", the whole workspace) is
// left alone.
func (d *driftRepairer) setSuspended(ws, app string, suspended bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if suspended {
		d.suspended[ws+"/"+app] = true
	} else {
		delete(d.suspended, ws+"/"+app)
	}
}

// track replaces the tracked objects of an app after an apply, with the
// fingerprints its inventory recorded, and watches their resources.
func (d *driftRepairer) track(ctx context.Context, ws, app, namespace string, objs []*unstructured.Unstructured, inv *apply.Inventory) error {
	recorded := map[string]apply.Entry{}
	for _, en := range inv.Entries {
		recorded[objectKey(schema.GroupKind{Group: en.Group, Kind: en.Kind}, en.Namespace, en.Name)] = en
	}
	var keys []string
	next := map[string]*tracked{}
	gvrs := map[schema.GroupVersionResource]bool{}
	for _, o := range objs {
		if apply.IsHook(o) {
			continue // a hook runs at its events, and may delete itself
		}
		gvk := o.GroupVersionKind()
		m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			continue // the apply reported it
		}
		ns := o.GetNamespace()
		if m.Scope.Name() == meta.RESTScopeNameNamespace && ns == "" {
			ns = namespace
		}
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			ns = ""
		}
		k := objectKey(gvk.GroupKind(), ns, o.GetName())
		en, ok := recorded[k]
		if !ok || en.Desired == "" {
			continue // not applied (failed): the reconciler retries it
		}
		next[k] = &tracked{workspace: ws, app: app, namespace: namespace, desired: o, objNamespace: ns, fields: en.Fields}
		keys = append(keys, k)
		gvrs[m.Resource] = true
	}
	d.mu.Lock()
	appKey := ws + "/" + app
	for _, k := range d.apps[appKey] {
		delete(d.objects, k)
	}
	for k, t := range next {
		d.objects[k] = t
	}
	d.apps[appKey] = keys
	delete(d.busy, appKey)
	d.mu.Unlock()
	for gvr := range gvrs {
		if err := d.watch(ctx, gvr); err != nil {
			return err
		}
	}
	return nil
}

// forget stops tracking an app (deleted, or failed to apply).
func (d *driftRepairer) forget(ws, app string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	appKey := ws + "/" + app
	for _, k := range d.apps[appKey] {
		delete(d.objects, k)
	}
	delete(d.apps, appKey)
	delete(d.busy, appKey)
}

// watch starts a metadata-only informer of gvr over the objects berth labels,
// once per resource for the life of the controller.
func (d *driftRepairer) watch(ctx context.Context, gvr schema.GroupVersionResource) error {
	d.mu.Lock()
	if _, ok := d.informers[gvr]; ok {
		d.mu.Unlock()
		return nil
	}
	base := d.ctx
	if base == nil {
		base = ctx
	}
	ictx, cancel := context.WithCancel(base)
	d.informers[gvr] = cancel
	d.mu.Unlock()

	gk, err := d.mapper.KindFor(gvr)
	if err != nil {
		return fmt.Errorf("watching %s: %w", gvr, err)
	}
	inf := metadatainformer.NewFilteredMetadataInformer(d.md, gvr, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = apply.LabelApp })
	if err := inf.Informer().SetTransform(d.slim); err != nil {
		return err
	}
	_, err = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { d.observe(gk.GroupKind(), o, false) },
		UpdateFunc: func(_, o any) { d.observe(gk.GroupKind(), o, false) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			d.observe(gk.GroupKind(), o, true)
		},
	})
	if err != nil {
		return err
	}
	go inf.Informer().RunWithContext(ictx)
	if !cache.WaitForCacheSync(ictx.Done(), inf.Informer().HasSynced) {
		return fmt.Errorf("watching %s: cache did not sync", gvr)
	}
	return nil
}

// slim keeps in the watch cache only what drift detection reads.
func (d *driftRepairer) slim(o any) (any, error) {
	m, ok := o.(*metav1.PartialObjectMetadata)
	if !ok {
		return o, nil
	}
	fp := d.engine.FieldsFingerprint(m.ManagedFields)
	m.ManagedFields = nil
	m.Annotations = map[string]string{annotationFingerprint: fp}
	m.OwnerReferences = nil
	m.Finalizers = nil
	return m, nil
}

// observe compares a watched object with what berth recorded for it.
func (d *driftRepairer) observe(gk schema.GroupKind, o any, deleted bool) {
	m, ok := o.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	k := objectKey(gk, m.Namespace, m.Name)
	d.mu.Lock()
	t, ok := d.objects[k]
	drifted := ok && (deleted || m.DeletionTimestamp != nil || m.Annotations[annotationFingerprint] != t.fields)
	if drifted && t.seen.IsZero() {
		t.seen = time.Now()
	}
	d.mu.Unlock()
	if drifted {
		d.queue.AddAfter(k, d.debounce)
		d.metrics.driftQueueDepth.Set(float64(d.queue.Len()))
	}
}

func (d *driftRepairer) next(ctx context.Context) bool {
	k, quit := d.queue.Get()
	if quit {
		return false
	}
	defer d.queue.Done(k)
	d.metrics.driftQueueDepth.Set(float64(d.queue.Len()))
	retry, err := d.repair(ctx, k)
	switch {
	case err != nil:
		d.log.Error(err, "drift repair failed; retrying", "object", k)
		d.queue.AddRateLimited(k)
	case retry > 0:
		d.queue.AddAfter(k, retry)
	default:
		d.queue.Forget(k)
	}
	if d.repaired != nil && retry == 0 {
		d.repaired(k, err)
	}
	return true
}

// repair re-applies one drifted object, after checking that it still drifted.
func (d *driftRepairer) repair(ctx context.Context, k string) (time.Duration, error) {
	d.mu.Lock()
	t, ok := d.objects[k]
	if !ok || d.suspended[t.workspace+"/"+t.app] || d.suspended[t.workspace+"/"] {
		d.mu.Unlock()
		return 0, nil
	}
	if d.busy[t.workspace+"/"+t.app] {
		d.mu.Unlock()
		return 200 * time.Millisecond, nil // the reconciler is applying it anyway
	}
	desired, app, ns, fields, seen := t.desired, t.app, t.namespace, t.fields, t.seen
	if desired.GetNamespace() != t.objNamespace {
		desired = desired.DeepCopy()
		desired.SetNamespace(t.objNamespace)
	}
	d.mu.Unlock()

	gvk := desired.GroupVersionKind()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return 0, err
	}
	var live *metav1.PartialObjectMetadata
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		live, err = d.md.Resource(m.Resource).Namespace(desired.GetNamespace()).Get(ctx, desired.GetName(), metav1.GetOptions{})
	} else {
		live, err = d.md.Resource(m.Resource).Get(ctx, desired.GetName(), metav1.GetOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	}
	if err == nil && live.DeletionTimestamp == nil && live.Labels[apply.LabelApp] == app && d.engine.FieldsFingerprint(live.ManagedFields) == fields {
		d.clearSeen(k)
		return 0, nil // repaired already, or the event was stale
	}
	if err == nil && live.DeletionTimestamp != nil {
		return 200 * time.Millisecond, nil // recreate it once it is gone
	}
	res, err := d.engine.ApplyObject(ctx, desired, apply.ObjectOptions{App: app, Namespace: ns})
	if err != nil {
		d.metrics.driftRepairs.WithLabelValues("failed").Inc()
		return 0, fmt.Errorf("repairing %s of app %s: %w", res.Change.Object, app, err)
	}
	d.mu.Lock()
	if cur, ok := d.objects[k]; ok && cur == t {
		t.fields = res.Entry.Fields
		t.seen = time.Time{}
	}
	d.mu.Unlock()
	d.metrics.driftRepairs.WithLabelValues("repaired").Inc()
	if !seen.IsZero() {
		d.metrics.driftRepairSeconds.Observe(time.Since(seen).Seconds())
	}
	d.log.Info("repaired drift", "app", app, "object", res.Change.Object.String(), "reason", driftWhat(live, d.engine.FieldManager()))
	return 0, nil
}

func (d *driftRepairer) clearSeen(k string) {
	d.mu.Lock()
	if t, ok := d.objects[k]; ok {
		t.seen = time.Time{}
	}
	d.mu.Unlock()
}

func driftWhat(live *metav1.PartialObjectMetadata, manager string) string {
	if live == nil {
		return "deleted"
	}
	var others []string
	for _, f := range live.ManagedFields {
		if f.Manager != manager && !strings.Contains(strings.Join(others, ","), f.Manager) {
			others = append(others, f.Manager)
		}
	}
	return "fields changed (managers: " + strings.Join(others, ", ") + ")"
}
