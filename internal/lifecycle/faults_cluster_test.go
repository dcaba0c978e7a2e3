package lifecycle

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// runKilled runs berth and kills it (SIGKILL) after delay, unless it ended
// first; it reports whether it was killed.
func (c *cliWorkspace) runKilled(delay time.Duration, args ...string) bool {
	c.t.Helper()
	cmd := c.command(nil, append(args, "-C", c.root)...)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(delay):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

// checkClusterEqualsHead asserts that the cluster is what HEAD says: a plan
// of every app is clean, every object labelled as an app's is in its
// inventory, and every inventory entry's object exists.
func checkClusterEqualsHead(t *testing.T, c *cliWorkspace, label string) {
	t.Helper()
	ctx := context.Background()
	cfg := testcluster.Config(t)
	ws, err := workspace.Open(c.root)
	if err != nil {
		t.Fatal(err)
	}
	set, err := catalog.Open(c.home)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{WS: ws, Catalogs: set, Cluster: func() (*rest.Config, error) { return cfg, nil }}
	plans, err := env.Plan(ctx)
	if err != nil {
		t.Fatalf("%s: plan: %v", label, err)
	}
	for _, r := range plans {
		for _, ch := range r.Changes {
			if ch.Action != apply.ActionUnchanged {
				t.Errorf("%s: the cluster differs from HEAD: app %s, %s: %s %s", label, r.App, ch.Object, ch.Action, ch.Reason)
			}
		}
	}
	eng, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	snap, err := workspace.Load(os.DirFS(c.root))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range snap.Apps {
		inv, err := eng.Inventory(ctx, a.Name, a.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		in := map[string]bool{}
		for _, en := range inv.Entries {
			in[en.Ref().Kind+"/"+en.Ref().Name] = true
			r := en.Ref()
			m, err := mapper.RESTMapping(r.GroupKind(), r.Version)
			if err != nil {
				t.Fatalf("%s: %s: %v", label, r, err)
			}
			if r.Namespace != "" {
				_, err = dyn.Resource(m.Resource).Namespace(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
			} else {
				_, err = dyn.Resource(m.Resource).Get(ctx, r.Name, metav1.GetOptions{})
			}
			if apierrors.IsNotFound(err) {
				t.Errorf("%s: app %s's inventory lists %s, which does not exist", label, a.Name, r)
			}
		}
		for _, res := range []string{"configmaps", "services", "secrets"} {
			list, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: res}).Namespace(a.Namespace).List(ctx, metav1.ListOptions{LabelSelector: apply.LabelApp + "=" + a.Name})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range list.Items {
				if !in[o.GetKind()+"/"+o.GetName()] && o.GetName() != apply.InventoryName(a.Name) {
					t.Errorf("%s: %s %s/%s is labelled as app %s's but is in no inventory", label, o.GetKind(), o.GetNamespace(), o.GetName(), a.Name)
				}
			}
		}
	}
}

// TestKilledCommandsConvergeOnTheCluster kills berth (SIGKILL) at seeded
// random points of install, config, upgrade, rollback, deploy and uninstall,
// at least 50 over the run, either at a step of its workspace transaction or
// after a random time (so mid-deploy), reruns the command, and asserts the
// workspace is clean and at a commit and the cluster equals HEAD with
// inventories that match the objects.
func TestKilledCommandsConvergeOnTheCluster(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("BERTH_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (rerun with BERTH_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	c := newCLIWorkspace(t, "--kubeconfig", testcluster.Kubeconfig(t))
	app := testcluster.UniqueName(t, 20)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), app, metav1.DeleteOptions{})
	})
	points := 0
	// step kills the command at a random point, then reruns it (and deploy)
	// until it succeeds, and checks the result.
	step := func(label string, args ...string) {
		t.Helper()
		var killed bool
		if rng.IntN(2) == 0 {
			at := 1 + rng.IntN(12)
			_, killed, _ = c.run([]string{workspace.EnvCrashAt + "=" + strconv.Itoa(at)}, args...)
			label += fmt.Sprintf(" (crash at transaction step %d)", at)
		} else {
			delay := time.Duration(100+rng.IntN(2500)) * time.Millisecond
			killed = c.runKilled(delay, args...)
			label += fmt.Sprintf(" (killed after %s)", delay)
		}
		if killed {
			points++
		}
		// The rerun: the command again (it resumes or says it is done),
		// then a deploy, which must succeed.
		out, _, _ := c.run(nil, args...)
		if out2, _, err := c.run(nil, "deploy", "--timeout", "2m"); err != nil {
			t.Fatalf("%s: deploy after the rerun: %v\n%s\n%s", label, err, out, out2)
		}
		c.checkConsistent(label)
		checkClusterEqualsHead(t, c, label)
	}
	for trial := 0; points < 50 && trial < 40; trial++ {
		step("install", "install", "redis@7.4.1", "--name", app, "--namespace", app, "--yes")
		step("config", "config", app, "--set", "maxMemory="+strconv.Itoa(100+trial)+"Mi")
		step("upgrade", "upgrade", app, "--to", "7.4.2")
		step("rollback", "rollback", app)
		step("deploy", "deploy")
		step("uninstall", "uninstall", app)
	}
	t.Logf("%d commands killed", points)
	if points < 50 {
		t.Errorf("only %d commands were killed, want at least 50", points)
	}
}
