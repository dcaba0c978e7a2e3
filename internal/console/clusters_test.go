package console

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/fleet"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

func TestBrowserFleetShowsEachClusterWithinItsTimeout(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) {
		ctx := context.Background()
		// The test cluster, and one that does not answer.
		if _, err := fleet.Add(ctx, f.env.WS, fleet.AddOptions{Cluster: workspace.ClusterEntry{Name: "local", Kubeconfig: testcluster.Kubeconfig(t), Labels: map[string]string{"env": "dev", "region": "eu"}}, Config: f.cfg}); err != nil {
			t.Fatal(err)
		}
		gone := filepath.Join(t.TempDir(), "gone.kubeconfig")
		if err := os.WriteFile(gone, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: gone\n  context: {cluster: gone, user: gone}\ncurrent-context: gone\nusers:\n- name: gone\n  user: {token: x}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := fleet.Add(ctx, f.env.WS, fleet.AddOptions{Cluster: workspace.ClusterEntry{Name: "gone", Kubeconfig: gone, Labels: map[string]string{"env": "prod"}, Network: workspace.ClusterNetwork{Pods: []string{"10.200.0.0/16"}, Services: []string{"10.201.0.0/16"}}}}); err != nil {
			t.Fatal(err)
		}
		f.env.ClusterOf = func(name string) (*rest.Config, error) {
			c, ok := f.env.WS.Config.FleetCluster(name)
			if !ok {
				return nil, errors.New("no cluster " + name)
			}
			return fleet.RESTConfig(c)
		}
		// The app, placed on every cluster, as the fleet renders it.
		if _, err := f.env.Build(ctx); err != nil {
			t.Fatal(err)
		}
	})
	ctx := browser(t)
	f.signInAs(t, ctx, viewerUser)
	var labels, local, gone string
	run(t, ctx, "fleet",
		chromedp.Click(`header nav a[href="/fleet"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`section[data-cluster="gone"]`, chromedp.ByQuery),
		chromedp.Text(`section[data-cluster="local"] .labels`, &labels, chromedp.ByQuery),
		chromedp.Text(`section[data-cluster="local"] .reach`, &local, chromedp.ByQuery),
		chromedp.Text(`section[data-cluster="gone"] .reach`, &gone, chromedp.ByQuery),
	)
	if labels != "env=dev region=eu" {
		t.Errorf("labels of cluster local = %q", labels)
	}
	if local != "reachable" || gone != "unreachable" {
		t.Errorf("cluster local is %q and gone is %q, want reachable and unreachable", local, gone)
	}
	var health string
	run(t, ctx, "fleet apps",
		chromedp.Text(`section[data-cluster="local"] tr[data-app="`+f.app+`"] .health`, &health, chromedp.ByQuery),
	)
	if health != "Healthy" {
		t.Errorf("%s on cluster local is %q, want Healthy", f.app, health)
	}
	shot(t, ctx, "fleet")
}
