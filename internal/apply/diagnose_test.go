package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/testcluster"
)

// runningPod waits until kwok runs the one pod labelled app=name (it sets the
// pod's IP and never touches the pod again), and returns its name.
func runningPod(t *testing.T, ns, name string) string {
	t.Helper()
	var pod string
	poll(t, testTimeout, func(ctx context.Context) (bool, string, error) {
		list, err := dynClient(t).Resource(podsGVR).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, "", err
		}
		for _, p := range list.Items {
			if ip, _, _ := unstructured.NestedString(p.Object, "status", "podIP"); ip != "" {
				pod = p.GetName()
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d pods, none running", len(list.Items)), nil
	})
	return pod
}

// breakPod writes the status the kubelet would write for a container that
// cannot start: kwok runs no containers.
func breakPod(t *testing.T, ns, pod string, waiting map[string]any, restarts int64) {
	t.Helper()
	pods := dynClient(t).Resource(podsGVR).Namespace(ns)
	poll(t, testTimeout, func(ctx context.Context) (bool, string, error) {
		p, err := pods.Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		_ = unstructured.SetNestedSlice(p.Object, []any{map[string]any{
			"name": "web", "image": "nginx", "imageID": "", "ready": false, "started": false,
			"restartCount": restarts,
			"state":        map[string]any{"waiting": waiting},
			"lastState":    map[string]any{"terminated": map[string]any{"exitCode": int64(1), "reason": "Error"}},
		}}, "status", "containerStatuses")
		conds, _, _ := unstructured.NestedSlice(p.Object, "status", "conditions")
		for _, c := range conds {
			if m := c.(map[string]any); m["type"] == "Ready" || m["type"] == "ContainersReady" {
				m["status"] = "False"
			}
		}
		_ = unstructured.SetNestedSlice(p.Object, conds, "status", "conditions")
		_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, err.Error(), nil
		}
		return err == nil, "", err
	})
}

func TestWaitFailsEarlyNamingTheBrokenPod(t *testing.T) {
	tests := map[string]struct {
		waiting  map[string]any
		restarts int64
		want     string
	}{
		"crash loop": {
			waiting:  map[string]any{"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"},
			restarts: 7,
			want:     "container web is in CrashLoopBackOff (restarted 7 times); last exit: Error, exit code 1",
		},
		"image pull": {
			waiting: map[string]any{"reason": "ImagePullBackOff", "message": `Back-off pulling image "nginx:nope"`},
			want:    `container web cannot pull its image (ImagePullBackOff): Back-off pulling image "nginx:nope"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := testcluster.Namespace(t)
			e, _ := newEngine(t)
			mustApply(t, e, objects(t, ns, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}`), applyOpts("web", ns))
			pod := runningPod(t, ns, "web")
			// Available first: otherwise the check for "unavailable" below can
			// pass before the Deployment ever saw its pod ready, and the wait
			// then finds it available.
			poll(t, testTimeout, func(ctx context.Context) (bool, string, error) {
				d, ok := get(t, deployGVR, ns, "web")
				n, _, _ := unstructuredInt(d.Object, "status", "availableReplicas")
				return ok && n == 1, fmt.Sprintf("%d available", n), nil
			})
			breakPod(t, ns, pod, tc.waiting, tc.restarts)
			ref := ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: ns, Name: "web"}
			// The Deployment goes unavailable once its controller sees the pod.
			poll(t, testTimeout, func(ctx context.Context) (bool, string, error) {
				d, ok := get(t, deployGVR, ns, "web")
				n, _, _ := unstructuredInt(d.Object, "status", "availableReplicas")
				return ok && n == 0, fmt.Sprintf("%d available", n), nil
			})
			timeout := testTimeout
			start := time.Now()
			_, err := e.Wait(context.Background(), []ObjectRef{ref}, WaitOptions{App: "web", Timeout: timeout})
			var nr *NotReadyError
			if !errors.As(err, &nr) || !nr.Failed {
				t.Fatalf("wait: err = %v, want a *NotReadyError that failed", err)
			}
			if want := "pod " + pod + ": " + tc.want; !strings.Contains(err.Error(), want) {
				t.Errorf("wait: err = %v\nwant it to contain %q", err, want)
			}
			if time.Since(start) >= timeout {
				t.Errorf("a broken pod should end the wait early")
			}
		})
	}
}

func TestWaitNamesAnUnschedulablePod(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	mustApply(t, e, objects(t, ns, `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    metadata: {labels: {app: migrate}}
    spec:
      restartPolicy: Never
      nodeSelector: {no-such-node: "true"}
      containers: [{name: m, image: busybox}]`), applyOpts("migrate", ns))
	ref := ObjectRef{Group: "batch", Version: "v1", Kind: "Job", Namespace: ns, Name: "migrate"}
	// The scheduler reports when it has tried: wait for that, not for a time.
	var last error
	poll(t, testTimeout, func(ctx context.Context) (bool, string, error) {
		_, last = e.Wait(ctx, []ObjectRef{ref}, WaitOptions{Timeout: time.Second})
		return last != nil && strings.Contains(last.Error(), "cannot be scheduled"), fmt.Sprint(last), nil
	})
	for _, want := range []string{"job/migrate", "running (1 active, 0 succeeded)", "cannot be scheduled (Unschedulable): 0/3 nodes are available", "node affinity/selector"} {
		if !strings.Contains(last.Error(), want) {
			t.Errorf("wait: err = %v\nwant it to contain %q", last, want)
		}
	}
}

func TestWaitNamesTheClaimThatCannotBeProvisioned(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	mustApply(t, e, objects(t, ns, `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres}]}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        storageClassName: nope
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}`), applyOpts("db", ns))
	ref := ObjectRef{Group: "apps", Version: "v1", Kind: "StatefulSet", Namespace: ns, Name: "db"}
	var last error
	poll(t, testTimeout, func(ctx context.Context) (bool, string, error) {
		_, last = e.Wait(ctx, []ObjectRef{ref}, WaitOptions{Timeout: time.Second})
		return last != nil && strings.Contains(last.Error(), "ProvisioningFailed"), fmt.Sprint(last), nil
	})
	want := `statefulset/db (namespace ` + ns + `): 0/1 ready; pod db-0: claim data-db-0 is not bound: ProvisioningFailed: storageclass.storage.k8s.io "nope" not found`
	if !strings.Contains(last.Error(), want) {
		t.Errorf("wait: err = %v\nwant it to contain %q", last, want)
	}
}
