package apply

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"berth.dev/berth/internal/health"
)

// WaitOptions say how to wait for objects to become healthy.
type WaitOptions struct {
	// App, when set, narrows the reads to objects labelled as the app's.
	App string
	// Timeout bounds the wait; 5 minutes when zero.
	Timeout time.Duration
	// Interval between reads; 250ms when zero.
	Interval time.Duration
	// Events receives EventWaiting when an object's state changes and
	// EventReady when it becomes healthy.
	Events func(Event)
}

// NotReadyError lists the objects that were not healthy when a wait ended.
type NotReadyError struct {
	Timeout  time.Duration
	Failed   bool // some object failed for good; the wait ended early
	NotReady map[string]health.Result
}

func (e *NotReadyError) Error() string {
	var b strings.Builder
	if e.Failed {
		b.WriteString("objects failed:")
	} else {
		fmt.Fprintf(&b, "%d object(s) not ready after %s:", len(e.NotReady), e.Timeout)
	}
	for _, k := range slices.Sorted(maps.Keys(e.NotReady)) {
		r := e.NotReady[k]
		fmt.Fprintf(&b, "\n  %s: %s (%s)", k, r.Message, r.Status)
	}
	return b.String()
}

// Wait waits until every object in refs is healthy (health.Current). It reads
// them with one LIST per resource and namespace per round, or, once
// WatchHealth was called and the objects are an app's (opts.App), from shared
// watches. A workload that is not ready is explained by its pods (see
// diagnose), read at most once a second. It returns the last health message of
// each object by ref key; on timeout or when an object fails, a
// *NotReadyError.
func (e *Engine) Wait(ctx context.Context, refs []ObjectRef, opts WaitOptions) (map[string]string, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	w := &waitState{start: time.Now(), last: map[string]health.Result{}, why: &diagnoses{every: diagnoseEvery(opts.Interval), last: map[string]diagnosis{}}}
	names := map[string]string{} // key -> display name
	for _, r := range refs {
		names[r.key()] = r.String()
	}
	tctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	e.watchMu.Lock()
	watched := e.watch != nil && opts.App != ""
	e.watchMu.Unlock()
	var err error
	if watched {
		err = e.waitWatched(tctx, refs, opts, w)
	} else {
		err = e.waitPolling(tctx, refs, opts, w)
	}
	out := map[string]string{}
	notReady := map[string]health.Result{}
	var explained map[string]health.Result
	if err != nil && ctx.Err() == nil {
		explained = w.why.final(ctx, e)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, pod := range explained {
		if last, ok := w.last[k]; ok && last.Status == health.InProgress {
			w.last[k] = health.Explain(last, pod)
		}
	}
	for k, r := range w.last {
		out[k] = string(r.Status)
		if r.Message != "" {
			out[k] += ": " + r.Message
		}
		if r.Status != health.Current {
			notReady[names[k]] = r
		}
	}
	if w.failed {
		return out, &NotReadyError{Failed: true, NotReady: notReady}
	}
	if err != nil {
		if ctx.Err() == nil && tctx.Err() != nil {
			return out, &NotReadyError{Timeout: opts.Timeout, NotReady: notReady}
		}
		return out, fmt.Errorf("waiting for objects to be ready: %w", err)
	}
	return out, nil
}

// waitState is what a wait has seen of its objects.
type waitState struct {
	start time.Time
	why   *diagnoses

	mu     sync.Mutex
	last   map[string]health.Result
	failed bool
}

// observe records the health of r, reporting a change as an event.
func (w *waitState) observe(e *Engine, r ObjectRef, res health.Result, opts WaitOptions) {
	w.mu.Lock()
	prev, seen := w.last[r.key()]
	w.last[r.key()] = res
	w.mu.Unlock()
	if !seen || prev != res {
		typ := EventWaiting
		if res.Status == health.Current {
			typ = EventReady
		}
		e.emit(opts.Events, Event{Type: typ, Object: r, Message: res.Message, Elapsed: time.Since(w.start)})
	}
}

// outcome says whether all n objects are healthy, or one failed for good.
func (w *waitState) outcome(n int) (done, failed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	done = true
	for _, r := range w.last {
		if r.Status == health.Failed {
			w.failed = true
			return false, true
		}
		if r.Status != health.Current {
			done = false
		}
	}
	return done && len(w.last) == n, false
}

// waitPolling is Wait by LISTs every interval.
func (e *Engine) waitPolling(ctx context.Context, refs []ObjectRef, opts WaitOptions, w *waitState) error {
	groups := map[listKey][]ObjectRef{}
	for _, r := range refs {
		m, err := e.mappingFor(r.GroupVersionKind())
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", r, err)
		}
		groups[listKey{m, r.Namespace}] = append(groups[listKey{m, r.Namespace}], r)
	}
	keys := slices.Collect(maps.Keys(groups))
	return wait.PollUntilContextCancel(ctx, opts.Interval, true, func(ctx context.Context) (bool, error) {
		var mu sync.Mutex
		var firstErr error
		parallel(ctx, e.opts.Workers, len(keys), func(ctx context.Context, i int) {
			k := keys[i]
			lo := metav1.ListOptions{}
			if opts.App != "" {
				lo.LabelSelector = LabelApp + "=" + opts.App
			}
			list, err := e.resource(k.m, k.namespace).List(ctx, lo)
			if err != nil {
				mu.Lock()
				if firstErr == nil && ctx.Err() == nil {
					firstErr = fmt.Errorf("reading %s: %w", k.m.gvr.Resource, err)
				}
				mu.Unlock()
				return
			}
			byName := map[string]*unstructured.Unstructured{}
			for j := range list.Items {
				byName[list.Items[j].GetName()] = &list.Items[j]
			}
			for _, r := range groups[k] {
				res := health.Result{Status: health.InProgress, Message: "not found"}
				if obj, ok := byName[r.Name]; ok {
					res = health.Compute(obj)
					res = w.why.explain(ctx, e, r.key(), obj, res)
				}
				w.observe(e, r, res, opts)
			}
		})
		if firstErr != nil {
			return false, firstErr
		}
		done, failed := w.outcome(len(refs))
		return done || failed, nil
	})
}

