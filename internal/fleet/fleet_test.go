package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
	testcatalog "berth.dev/berth/test/catalog"
)

func TestMain(m *testing.M) {
	testcatalog.Use()
	os.Exit(testcluster.Main(m))
}

// localFleet starts three local clusters side by side under the test's
// BERTH_HOME and stops them after the test.
func localFleet(t *testing.T) (home string, clusters map[string]*localcluster.Cluster) {
	t.Helper()
	home = testcluster.Home(t)
	prefix := testcluster.UniqueName(t, 24)
	clusters = map[string]*localcluster.Cluster{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, name := range []string{"dev", "prod-eu", "prod-us"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			c, _, err := localcluster.Up(ctx, localcluster.UpOptions{Home: home, Name: prefix + "-" + name, Nodes: 1, BinDir: testcluster.BinDir(t)})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			clusters[name] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, name := range []string{"dev", "prod-eu", "prod-us"} {
			_, _ = localcluster.Down(context.Background(), localcluster.DownOptions{Home: home, Name: prefix + "-" + name, Purge: true})
		}
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return home, clusters
}

func commitFile(t *testing.T, ws *workspace.Workspace, rel string, v any) {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(ws.Abs(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ws.Abs(rel), data, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ws.Root, "git", "add", rel)
	run(t, ws.Root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "edit "+rel)
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := execCommand(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// memoryLimit reads the memory limit of the app's StatefulSet in a cluster.
func memoryLimit(t *testing.T, c *localcluster.Cluster, ns, name string) string {
	t.Helper()
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	sts, err := kubernetes.NewForConfigOrDie(cfg).AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("cluster %s: %v", c.Name, err)
	}
	return sts.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String()
}

// TestFleetOfThreeLocalClusters runs dev, prod-eu and prod-us side by side:
// their ranges, placement with a per-region override, the fleet status with
// one cluster stopped, and promotion from dev to prod.
func TestFleetOfThreeLocalClusters(t *testing.T) {
	ctx := context.Background()
	home, local := localFleet(t)
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: t.TempDir(), Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	set, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := &lifecycle.Env{WS: ws, Catalogs: set, ClusterOf: func(name string) (*rest.Config, error) {
		c, ok := ws.Config.FleetCluster(name)
		if !ok {
			return nil, errors.New("no cluster " + name)
		}
		return RESTConfig(c)
	}}
	labels := map[string]map[string]string{
		"dev": {"env": "dev", "region": "eu"}, "prod-eu": {"env": "prod", "region": "eu"}, "prod-us": {"env": "prod", "region": "us"},
	}

	t.Run("clusters are added with ranges of their own", func(t *testing.T) {
		for _, name := range []string{"dev", "prod-eu", "prod-us"} {
			c := local[name]
			cfg, err := c.RESTConfig()
			if err != nil {
				t.Fatal(err)
			}
			added, err := Add(ctx, ws, AddOptions{Cluster: workspace.ClusterEntry{Name: name, Kubeconfig: c.KubeconfigPath(), Labels: labels[name]}, Config: cfg})
			if err != nil {
				t.Fatalf("adding %s: %v", name, err)
			}
			if want := c.NetworkOf().PodCIDR; !slices.Contains(added.Network.Pods, want) {
				t.Errorf("cluster %s: pods read as %v, want %s (its local range)", name, added.Network.Pods, want)
			}
			if want := c.NetworkOf().ServiceCIDR; !slices.Contains(added.Network.Services, want) {
				t.Errorf("cluster %s: services read as %v, want %s", name, added.Network.Services, want)
			}
			if k := added.Kubernetes; k == nil || !strings.HasPrefix(k.Version, "v1.") || !slices.Contains(k.APIVersions, "apps/v1/StatefulSet") {
				t.Errorf("cluster %s: Kubernetes recorded as %+v, want its version and API versions", name, k)
			}
		}
		if err := CheckOverlaps(ws.Config.Clusters, ""); err != nil {
			t.Fatalf("three local clusters of one home overlap: %v", err)
		}
		// The same cluster under another name overlaps dev.
		head := run(t, ws.Root, "git", "rev-parse", "HEAD")
		dev, _ := ws.Config.FleetCluster("dev")
		_, err := Add(ctx, ws, AddOptions{Cluster: workspace.ClusterEntry{Name: "dev-again", Network: dev.Network}})
		var oe *OverlapError
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), "cluster dev ") || !strings.Contains(err.Error(), "cluster dev-again ") {
			t.Fatalf("overlapping cluster: %v, want an OverlapError naming dev and dev-again", err)
		}
		if run(t, ws.Root, "git", "rev-parse", "HEAD") != head {
			t.Fatal("a refused add committed")
		}
	})
	if t.Failed() {
		return
	}

	t.Run("placement by selector and spread with a per-region override", func(t *testing.T) {
		if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "redis", Values: map[string]any{"persistence": false}}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "redis", Name: "cache", Values: map[string]any{"persistence": false}}); err != nil {
			t.Fatal(err)
		}
		a, err := ws.App("cache")
		if err != nil {
			t.Fatal(err)
		}
		a.Placement = &workspace.Placement{
			Selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
			Spread:    &workspace.Spread{By: "region", Count: 2},
			Overrides: []workspace.PlacementOverride{{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"region": "eu"}}, Values: map[string]any{"maxMemory": "512Mi"}}},
		}
		commitFile(t, ws, "apps/cache/app.yaml", a)
		if _, err := env.Build(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Deploy(ctx, lifecycle.DeployOptions{Timeout: 3 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		if got := memoryLimit(t, local["prod-eu"], "cache", "cache"); got != "512Mi" {
			t.Errorf("prod-eu runs cache with %s, want the eu override 512Mi", got)
		}
		if got := memoryLimit(t, local["prod-us"], "cache", "cache"); got != "256Mi" {
			t.Errorf("prod-us runs cache with %s, want 256Mi", got)
		}
		cfg, _ := local["dev"].RESTConfig()
		if _, err := kubernetes.NewForConfigOrDie(cfg).AppsV1().StatefulSets("cache").Get(ctx, "cache", metav1.GetOptions{}); err == nil {
			t.Error("cache runs on dev, which its selector excludes")
		}
		if got := memoryLimit(t, local["dev"], "redis", "redis"); got != "256Mi" {
			t.Errorf("dev runs redis with %s", got)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("fleet status with one cluster stopped", func(t *testing.T) {
		st, err := ReadStatus(ctx, env, StatusOptions{Timeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Clusters {
			if !c.Reachable || c.Error != "" {
				t.Fatalf("cluster %s: %+v", c.Cluster, c)
			}
			for _, a := range c.Apps {
				if a.Health != lifecycle.HealthHealthy {
					t.Errorf("cluster %s app %s: %s (%s)", c.Cluster, a.App, a.Health, a.HealthReason)
				}
			}
		}
		if _, err := localcluster.Down(ctx, localcluster.DownOptions{Home: home, Name: local["prod-us"].Name}); err != nil {
			t.Fatal(err)
		}
		st, err = ReadStatus(ctx, env, StatusOptions{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]ClusterStatus{}
		for _, c := range st.Clusters {
			got[c.Cluster] = c
		}
		if c := got["prod-us"]; c.Reachable || c.Error == "" {
			t.Errorf("the stopped prod-us is shown as %+v, want unreachable", c)
		}
		if c := got["prod-eu"]; !c.Reachable || len(c.Apps) != 2 {
			t.Errorf("prod-eu is shown as %+v, want reachable with redis and cache", c)
		}
		if c := got["dev"]; !c.Reachable || len(c.Apps) != 1 || c.Apps[0].App != "redis" {
			t.Errorf("dev is shown as %+v, want reachable with redis only", c)
		}
	})

	t.Run("promotion from dev to prod", func(t *testing.T) {
		cfg := ws.Config
		cfg.Environments = []workspace.Environment{
			{Name: "dev", Clusters: []string{"dev"}, Soak: "30m", Verify: &workspace.Verification{Job: "verify/smoke.yaml", Timeout: "90s"}},
			{Name: "prod", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}, RequireApproval: true},
		}
		// A verification that fails: its pod can be scheduled nowhere and
		// its deadline passes.
		commitFile(t, ws, "verify/smoke.yaml", map[string]any{
			"apiVersion": "batch/v1", "kind": "Job", "metadata": map[string]any{"name": "smoke"},
			"spec": map[string]any{"activeDeadlineSeconds": 2, "backoffLimit": 0, "template": map[string]any{"spec": map[string]any{
				"restartPolicy": "Never", "nodeSelector": map[string]any{"berth.dev/nowhere": "true"},
				"containers": []any{map[string]any{"name": "smoke", "image": "busybox"}}}}},
		})
		commitFile(t, ws, workspace.ConfigFile, cfg)
		ws.Config = cfg

		prodSource := func() string {
			src, err := renderedSource(ws, "redis", []string{"prod-eu"})
			if err != nil {
				t.Fatal(err)
			}
			return src
		}
		before := prodSource()
		a, _ := ws.App("redis")
		a.Values["maxMemory"] = "300Mi"
		commitFile(t, ws, "apps/redis/app.yaml", a)
		if _, err := env.Build(ctx); err != nil {
			t.Fatal(err)
		}
		devSource, err := renderedSource(ws, "redis", []string{"dev"})
		if err != nil {
			t.Fatal(err)
		}
		if devSource == before || prodSource() != before {
			t.Fatalf("a new configuration must enter dev only: dev %s, prod %s (was %s)", devSource, prodSource(), before)
		}
		later := func() time.Time { return time.Now().Add(time.Hour) }
		refused := func(name string, opts PromoteOptions, want string) {
			t.Helper()
			head := run(t, ws.Root, "git", "rev-parse", "HEAD")
			_, err := Promote(ctx, env, opts)
			var re *RefusedError
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("%s: %v, want a refusal containing %q", name, err, want)
			}
			if want != "requires approval" && (!errors.As(err, &re) || re.Cluster != "dev") {
				t.Errorf("%s: %v does not name cluster dev", name, err)
			}
			if run(t, ws.Root, "git", "rev-parse", "HEAD") != head {
				t.Fatalf("%s: a refused promotion committed", name)
			}
		}
		opts := PromoteOptions{App: "redis", To: "prod", ApprovedBy: "alice", Now: later}
		refused("without approval", PromoteOptions{App: "redis", To: "prod", Now: later}, "requires approval")
		refused("before dev runs it", opts, "does not run what is rendered for it")
		if _, err := Promote(ctx, env, PromoteOptions{App: "redis", To: "staging"}); err == nil || !strings.Contains(err.Error(), `no stage "staging"`) {
			t.Fatalf("unknown stage: %v", err)
		}

		if _, err := env.ForCluster("dev").Deploy(ctx, lifecycle.DeployOptions{Timeout: 3 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		refused("before the soak time", PromoteOptions{App: "redis", To: "prod", ApprovedBy: "alice"}, "of the stage's soak time 30m0s")

		// dev unhealthy: its node cordoned, the redis pod cannot come back.
		devCfg, _ := local["dev"].RESTConfig()
		devCS := kubernetes.NewForConfigOrDie(devCfg)
		setCordon := func(on bool) {
			t.Helper()
			node := localcluster.NodeName(local["dev"].Name, 1)
			patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
			if _, err := devCS.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		devHealth := func(want bool) {
			t.Helper()
			testcluster.WaitFor(t, 2*time.Minute, func(context.Context) (bool, string, error) {
				// Status bounds its own reads; the poll's short deadline is not for it.
				st, err := env.ForCluster("dev").Status(ctx, "redis")
				if err != nil || len(st) != 1 {
					return false, fmt.Sprint(st, err), nil
				}
				return (st[0].Health == lifecycle.HealthHealthy) == want, st[0].Health, nil
			})
		}
		setCordon(true)
		if err := devCS.CoreV1().Pods("redis").Delete(ctx, "redis-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		devHealth(false)
		refused("while dev is unhealthy", opts, "app redis is ")
		setCordon(false)
		devHealth(true)

		refused("with a failing verification", opts, "verification job redis/smoke-")

		commitFile(t, ws, "verify/smoke.yaml", map[string]any{
			"apiVersion": "batch/v1", "kind": "Job", "metadata": map[string]any{"name": "smoke-ok"},
			"spec": map[string]any{"backoffLimit": 0, "template": map[string]any{"spec": map[string]any{
				"restartPolicy": "Never", "containers": []any{map[string]any{"name": "smoke", "image": "busybox"}}}}},
		})
		res, err := Promote(ctx, env, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Source != devSource || !slices.Equal(res.Clusters, []string{"prod-eu", "prod-us"}) || len(res.Evidence) != 1 || !strings.Contains(res.Evidence[0].Verification, "Complete") {
			t.Errorf("promotion = %+v", res)
		}
		if got := prodSource(); got != devSource {
			t.Errorf("prod-eu is rendered from %s after the promotion, want dev's %s", got, devSource)
		}
		msg := run(t, ws.Root, "git", "log", "-1", "--format=%B")
		for _, want := range []string{"promote redis from dev to prod", "Berth-Promote-Source: " + devSource, "Berth-Approved-By: alice", "- dev: Healthy since"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the promotion commit lacks %q:\n%s", want, msg)
			}
		}
	})
}
