package fleet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/upgrades/upgradestest"
	"berth.dev/berth/internal/workspace"
)

// TestAnUpgradeOverTheAirEntersDevFirst lands an automatic upgrade in a fleet
// of dev (the test cluster) and prod (never reached: only its rendered
// directory matters): the upgrade is committed for dev only, prod's
// controller leaves it to dev's, and prod gets it by promotion alone.
func TestAnUpgradeOverTheAirEntersDevFirst(t *testing.T) {
	ctx := context.Background()
	app := testcluster.UniqueName(t, 20)
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "rules:\n- {apps: "+app+", policy: auto}\n")
	ws, env := w.WS, w.Env

	cfg := ws.Config
	cfg.Clusters = []workspace.ClusterEntry{
		{Name: "dev", Kubeconfig: testcluster.Kubeconfig(t), Labels: map[string]string{"env": "dev"},
			Network: workspace.ClusterNetwork{Pods: []string{"10.244.0.0/16"}, Services: []string{"10.96.0.0/20"}}},
		{Name: "prod", Kubeconfig: filepath.Join(t.TempDir(), "unreachable"), Labels: map[string]string{"env": "prod"},
			Network: workspace.ClusterNetwork{Pods: []string{"10.245.0.0/16"}, Services: []string{"10.96.16.0/20"}}},
	}
	cfg.Environments = []workspace.Environment{
		{Name: "dev", Clusters: []string{"dev"}, Soak: "10m"},
		{Name: "prod", Clusters: []string{"prod"}},
	}
	commitFile(t, ws, workspace.ConfigFile, cfg)
	ws.Config = cfg
	env.ClusterOf = func(name string) (*rest.Config, error) {
		c, ok := ws.Config.FleetCluster(name)
		if !ok {
			return nil, errors.New("no cluster " + name)
		}
		return RESTConfig(c)
	}
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), app, metav1.DeleteOptions{})
	})

	extra := "configmap_" + app + "_hello-extra.yaml" // what 1.1.0 adds
	rendered := func(cluster, file string) bool {
		_, err := os.Stat(ws.Abs(filepath.Join(workspace.AppRenderedDirIn(cluster, app), file)))
		return err == nil
	}
	later := func() time.Time { return time.Now().Add(time.Hour) }
	deployDev := func() {
		t.Helper()
		if _, err := env.ForCluster("dev").Deploy(ctx, lifecycle.DeployOptions{Timeout: 2 * time.Minute}); err != nil {
			t.Fatal(err)
		}
	}

	// 1.0.0 enters dev, runs there, and is promoted to prod.
	w.Install(t, app, "")
	if _, err := os.Stat(ws.Abs(workspace.AppRenderedDirIn("prod", app))); err == nil {
		t.Fatal("a new app was rendered for prod before any promotion")
	}
	deployDev()
	if _, err := Promote(ctx, env, PromoteOptions{App: app, To: "prod", Now: later}); err != nil {
		t.Fatal(err)
	}
	if !rendered("prod", "configmap_"+app+"_hello.yaml") || rendered("prod", extra) {
		t.Fatal("prod does not hold 1.0.0 after its promotion")
	}

	cycler := func(cluster string) (*upgrades.Upgrader, upgrades.Target) {
		u := upgrades.New(upgrades.Options{CacheDir: t.TempDir(), Executable: testcluster.BerthBinary(t)})
		return u, upgrades.Target{Key: "test/" + cluster, URL: ws.Root, Branch: "main", Decryption: w.Key, Cluster: cluster}
	}
	cat.Publish(t, "1.1.0", "1.1.0")

	// prod's controller sees the upgrade and leaves it to dev's.
	main := w.Git(t, "rev-parse", "main")
	u, target := cycler("prod")
	res, err := u.Cycle(ctx, target, upgrades.Observed{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 0 || w.Git(t, "rev-parse", "main") != main {
		t.Fatalf("prod's controller landed an upgrade: events %+v", res.Events)
	}
	if len(res.Status.Available) != 1 || !strings.Contains(res.Status.Available[0].Message, "cluster prod is in stage prod") {
		t.Errorf("prod's controller lists %+v, want the upgrade left to the first stage", res.Status.Available)
	}

	// dev's controller lands it: rendered for dev only.
	u, target = cycler("dev")
	res, err = u.Cycle(ctx, target, upgrades.Observed{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 1 || res.Events[0].Type != upgrades.EventApplied {
		t.Fatalf("dev's controller: events %+v, want the upgrade applied", res.Events)
	}
	head := w.Git(t, "rev-parse", "main")
	changed := w.Git(t, "diff", "--name-only", main, head)
	if !strings.Contains(changed, "rendered/dev/"+app+"/"+extra) || strings.Contains(changed, "rendered/prod/") {
		t.Fatalf("the upgrade's commit changed:\n%s\nwant dev's rendered app and nothing of prod", changed)
	}
	if lock, err := ws.Lock(); err != nil {
		t.Fatal(err)
	} else if in, _ := lock.Get("app:" + app); in.Version != "1.1.0" {
		t.Fatalf("the lock has %s at %s after the upgrade", app, in.Version)
	}

	// prod gets it only by promotion, and only once dev runs it. (The
	// person promoting has the catalog's new index, as 'berth update' gives.)
	if err := env.Catalogs.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Promote(ctx, env, PromoteOptions{App: app, To: "prod", Now: later}); err == nil || !strings.Contains(err.Error(), "does not run what is rendered for it") {
		t.Fatalf("promoting before dev runs the upgrade: %v", err)
	}
	if rendered("prod", extra) {
		t.Fatal("prod holds the upgrade before its promotion")
	}
	deployDev()
	if _, err := Promote(ctx, env, PromoteOptions{App: app, To: "prod"}); err == nil || !strings.Contains(err.Error(), "soak time") {
		t.Fatalf("promoting before dev's soak time: %v", err)
	}
	res2, err := Promote(ctx, env, PromoteOptions{App: app, To: "prod", Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if !rendered("prod", extra) {
		t.Errorf("prod does not hold the upgrade after promotion %+v", res2)
	}
}
