package health

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPodProblem(t *testing.T) {
	tests := map[string]struct {
		pod    string
		want   Result
		wantOK bool
	}{
		"running": {pod: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status: {phase: Running, containerStatuses: [{name: web, ready: true, restartCount: 0, state: {running: {}}}]}`},
		"starting": {pod: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status: {phase: Pending, containerStatuses: [{name: web, restartCount: 0, state: {waiting: {reason: ContainerCreating}}}]}`},
		"crash loop, first restarts: still in progress": {pod: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status: {phase: Running, containerStatuses: [{name: web, restartCount: 2, state: {waiting: {reason: CrashLoopBackOff}}}]}`,
			want: Result{InProgress, "pod web-1: container web is in CrashLoopBackOff (restarted 2 times)"}, wantOK: true},
		"crash loop: failed": {pod: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Running
  containerStatuses: [{name: web, restartCount: 3, state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {exitCode: 137, reason: OOMKilled}}}]`,
			want: Result{Failed, "pod web-1: container web is in CrashLoopBackOff (restarted 3 times); last exit: OOMKilled, exit code 137"}, wantOK: true},
		"init container cannot pull": {pod: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status: {phase: Pending, initContainerStatuses: [{name: init, state: {waiting: {reason: ImagePullBackOff, message: no such image}}}]}`,
			want: Result{Failed, "pod web-1: container init cannot pull its image (ImagePullBackOff): no such image"}, wantOK: true},
		"first pull error is retried": {pod: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status: {phase: Pending, containerStatuses: [{name: web, state: {waiting: {reason: ErrImagePull, message: timeout}}}]}`,
			want: Result{InProgress, "pod web-1: container web is waiting: ErrImagePull: timeout"}, wantOK: true},
		"unschedulable": {pod: `
apiVersion: v1
kind: Pod
metadata: {name: web-1}
status:
  phase: Pending
  conditions: [{type: PodScheduled, status: "False", reason: Unschedulable, message: "0/3 nodes are available: 3 Insufficient cpu."}]`,
			want: Result{InProgress, "pod web-1 cannot be scheduled (Unschedulable): 0/3 nodes are available: 3 Insufficient cpu."}, wantOK: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := PodProblem(object(t, tc.pod))
			if ok != tc.wantOK {
				t.Fatalf("PodProblem ok = %v, want %v (%v)", ok, tc.wantOK, got)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PodProblem (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	pod := Result{Failed, "pod web-1: container web cannot pull its image (ImagePullBackOff)"}
	if got, want := Explain(Result{InProgress, "0/1 available"}, pod), (Result{Failed, "0/1 available; " + pod.Message}); got != want {
		t.Errorf("Explain = %v, want %v", got, want)
	}
	if got, want := Explain(Result{Current, "1/1 available"}, pod), (Result{Current, "1/1 available"}); got != want {
		t.Errorf("Explain of a ready workload = %v, want %v", got, want)
	}
}
