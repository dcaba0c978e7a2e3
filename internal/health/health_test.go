package health

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func TestCompute(t *testing.T) {
	tests := map[string]struct {
		obj  string
		want Result
	}{
		"deployment rolling out": {
			obj: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 2}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 1}`,
			want: Result{InProgress, "1/3 available"},
		},
		"deployment available": {
			obj: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 3}
status: {observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 3}`,
			want: Result{Current, "3/3 available"},
		},
		"deployment not yet seen by its controller": {
			obj: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 3}
spec: {replicas: 3}
status: {observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3}`,
			want: Result{InProgress, "waiting for the controller to observe generation 3 (seen 2)"},
		},
		"deployment past its progress deadline": {
			obj: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 1}
status:
  observedGeneration: 1
  conditions: [{type: Progressing, status: "False", reason: ProgressDeadlineExceeded, message: ReplicaSet "web-1" has timed out progressing.}]`,
			want: Result{Failed, `progress deadline exceeded: ReplicaSet "web-1" has timed out progressing.`},
		},
		"job running": {
			obj: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status: {active: 1}`,
			want: Result{InProgress, "running (1 active, 0 succeeded)"},
		},
		"job complete": {
			obj: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status: {succeeded: 1, conditions: [{type: Complete, status: "True"}]}`,
			want: Result{Current, "complete"},
		},
		"job failed": {
			obj: `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
status: {conditions: [{type: Failed, status: "True", reason: BackoffLimitExceeded, message: Job has reached the specified backoff limit}]}`,
			want: Result{Failed, "failed: BackoffLimitExceeded: Job has reached the specified backoff limit"},
		},
		"custom resource not ready": {
			obj: `
apiVersion: db.example.com/v1
kind: Cluster
metadata: {name: pg}
status: {conditions: [{type: Ready, status: "False", reason: Provisioning, message: creating volumes}]}`,
			want: Result{InProgress, "Provisioning: creating volumes"},
		},
		"custom resource stalled": {
			obj: `
apiVersion: db.example.com/v1
kind: Cluster
metadata: {name: pg}
status: {conditions: [{type: Stalled, status: "True", reason: BadConfig, message: bad version}, {type: Ready, status: "False"}]}`,
			want: Result{Failed, "BadConfig: bad version"},
		},
		"custom resource ready": {
			obj: `
apiVersion: db.example.com/v1
kind: Cluster
metadata: {name: pg}
status: {conditions: [{type: Ready, status: "True"}]}`,
			want: Result{Current, ""},
		},
		"statefulset updating": {
			obj: `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, generation: 1}
spec: {replicas: 2}
status: {observedGeneration: 1, readyReplicas: 2, updatedReplicas: 1, currentRevision: a, updateRevision: b}`,
			want: Result{InProgress, "2/2 ready, 1/2 updated"},
		},
		"pending claim": {
			obj: `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
status: {phase: Pending}`,
			want: Result{InProgress, "waiting to be bound to a volume"},
		},
		"load balancer without address": {
			obj: `
apiVersion: v1
kind: Service
metadata: {name: lb}
spec: {type: LoadBalancer}`,
			want: Result{InProgress, "waiting for a load balancer address"},
		},
		"deployment without status yet": {
			obj: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1}
spec: {replicas: 0}`,
			want: Result{InProgress, "waiting for the controller"},
		},
		"controller revision": {
			obj: `
apiVersion: apps/v1
kind: ControllerRevision
metadata: {name: web-1}
revision: 1`,
			want: Result{Current, ""},
		},
		"config map": {
			obj: `
apiVersion: v1
kind: ConfigMap
metadata: {name: c}`,
			want: Result{Current, ""},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := utilyaml.Unmarshal([]byte(tc.obj), &m); err != nil {
				t.Fatal(err)
			}
			got := Compute(&unstructured.Unstructured{Object: m})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Compute (-want +got):\n%s", diff)
			}
		})
	}
}
