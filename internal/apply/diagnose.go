package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/health"
)

var (
	podsGVR   = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	claimsGVR = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	eventsGVR = schema.GroupVersionResource{Version: "v1", Resource: "events"}
)

// diagnoses remembers, per object, the last explanation of a workload that is
// not ready, so that pods are read at most every so often while the workload
// itself is read every round.
type diagnoses struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]diagnosis
}

type diagnosis struct {
	at    time.Time
	pod   health.Result
	found bool
	// deferred holds the workload seen once and not diagnosed yet: a wait
	// that ends first diagnoses it (final).
	deferred *unstructured.Unstructured
}

func diagnoseEvery(interval time.Duration) time.Duration {
	return max(interval, time.Second)
}

// explain returns res, with the reason the workload's pods give when it is a
// workload that is not ready.
func (d *diagnoses) explain(ctx context.Context, e *Engine, key string, obj *unstructured.Unstructured, res health.Result) health.Result {
	if res.Status != health.InProgress || !health.IsWorkload(obj) {
		d.mu.Lock()
		delete(d.last, key)
		d.mu.Unlock()
		return res
	}
	d.mu.Lock()
	prev, seen := d.last[key]
	d.mu.Unlock()
	switch {
	case !seen:
		// Not at first sight: most workloads become ready within a
		// second, and reading their pods (a LIST each) would double the
		// requests of a deploy of many apps.
		prev = diagnosis{at: time.Now(), deferred: obj}
		d.mu.Lock()
		d.last[key] = prev
		d.mu.Unlock()
	case time.Since(prev.at) >= d.every:
		pod, found := e.diagnose(ctx, obj)
		prev = diagnosis{at: time.Now(), pod: pod, found: found}
		d.mu.Lock()
		d.last[key] = prev
		d.mu.Unlock()
	}
	if !prev.found {
		return res
	}
	return health.Explain(res, prev.pod)
}

// final diagnoses the workloads a wait saw once and ended before reading
// their pods, and returns what their pods say by key: a wait that ends not
// ready always says why when the pods do.
func (d *diagnoses) final(ctx context.Context, e *Engine) map[string]health.Result {
	d.mu.Lock()
	todo := map[string]diagnosis{}
	for k, dg := range d.last {
		if dg.deferred != nil {
			todo[k] = dg
		}
	}
	d.mu.Unlock()
	out := map[string]health.Result{}
	for k, dg := range todo {
		if pod, found := e.diagnose(ctx, dg.deferred); found {
			out[k] = pod
		}
	}
	return out
}

// diagnose reads the pods of a workload (by its selector) and says why the
// first of them in name order with a problem is not ready: the pod's own
// reason (see health.PodProblem), or, for a pod waiting on a claim that is not
// bound, the claim's latest warning Event (such as ProvisioningFailed). A failed
// pod is preferred to one still in progress. Reading is best effort: a read
// that fails, for want of permission for instance, explains nothing.
func (e *Engine) diagnose(ctx context.Context, obj *unstructured.Unstructured) (health.Result, bool) {
	sel, found, _ := unstructured.NestedMap(obj.Object, "spec", "selector")
	if !found {
		return health.Result{}, false
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(sel, &ls); err != nil {
		return health.Result{}, false
	}
	selector, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil || selector.Empty() {
		return health.Result{}, false
	}
	ns := obj.GetNamespace()
	pods, err := e.dyn.Resource(podsGVR).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return health.Result{}, false
	}
	items := pods.Items
	slices.SortFunc(items, func(a, b unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	var best health.Result
	var ok bool
	for i := range items {
		pod := &items[i]
		r, found := e.claimProblem(ctx, pod)
		if !found {
			r, found = health.PodProblem(pod)
		}
		if !found {
			continue
		}
		if !ok || (r.Status == health.Failed && best.Status != health.Failed) {
			best, ok = r, true
		}
		if best.Status == health.Failed {
			break
		}
	}
	return best, ok
}

// claimProblem names a claim of a pending pod that is not bound, with the
// claim's latest warning Event: the provisioner's reason, such as
// `ProvisioningFailed: storageclass.storage.k8s.io "nope" not found`.
func (e *Engine) claimProblem(ctx context.Context, pod *unstructured.Unstructured) (health.Result, bool) {
	if phase, _, _ := unstructured.NestedString(pod.Object, "status", "phase"); phase != "Pending" {
		return health.Result{}, false
	}
	volumes, _, _ := unstructured.NestedSlice(pod.Object, "spec", "volumes")
	ns := pod.GetNamespace()
	for _, v := range volumes {
		vm, _ := v.(map[string]any)
		claim, _, _ := unstructured.NestedString(vm, "persistentVolumeClaim", "claimName")
		if claim == "" {
			continue
		}
		pvc, err := e.dyn.Resource(claimsGVR).Namespace(ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			continue
		}
		if phase, _, _ := unstructured.NestedString(pvc.Object, "status", "phase"); phase == "Bound" {
			continue
		}
		msg := fmt.Sprintf("pod %s: claim %s is not bound", pod.GetName(), claim)
		if ev := e.latestWarning(ctx, ns, "PersistentVolumeClaim", claim); ev != "" {
			msg += ": " + ev
		}
		return health.Result{Status: health.InProgress, Message: msg}, true
	}
	return health.Result{}, false
}

// latestWarning returns "Reason: message" of the newest Warning Event about an
// object, or "".
func (e *Engine) latestWarning(ctx context.Context, ns, kind, name string) string {
	fs := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name, "type": "Warning"}.AsSelector().String()
	list, err := e.dyn.Resource(eventsGVR).Namespace(ns).List(ctx, metav1.ListOptions{FieldSelector: fs})
	if err != nil {
		return ""
	}
	var out string
	var newest string
	for _, ev := range list.Items {
		at, _, _ := unstructured.NestedString(ev.Object, "lastTimestamp")
		if at == "" {
			at, _, _ = unstructured.NestedString(ev.Object, "eventTime")
		}
		if out != "" && at < newest {
			continue
		}
		reason, _, _ := unstructured.NestedString(ev.Object, "reason")
		message, _, _ := unstructured.NestedString(ev.Object, "message")
		out, newest = reason+": "+message, at
	}
	return out
}
