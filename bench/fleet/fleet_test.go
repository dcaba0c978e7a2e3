// Package fleet benchmarks berth status over a fleet: how its cost grows with
// the number of clusters, all read at once.
//
//	go test ./bench/fleet -run '^$' -bench . -benchtime 5x
package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/fleet"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

// kubeconfigWithContexts writes a kubeconfig whose n contexts all reach the
// test cluster: n "clusters" of a fleet on one API server.
func kubeconfigWithContexts(b *testing.B, cfg *rest.Config, n int) string {
	kc := clientcmdapi.NewConfig()
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificate: cfg.CertFile, ClientCertificateData: cfg.CertData,
		ClientKey: cfg.KeyFile, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	for i := range n {
		name := fmt.Sprintf("c%02d", i)
		kc.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: cfg.CAFile, CertificateAuthorityData: cfg.CAData}
		kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: "admin"}
	}
	kc.CurrentContext = "c00"
	path := filepath.Join(b.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkFleetStatus reads the status of a fleet of 1, 3 and 50 clusters
// (contexts of one API server) with 1 and 5 apps each.
func BenchmarkFleetStatus(b *testing.B) {
	ctx := context.Background()
	cfg := testcluster.Config(b)
	kc := kubeconfigWithContexts(b, cfg, 50)
	for _, apps := range []int{1, 5} {
		env := fleetWorkspace(b, kc, apps)
		for _, clusters := range []int{1, 3, 50} {
			b.Run(fmt.Sprintf("clusters=%d/apps=%d", clusters, apps), func(b *testing.B) {
				all := env.WS.Config.Clusters
				env.WS.Config.Clusters = all[:clusters]
				defer func() { env.WS.Config.Clusters = all }()
				for b.Loop() {
					st, err := fleet.ReadStatus(ctx, env, fleet.StatusOptions{Timeout: time.Minute})
					if err != nil {
						b.Fatal(err)
					}
					for _, c := range st.Clusters {
						if c.Error != "" || len(c.Apps) != apps {
							b.Fatalf("cluster %s: %s, %d apps", c.Cluster, c.Error, len(c.Apps))
						}
					}
				}
			})
		}
	}
}

// fleetWorkspace makes a fleet workspace of 50 clusters (contexts of kc)
// with n redis apps, deployed once (every context reaches the same server).
func fleetWorkspace(b *testing.B, kc string, n int) *lifecycle.Env {
	ctx := context.Background()
	ws, _, err := lifecycle.Init(ctx, filepath.Join(b.TempDir(), "ws"), lifecycle.InitOptions{Home: b.TempDir(), Executable: testcluster.BerthBinary(b)})
	if err != nil {
		b.Fatal(err)
	}
	prefix := testcluster.UniqueName(b, 12)
	for i := range 50 {
		ws.Config.Clusters = append(ws.Config.Clusters, workspace.ClusterEntry{Name: fmt.Sprintf("c%02d", i), Kubeconfig: kc, Context: fmt.Sprintf("c%02d", i),
			Network: workspace.ClusterNetwork{Pods: []string{fmt.Sprintf("10.%d.0.0/16", i)}, Services: []string{fmt.Sprintf("10.%d.0.0/16", 100+i)}}})
	}
	data, err := yaml.Marshal(ws.Config)
	if err != nil {
		b.Fatal(err)
	}
	if err := ws.Change(ctx, "fleet", []string{workspace.ConfigFile}, func() error { return ws.WriteFile(workspace.ConfigFile, data) }); err != nil {
		b.Fatal(err)
	}
	set, err := catalog.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	env := &lifecycle.Env{WS: ws, Catalogs: set, ClusterOf: func(name string) (*rest.Config, error) {
		c, _ := ws.Config.FleetCluster(name)
		return fleet.RESTConfig(c)
	}}
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "redis", Name: name, Values: map[string]any{"persistence": false}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := env.ForCluster("c00").Deploy(ctx, lifecycle.DeployOptions{Timeout: 3 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	return env
}
