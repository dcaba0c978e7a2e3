package health

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func object(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := utilyaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func TestComputeHonoursHealthConditionAnnotation(t *testing.T) {
	tests := map[string]struct {
		obj  string
		want Result
	}{
		"no conditions yet: waits (without the rule it is healthy)": {
			obj: `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, annotations: {berth.dev/health-condition: Ready=True}}`,
			want: Result{InProgress, "waiting for condition Ready=True"},
		},
		"condition with the wrong status": {
			obj: `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, annotations: {berth.dev/health-condition: Issued=True}}
status:
  conditions: [{type: Issued, status: "False", reason: Pending, message: waiting for the issuer}]`,
			want: Result{InProgress, "condition Issued is False, want True: Pending: waiting for the issuer"},
		},
		"condition met": {
			obj: `
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, annotations: {berth.dev/health-condition: Ready=True}}
status:
  conditions: [{type: Ready, status: "True"}]`,
			want: Result{Current, "Ready=True"},
		},
		"every condition must hold": {
			obj: `
apiVersion: example.com/v1
kind: Thing
metadata: {name: t, annotations: {berth.dev/health-condition: "Ready=True,Degraded=False"}}
status:
  conditions: [{type: Ready, status: "True"}, {type: Degraded, status: "True", message: disk full}]`,
			want: Result{InProgress, "condition Degraded is True, want False: disk full"},
		},
		"the kind's own rules come first": {
			obj: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, generation: 1, annotations: {berth.dev/health-condition: Available=True}}
spec: {replicas: 2}
status: {observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 1}`,
			want: Result{InProgress, "1/2 available"},
		},
		"malformed annotation fails with its name": {
			obj: `
apiVersion: example.com/v1
kind: Thing
metadata: {name: t, annotations: {berth.dev/health-condition: Ready}}`,
			want: Result{Failed, `annotation berth.dev/health-condition: "Ready" is not TYPE=STATUS`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Compute(object(t, tc.obj))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Compute (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConditionsRoundTrips(t *testing.T) {
	conds := []Condition{{"Ready", "True"}, {"Degraded", "False"}}
	got, err := ParseConditions(FormatConditions(conds))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(conds, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
