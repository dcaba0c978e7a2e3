package apply

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"berth.dev/berth/internal/health"
)

// healthWatch serves Wait from shared watches instead of polling: one
// informer per resource, over every object labelled as an app's (LabelApp),
// started the first time an app waits for that resource and kept for the
// engine's life. A process that waits for many apps at once (the controller)
// then costs the API server one watch per resource instead of one LIST per
// app and resource every interval, and a waiter wakes when an object changes
// instead of at the next tick.
type healthWatch struct {
	dyn  dynamic.Interface
	kube kubernetes.Interface
	stop <-chan struct{}

	mu        sync.Mutex
	resources map[schema.GroupVersionResource]*watchedResource
}

// watchedResource is the informer of one resource and the waiters to wake
// when an object they wait for changes, by store key.
type watchedResource struct {
	informer cache.SharedIndexInformer
	synced   chan struct{}

	mu   sync.Mutex
	subs map[string]map[chan struct{}]bool
}

func (w *watchedResource) notify(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs[key] {
		select {
		case ch <- struct{}{}:
		default: // already woken
		}
	}
}

// subscribe wakes ch when one of keys changes, until the returned function
// is called.
func (w *watchedResource) subscribe(keys []string, ch chan struct{}) func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		if w.subs[k] == nil {
			w.subs[k] = map[chan struct{}]bool{}
		}
		w.subs[k][ch] = true
	}
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, k := range keys {
			delete(w.subs[k], ch)
			if len(w.subs[k]) == 0 {
				delete(w.subs, k)
			}
		}
	}
}

// resource returns the started informer of gvr, waiting for its first list.
func (h *healthWatch) resource(ctx context.Context, gvr schema.GroupVersionResource) (*watchedResource, error) {
	h.mu.Lock()
	w, ok := h.resources[gvr]
	if !ok {
		inf := h.informer(gvr)
		// Health reads spec, status and generation; managedFields are most
		// of an object's metadata.
		_ = inf.SetTransform(func(o any) (any, error) {
			if m, err := meta.Accessor(o); err == nil {
				m.SetManagedFields(nil)
			}
			return o, nil
		})
		w = &watchedResource{informer: inf, synced: make(chan struct{}), subs: map[string]map[chan struct{}]bool{}}
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    w.notify,
			UpdateFunc: func(_, obj any) { w.notify(obj) },
			DeleteFunc: w.notify,
		})
		go inf.Run(h.stop)
		go func() {
			if cache.WaitForCacheSync(h.stop, inf.HasSynced) {
				close(w.synced)
			}
		}()
		h.resources[gvr] = w
	}
	h.mu.Unlock()
	select {
	case <-w.synced:
		return w, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("watching %s: %w", gvr.Resource, ctx.Err())
	}
}

// informer returns an informer of gvr over the objects labelled as an app's:
// a typed one, in protobuf, for the kinds client-go knows (the API server
// then sends the encoding it already made for kube-controller-manager's
// watches), a dynamic one in JSON for the others.
func (h *healthWatch) informer(gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	tweak := func(lo *metav1.ListOptions) { lo.LabelSelector = LabelApp }
	if h.kube != nil {
		f := informers.NewSharedInformerFactoryWithOptions(h.kube, 0, informers.WithTweakListOptions(tweak))
		if gi, err := f.ForResource(gvr); err == nil {
			return gi.Informer()
		}
	}
	return dynamicinformer.NewFilteredDynamicInformer(h.dyn, gvr, "", 0, cache.Indexers{}, tweak).Informer()
}

// watchedObject returns an object of a health watch's store as health
// reads it: unstructured, with its apiVersion and kind.
func watchedObject(o any, gvk schema.GroupVersionKind) (*unstructured.Unstructured, error) {
	if u, ok := o.(*unstructured.Unstructured); ok {
		return u, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// WatchHealth makes Wait read objects from shared watches rather than
// polling, for the rest of the engine's life (until stop is closed). For a
// long-running process that waits for many apps; a command that waits once
// is better served by polling.
func (e *Engine) WatchHealth(stop <-chan struct{}) {
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	if e.watch == nil {
		e.watch = &healthWatch{dyn: e.dyn, kube: e.kube, stop: stop, resources: map[schema.GroupVersionResource]*watchedResource{}}
	}
}

// waitWatched is Wait over the shared watches: it evaluates refs from the
// informers' stores whenever one of them changes (and at least every four
// intervals, for the diagnoses of workloads).
func (e *Engine) waitWatched(ctx context.Context, refs []ObjectRef, opts WaitOptions, w *waitState) error {
	type watched struct {
		res  *watchedResource
		refs []ObjectRef
		keys []string
	}
	var all []*watched
	byGVR := map[schema.GroupVersionResource]*watched{}
	for _, r := range refs {
		m, err := e.mappingFor(r.GroupVersionKind())
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", r, err)
		}
		wr, ok := byGVR[m.gvr]
		if !ok {
			res, err := e.watch.resource(ctx, m.gvr)
			if err != nil {
				return err
			}
			wr = &watched{res: res}
			byGVR[m.gvr] = wr
			all = append(all, wr)
		}
		key := r.Name
		if m.namespaced {
			key = r.Namespace + "/" + r.Name
		}
		wr.refs = append(wr.refs, r)
		wr.keys = append(wr.keys, key)
	}
	// Subscribed before the first read, so that no change is missed.
	wake := make(chan struct{}, 1)
	for _, wr := range all {
		defer wr.res.subscribe(wr.keys, wake)()
	}
	tick := time.NewTicker(opts.Interval * 4)
	defer tick.Stop()
	for {
		for _, wr := range all {
			store := wr.res.informer.GetStore()
			for i, r := range wr.refs {
				res := health.Result{Status: health.InProgress, Message: "not found"}
				if o, ok, _ := store.GetByKey(wr.keys[i]); ok {
					obj, err := watchedObject(o, r.GroupVersionKind())
					if err != nil {
						return fmt.Errorf("reading %s from the health watch: %w", r, err)
					}
					if opts.App == "" || obj.GetLabels()[LabelApp] == opts.App {
						res = health.Compute(obj)
						res = w.why.explain(ctx, e, r.key(), obj, res)
					}
				}
				w.observe(e, r, res, opts)
			}
		}
		if done, failed := w.outcome(len(refs)); done || failed {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-tick.C:
		}
	}
}
