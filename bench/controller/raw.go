package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

func rawNamespace(prefix string, i int) string { return fmt.Sprintf("%s-%02d", prefix, i) }

// rawCeiling is the fair ceiling of the first sync: a plain client-go loop
// that server-side applies the same apps' objects (into namespaces of its
// own), `parallel` requests at a time with no client rate limit, and then
// waits until every Deployment is Available. No inventory, no phases, no
// per-app health gate: what the API server and kube-controller-manager allow.
func rawCeiling(ctx context.Context, dyn dynamic.Interface, cs kubernetes.Interface, c config, parallel int, prefix string) (time.Duration, error) {
	for i := range c.namespaces {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rawNamespace(prefix, i)}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return 0, err
		}
	}
	type job struct {
		ns  string
		obj *unstructured.Unstructured
	}
	var jobs []job
	for i := range c.apps {
		name, ns := appName(i), rawNamespace(prefix, i%c.namespaces)
		first := 0
		if c.deployment {
			jobs, first = append(jobs, job{ns, deployment(name)}), 1
		}
		for j := first; j < c.objects; j++ {
			jobs = append(jobs, job{ns, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": fmt.Sprintf("%s-%d", name, j)},
				"data":     map[string]any{"value": "1", "index": fmt.Sprint(j)},
			}}})
		}
	}
	gvr := map[string]schema.GroupVersionResource{
		"Deployment": {Group: "apps", Version: "v1", Resource: "deployments"},
		"ConfigMap":  {Version: "v1", Resource: "configmaps"},
	}
	start := time.Now()
	ch := make(chan job)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				body, err := j.obj.MarshalJSON()
				if err == nil {
					_, err = dyn.Resource(gvr[j.obj.GetKind()]).Namespace(j.ns).Patch(ctx, j.obj.GetName(), types.ApplyPatchType, body,
						metav1.PatchOptions{FieldManager: "raw-ceiling", Force: ptr(true)})
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("applying %s %s/%s: %w", j.obj.GetKind(), j.ns, j.obj.GetName(), err))
				}
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	if !c.deployment {
		return time.Since(start), nil
	}
	// Every Deployment Available at its generation, read by listing each
	// namespace every 250 ms (as berth's own wait does per app).
	for {
		ready := 0
		for i := range c.namespaces {
			l, err := cs.AppsV1().Deployments(rawNamespace(prefix, i)).List(ctx, metav1.ListOptions{})
			if err != nil {
				return 0, err
			}
			for _, d := range l.Items {
				if available(&d) {
					ready++
				}
			}
		}
		if ready == c.apps {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func available(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
