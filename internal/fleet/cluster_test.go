package fleet

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/client-go/discovery"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// TestAddRecordsTheClusterKubernetes reads a cluster's Kubernetes version
// and API versions when it is added, into berth.yaml, for renders that do
// not reach it; an offline add records none.
func TestAddRecordsTheClusterKubernetes(t *testing.T) {
	ctx := context.Background()
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: t.TempDir(), Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testcluster.Config(t)
	net := workspace.ClusterNetwork{Pods: []string{"10.244.0.0/16"}, Services: []string{"10.96.0.0/20"}}
	if _, err := Add(ctx, ws, AddOptions{Cluster: workspace.ClusterEntry{Name: "dev", Network: net}, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	other := workspace.ClusterNetwork{Pods: []string{"10.245.0.0/16"}, Services: []string{"10.96.16.0/20"}}
	if _, err := Add(ctx, ws, AddOptions{Cluster: workspace.ClusterEntry{Name: "far", Network: other}}); err != nil {
		t.Fatal(err)
	}
	reopened, err := workspace.Open(ws.Root)
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := reopened.Config.FleetCluster("dev")
	server, err := discovery.NewDiscoveryClientForConfigOrDie(cfg).ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if dev.Kubernetes == nil || dev.Kubernetes.Version != server.GitVersion {
		t.Fatalf("berth.yaml records dev's Kubernetes as %+v, want version %s", dev.Kubernetes, server.GitVersion)
	}
	for _, v := range []string{"v1", "v1/ConfigMap", "apps/v1", "apps/v1/Deployment"} {
		if !slices.Contains(dev.Kubernetes.APIVersions, v) {
			t.Errorf("berth.yaml's API versions of dev lack %s: %v", v, dev.Kubernetes.APIVersions)
		}
	}
	if far, _ := reopened.Config.FleetCluster("far"); far.Kubernetes != nil {
		t.Errorf("an offline add recorded %+v", far.Kubernetes)
	}
}
