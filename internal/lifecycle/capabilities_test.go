package lifecycle

import (
	"context"
	"os"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// TestRendersSeeTheClustersKubernetesAndTheLockRecordsIt: a one-cluster
// workspace renders charts with the cluster's own Kubernetes version and API
// versions in .Capabilities (not berth's defaults), berth.lock records them,
// and a render without the cluster reads them from the lock.
func TestRendersSeeTheClustersKubernetesAndTheLockRecordsIt(t *testing.T) {
	ctx := context.Background()
	cfg := testcluster.Config(t)
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	live, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, cfg)
	set, err := catalog.OpenRefs(t.TempDir(), env.WS.Root, []catalog.Ref{{Name: "test", Type: catalog.TypeDir, URL: capsCatalog(t)}})
	if err != nil {
		t.Fatal(err)
	}
	env.Catalogs = set
	if _, err := env.Install(ctx, InstallOptions{Package: "caps", Namespace: testcluster.Namespace(t)}); err != nil {
		t.Fatal(err)
	}
	saw := func() map[string]any {
		t.Helper()
		objs, err := workspace.ReadRenderedFS(os.DirFS(env.WS.Root), workspace.AppRenderedDir("caps"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.GetKind() == "ConfigMap" && o.GetName() == "caps" {
				data, _, _ := unstructured.NestedMap(o.Object, "data")
				return data
			}
		}
		t.Fatal("no ConfigMap caps rendered")
		return nil
	}
	if got := saw(); got["kube"] != live.GitVersion || got["batch"] != "true" || got["widget"] != "false" {
		t.Errorf("the chart saw %v; want the cluster's %s, batch/v1 served and no example.com/v1 Widget", got, live.GitVersion)
	}
	lock, err := env.WS.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if k := lock.Kubernetes; k == nil || k.Version != live.GitVersion || !slices.Contains(k.APIVersions, "batch/v1/Job") {
		t.Fatalf("berth.lock records %+v; want the cluster's %s and its API versions", k, live.GitVersion)
	}

	// Without the cluster, a render gives charts what the lock recorded.
	lock.Kubernetes = &workspace.ClusterKubernetes{Version: "v1.30.2", APIVersions: []string{"v1", "v1/ConfigMap", "example.com/v1", "example.com/v1/Widget"}}
	writeCommitted(t, env, workspace.LockFile, lock)
	env.Cluster = nil
	if _, err := env.Build(ctx, "caps"); err != nil {
		t.Fatal(err)
	}
	if got := saw(); got["kube"] != "v1.30.2" || got["batch"] != "false" || got["widget"] != "true" {
		t.Errorf("without the cluster the chart saw %v; want the lock's v1.30.2 with example.com/v1 Widget and no batch/v1", got)
	}
	if lock, err := env.WS.Lock(); err != nil || lock.Kubernetes == nil || lock.Kubernetes.Version != "v1.30.2" {
		t.Errorf("a build without the cluster changed the lock's record: %+v, %v", lock, err)
	}
}
