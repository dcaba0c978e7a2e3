package localcluster

import (
	"slices"
	"testing"
)

// The local cluster's controllers must not be held to client-go's default
// rate limits (20 requests/s for kube-controller-manager), which made it the
// bottleneck of any apply with many Deployments.
func TestControllersRunWithRaisedClientRateLimits(t *testing.T) {
	c := &Cluster{Name: "rates", Dir: t.TempDir()}
	want := []string{"--kube-api-qps=500", "--kube-api-burst=1000"}
	workers := []string{"--concurrent-deployment-syncs=20", "--concurrent-replicaset-syncs=20"}
	seen := map[string]bool{}
	for _, comp := range components() {
		args := comp.args(c)
		switch comp.name {
		case BinControllerManager, BinScheduler:
			seen[comp.name] = true
			w := want
			if comp.name == BinControllerManager {
				w = append(slices.Clone(want), workers...)
			}
			for _, w := range w {
				if !slices.Contains(args, w) {
					t.Errorf("%s runs with %q, missing %s", comp.name, args, w)
				}
			}
		}
	}
	if !seen[BinControllerManager] || !seen[BinScheduler] {
		t.Fatalf("components() lacks the controller-manager or the scheduler: %v", seen)
	}
}