// waitEstablished waits until the CRDs just applied are established, failing
// those that are not, so that custom resources of the same set can follow.
func (e *Engine) waitEstablished(ctx context.Context, crds []*item, opts ApplyOptions, start time.Time) {
	var refs []ObjectRef
	for _, it := range crds {
		if it.change.Action != ActionFail {
			refs = append(refs, it.ref)
		}
	}
	if len(refs) == 0 {
		return
	}
	e.emit(opts.Events, Event{Type: EventProgress, Message: fmt.Sprintf("waiting for %d CustomResourceDefinition(s) to be established", len(refs)), Elapsed: time.Since(start)})
	timeout := opts.Timeout
	if timeout > time.Minute {
		timeout = time.Minute
	}
	err := e.watchReady(ctx, refs, WaitOptions{App: opts.App, Timeout: timeout})
	if err == nil {
		return
	}
	sort.Slice(crds, func(i, j int) bool { return crds[i].ref.Name < crds[j].ref.Name })
	nr, _ := err.(*NotReadyError)
	for _, it := range crds {
		if it.change.Action == ActionFail {
			continue
		}
		if nr != nil {
			if _, bad := nr.NotReady[it.ref.String()]; !bad {
				continue
			}
		}
		it.fail(fmt.Errorf("%s: not established: %w", it.ref, err))
	}
}

// watchReady waits, as Wait does, until every object in refs (all of one
// cluster-scoped kind) is healthy, but with one LIST and then a WATCH instead
// of a LIST per round: CRDs hold megabytes of schema (those of
// kube-prometheus-stack about 8 MB), and reading them all every 100 ms while
// the API server establishes them kept a loaded server from doing so.
func (e *Engine) watchReady(ctx context.Context, refs []ObjectRef, opts WaitOptions) error {
	m, err := e.mappingFor(refs[0].GroupVersionKind())
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", refs[0], err)
	}
	ri := e.resource(m, "")
	tctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := time.Now()
	want := map[string]ObjectRef{}
	last := map[string]health.Result{}
	for _, r := range refs {
		want[r.Name] = r
		last[r.Name] = health.Result{Status: health.InProgress, Message: "not found"}
	}
	update := func(u *unstructured.Unstructured) {
		r, ok := want[u.GetName()]
		if !ok {
			return
		}
		res := health.Compute(u)
		if prev := last[r.Name]; prev != res {
			typ := EventWaiting
			if res.Status == health.Current {
				typ = EventReady
			}
			e.emit(opts.Events, Event{Type: typ, Object: r, Message: res.Message, Elapsed: time.Since(start)})
		}
		last[r.Name] = res
	}
	state := func() (done, failed bool) {
		done = true
		for _, r := range last {
			if r.Status == health.Failed {
				return true, true
			}
			if r.Status != health.Current {
				done = false
			}
		}
		return done, false
	}
	lo := metav1.ListOptions{}
	if opts.App != "" {
		lo.LabelSelector = LabelApp + "=" + opts.App
	}
	done, failed := false, false
	for !done && tctx.Err() == nil {
		list, err := ri.List(tctx, lo)
		if err != nil {
			if tctx.Err() != nil {
				break
			}
			return fmt.Errorf("reading %s: %w", m.gvr.Resource, err)
		}
		for i := range list.Items {
			update(&list.Items[i])
		}
		if done, failed = state(); done {
			break
		}
		wo := lo
		wo.ResourceVersion = list.GetResourceVersion()
		w, err := ri.Watch(tctx, wo)
		if err != nil {
			if tctx.Err() != nil {
				break
			}
			return fmt.Errorf("watching %s: %w", m.gvr.Resource, err)
		}
		for ev := range w.ResultChan() {
			if u, ok := ev.Object.(*unstructured.Unstructured); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
				update(u)
			}
			if done, failed = state(); done || ev.Type == watch.Error {
				break
			}
		}
		// Done, timed out, or the server ended the watch: list again.
		w.Stop()
	}
	notReady := map[string]health.Result{}
	for name, r := range last {
		if r.Status != health.Current {
			notReady[want[name].String()] = r
		}
	}
	switch {
	case failed:
		return &NotReadyError{Failed: true, NotReady: notReady}
	case len(notReady) > 0:
		return &NotReadyError{Timeout: opts.Timeout, NotReady: notReady}
	}
	return nil
}
