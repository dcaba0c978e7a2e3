package apply

import (
	"context"
	"errors"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/testcluster"
)

func TestApplyWaitsForHealth(t *testing.T) {
	tests := map[string]waitCase{
		"deployment becomes available": {
			docs: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}`,
			timeout:  testTimeout,
			wantSeen: "3/3 available",
		},
		"running job is not healthy": {
			docs: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {no-such-node: "true"}
      containers: [{name: m, image: busybox}]`,
			timeout: 3 * time.Second,
			wantErr: "job/migrate (namespace %s): running",
		},
		"deployment past its progress deadline fails": {
			docs: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  progressDeadlineSeconds: 1
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {no-such-node: "true"}
      containers: [{name: web, image: nginx}]`,
			timeout:  testTimeout,
			wantErr:  "progress deadline exceeded",
			failFast: true,
		},
	}
	for name, tc := range tests {
		for _, watched := range []bool{false, true} {
			mode := "polling"
			if watched {
				mode = "watching"
			}
			t.Run(name+"/"+mode, func(t *testing.T) {
				waitsForHealth(t, tc, watched)
			})
		}
	}
}

// waitCase is one case of TestApplyWaitsForHealth.
type waitCase struct {
	docs     string
	timeout  time.Duration
	wantErr  string // empty: healthy
	failFast bool   // the error must come before the timeout
	wantSeen string // a progress message that must have been streamed
}

// waitsForHealth applies tc.docs with a wait, by polling or from shared
// watches, and checks the outcome.
func waitsForHealth(t *testing.T, tc waitCase, watched bool) {
	ns := testcluster.Namespace(t)
	e, requests := newEngine(t)
	if watched {
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) })
		e.WatchHealth(stop)
	}
	var mu sync.Mutex
	var seen []string
	opts := applyOpts("wait", ns)
	opts.Wait, opts.Timeout = true, tc.timeout
	opts.Events = func(ev Event) {
		mu.Lock()
		seen = append(seen, ev.Message)
		mu.Unlock()
	}
	start := time.Now()
	_, err := e.Apply(context.Background(), objects(t, ns, tc.docs), opts)
	if tc.wantErr == "" {
		if err != nil {
			t.Fatalf("apply --wait: %v", err)
		}
	} else {
		want := strings.ReplaceAll(tc.wantErr, "%s", ns)
		var nr *NotReadyError
		if !errors.As(err, &nr) || !strings.Contains(err.Error(), want) {
			t.Fatalf("apply --wait: err = %v, want a *NotReadyError containing %q", err, want)
		}
		if tc.failFast && time.Since(start) >= tc.timeout {
			t.Errorf("a failed object should end the wait early; it took %s", time.Since(start))
		}
	}
	if tc.wantSeen != "" && !strings.Contains(strings.Join(seen, "\n"), tc.wantSeen) {
		t.Errorf("progress %q never reported; saw %q", tc.wantSeen, seen)
	}
	// The apply of a first install reads none of the app's live objects (an
	// upgrade lists them by the app's label); a polling wait then lists them
	// every interval, a watching one never (its shared watch lists every
	// app's objects once).
	lists := 0
	for _, r := range requests.reads() {
		if (strings.Contains(r, "/deployments?") || strings.Contains(r, "/jobs?")) && strings.Contains(r, "labelSelector=berth.dev%2Fapp%3Dwait") {
			lists++
		}
	}
	if watched && lists != 0 {
		t.Errorf("the first apply and its watching wait listed the app's objects %d times, want never: %v", lists, requests.reads())
	}
}

// Both ways: polling, and from the shared watch, which reads the kinds
// client-go does not know through the dynamic client.
func TestWaitJudgesCustomResourcesByTheirReadyCondition(t *testing.T) {
	for _, mode := range []string{"polling", "watching"} {
		t.Run(mode, func(t *testing.T) { waitJudgesCustomResources(t, mode == "watching") })
	}
}

func waitJudgesCustomResources(t *testing.T, watched bool) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	if watched {
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) })
		e.WatchHealth(stop)
	}
	ctx := context.Background()
	applyCRDFixture(t, e, "testdata/crd-and-cr.yaml", "widgets.test.berth.dev", applyOpts("ready", ns))
	widgets := dynClient(t).Resource(schema.GroupVersionResource{Group: "test.berth.dev", Version: "v1", Resource: "widgets"}).Namespace(ns)
	setReady := func(status, reason string) {
		t.Helper()
		w, err := widgets.Get(ctx, "small", metav1.GetOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		_ = unstructured.SetNestedSlice(w.Object, []any{map[string]any{"type": "Ready", "status": status, "reason": reason, "message": "by the test", "lastTransitionTime": "2026-01-01T00:00:00Z"}}, "status", "conditions")
		if _, err := widgets.UpdateStatus(ctx, w, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	}
	setReady("False", "Provisioning")
	ref := ObjectRef{Group: "test.berth.dev", Version: "v1", Kind: "Widget", Namespace: ns, Name: "small"}
	_, err := e.Wait(ctx, []ObjectRef{ref}, WaitOptions{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "Provisioning") {
		t.Fatalf("wait on a widget with Ready=False: err = %v, want not ready with reason Provisioning", err)
	}
	var once sync.Once
	_, err = e.Wait(ctx, []ObjectRef{ref}, WaitOptions{Timeout: testTimeout, Events: func(ev Event) {
		if ev.Type == EventWaiting {
			once.Do(func() { go setReady("True", "Done") })
		}
	}})
	if err != nil {
		t.Fatalf("wait on a widget that becomes Ready: %v", err)
	}
}

// applyCRDFixture applies a file holding a CRD and its custom resources, and
// deletes the CRD (named crd) when the test ends.
func applyCRDFixture(t *testing.T, e *Engine, file, crd string, opts ApplyOptions) {
	t.Helper()
	objs, err := ReadManifests(nil, file)
	if err != nil {
		t.Fatal(err)
	}
	removeCRDAfter(t, crd)
	mustApply(t, e, objs, opts)
}

// removeCRDAfter deletes the CRD named crd after the test, and waits until it
// is gone: the next test applying the same fixture would otherwise update the
// terminating CRD, and its kind would vanish under it.
func removeCRDAfter(t *testing.T, crd string) {
	t.Cleanup(func() {
		crds := dynClient(t).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
		if err := crds.Delete(context.Background(), crd, metav1.DeleteOptions{}); apierrors.IsNotFound(err) {
			return
		}
		poll(t, testTimeout, func(ctx context.Context) (bool, string, error) {
			_, err := crds.Get(ctx, crd, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, "", nil
			}
			return false, "CRD " + crd + " is still there", err
		})
	})
}

// TestCRDsAreWatchedUntilEstablished waits for a CRD that is not established
// (it does not exist) for two seconds: the engine must read the CRDs once
// and watch them, not read them all (megabytes of schema for some charts)
// every 100 ms, which kept a loaded API server from establishing
// kube-prometheus-stack's CRDs within the minute.
func TestCRDsAreWatchedUntilEstablished(t *testing.T) {
	e, c := newEngine(t)
	ref := ObjectRef{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition", Name: "nothings.test.berth.dev"}
	it := &item{ref: ref, change: Change{Object: ref, Action: ActionCreate}}
	c.reset()
	e.waitEstablished(context.Background(), []*item{it}, ApplyOptions{App: "watched", Timeout: 2 * time.Second}, time.Now())
	if it.change.Action != ActionFail || !strings.Contains(it.change.Error, "not established") {
		t.Fatalf("a CRD that does not exist: %s %q, want failed, not established", it.change.Action, it.change.Error)
	}
	var lists, watches int
	for _, r := range c.reads() {
		if !strings.HasPrefix(r, "GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions?") {
			continue
		}
		if strings.Contains(r, "watch=true") {
			watches++
		} else {
			lists++
		}
	}
	if lists != 1 || watches != 1 {
		t.Errorf("the engine read the CRDs %d times and watched them %d times in 2s; want 1 and 1:\n%s", lists, watches, strings.Join(c.reads(), "\n"))
	}
}
