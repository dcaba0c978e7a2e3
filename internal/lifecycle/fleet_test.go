package lifecycle

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// fleetEnv is a workspace with encryption over the built-in catalog whose
// berth.yaml lists three clusters, all reached at the test cluster.
func fleetEnv(t *testing.T) *Env {
	t.Helper()
	env := newEnv(t, nil)
	cfg := testcluster.Config(t)
	env.ClusterOf = func(string) (*rest.Config, error) { return cfg, nil }
	env.WS.Config.Clusters = []workspace.ClusterEntry{
		{Name: "dev", Labels: map[string]string{"env": "dev", "region": "eu"}},
		{Name: "prod-eu", Labels: map[string]string{"env": "prod", "region": "eu"}},
		{Name: "prod-us", Labels: map[string]string{"env": "prod", "region": "us"}},
	}
	writeCommitted(t, env, workspace.ConfigFile, env.WS.Config)
	return env
}

func sel(k, v string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
}

func writeCommitted(t *testing.T, env *Env, rel string, v any) {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env.WS.Abs(rel), data, 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, env.WS.Root, "add", rel)
	git(t, env.WS.Root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "edit "+rel)
}

func maxMemoryIn(t *testing.T, env *Env, cluster string) string {
	t.Helper()
	objs, err := workspace.ReadRenderedFS(os.DirFS(env.WS.Root), workspace.AppRenderedDirIn(cluster, "redis"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "StatefulSet" || o.GetKind() == "Deployment" {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range cs {
				if m, ok, _ := unstructured.NestedString(c.(map[string]any), "resources", "limits", "memory"); ok {
					return m
				}
			}
		}
	}
	t.Fatalf("no workload with a memory limit in rendered/%s/redis", cluster)
	return ""
}

// TestFleetBuildRendersPerClusterWithOverrides places redis by selector and
// spread with a per-region override, and finds each cluster's objects under
// rendered/CLUSTER/redis/ with its own values; bad placements are refused,
// naming the app, the field and the cluster, and change nothing.
func TestFleetBuildRendersPerClusterWithOverrides(t *testing.T) {
	ctx := context.Background()
	env := fleetEnv(t)
	if _, err := env.Install(ctx, InstallOptions{Package: "redis"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(env.WS.Abs("rendered/redis")); !os.IsNotExist(err) {
		t.Fatalf("a fleet workspace rendered rendered/redis/ (%v)", err)
	}
	for _, c := range []string{"dev", "prod-eu", "prod-us"} {
		if got := maxMemoryIn(t, env, c); got != "256Mi" {
			t.Errorf("without placement, cluster %s runs redis with %s, want the default 256Mi", c, got)
		}
	}
	if out := git(t, env.WS.Root, "status", "--porcelain"); out != "" {
		t.Fatalf("install left changes uncommitted:\n%s", out)
	}
	if secret := git(t, env.WS.Root, "check-attr", "filter", "rendered/prod-eu/redis/secrets/secret_redis_redis.yaml"); !strings.HasSuffix(secret, "git-crypt") {
		t.Fatalf("a fleet's rendered Secrets are not encrypted: %s", secret)
	}

	a, err := env.WS.App("redis")
	if err != nil {
		t.Fatal(err)
	}
	a.Placement = &workspace.Placement{
		Selector:  sel("env", "prod"),
		Spread:    &workspace.Spread{By: "region", Count: 2},
		Overrides: []workspace.PlacementOverride{{Selector: sel("region", "eu"), Values: map[string]any{"maxMemory": "512Mi"}}},
	}
	writeCommitted(t, env, "apps/redis/app.yaml", a)
	if _, err := env.Build(ctx); err != nil {
		t.Fatal(err)
	}
	if got := maxMemoryIn(t, env, "prod-eu"); got != "512Mi" {
		t.Errorf("prod-eu runs redis with %s, want the eu override 512Mi", got)
	}
	if got := maxMemoryIn(t, env, "prod-us"); got != "256Mi" {
		t.Errorf("prod-us runs redis with %s, want the default 256Mi", got)
	}
	if _, err := os.Stat(env.WS.Abs("rendered/dev/redis")); !os.IsNotExist(err) {
		t.Errorf("redis is still rendered for dev, which its selector excludes (%v)", err)
	}

	bad := map[string]struct {
		p    *workspace.Placement
		want []string
	}{
		"unknown parameter": {&workspace.Placement{Overrides: []workspace.PlacementOverride{{Clusters: []string{"prod-us"}, Values: map[string]any{"replicas": 3}}}},
			[]string{"app redis", "placement.overrides[0].values.replicas", "prod-us", "not a parameter of package redis"}},
		"selector matches none": {&workspace.Placement{Selector: sel("env", "staging")}, []string{"app redis", "placement.selector", "matches no cluster"}},
		"spread too large":      {&workspace.Placement{Spread: &workspace.Spread{By: "region", Count: 3}}, []string{"app redis", "placement.spread.count", "only 2 distinct values"}},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			a.Placement = tc.p
			writeCommitted(t, env, "apps/redis/app.yaml", a)
			head := git(t, env.WS.Root, "rev-parse", "HEAD")
			_, err := env.Build(ctx)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("build: %v, want an error containing %q", err, w)
				}
			}
			if got := git(t, env.WS.Root, "rev-parse", "HEAD"); got != head {
				t.Error("a refused build committed")
			}
			if out := git(t, env.WS.Root, "status", "--porcelain"); out != "" {
				t.Errorf("a refused build left changes:\n%s", out)
			}
		})
	}
}

// TestFleetBuildRefusesAClusterWithoutAKind checks the API compatibility of
// a cluster by discovery: a kind it does not serve is refused, naming the
// kind and the cluster, unless the app's own CRD defines it.
func TestFleetBuildRefusesAClusterWithoutAKind(t *testing.T) {
	cfg := testcluster.Config(t)
	env := &Env{ClusterOf: func(string) (*rest.Config, error) { return cfg, nil }}
	apis := &clusterAPIs{env: env, served: map[string]*servedKinds{}}
	obj := func(apiVersion, kind string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetName("x")
		return u
	}
	ok := []*unstructured.Unstructured{obj("v1", "ConfigMap"), obj("apps/v1", "Deployment")}
	if reason, err := apis.refuse(context.Background(), "prod-eu", ok); err != nil || reason != "" {
		t.Fatalf("served kinds refused: %q, %v", reason, err)
	}
	widget := append(ok, obj("example.com/v1", "Widget"), obj("apps/v1beta1", "Deployment"))
	reason, err := apis.refuse(context.Background(), "prod-eu", widget)
	if err != nil || !strings.Contains(reason, "cluster prod-eu does not serve") || !strings.Contains(reason, "Widget example.com/v1") || !strings.Contains(reason, "Deployment apps/v1beta1") {
		t.Fatalf("refusal = %q, %v; want one naming prod-eu, Widget example.com/v1 and Deployment apps/v1beta1", reason, err)
	}
	crd := obj("apiextensions.k8s.io/v1", "CustomResourceDefinition")
	_ = unstructured.SetNestedField(crd.Object, "example.com", "spec", "group")
	_ = unstructured.SetNestedField(crd.Object, "Widget", "spec", "names", "kind")
	if reason, _ := apis.refuse(context.Background(), "prod-eu", append(ok, crd, obj("example.com/v1", "Widget"))); reason != "" {
		t.Fatalf("a kind the app's own CRD defines was refused: %q", reason)
	}
}

// TestFleetPreflightChecksEveryClusterTheChangeRendersFor runs the preflight
// of a fleet per cluster: a change dev would refuse, and a change for a
// cluster that cannot be reached, are refused naming the cluster, and
// nothing is committed; a change only for dev does not need prod.
func TestFleetPreflightChecksEveryClusterTheChangeRendersFor(t *testing.T) {
	ctx := context.Background()
	cfg := testcluster.Config(t)
	env := newEnv(t, nil)
	env.ClusterOf = func(name string) (*rest.Config, error) {
		if name == "dev" {
			return cfg, nil
		}
		return &rest.Config{Host: "https://127.0.0.1:1"}, nil // nothing listens there
	}
	env.WS.Config.Clusters = []workspace.ClusterEntry{{Name: "dev"}, {Name: "prod"}}
	writeCommitted(t, env, workspace.ConfigFile, env.WS.Config)
	name := testcluster.UniqueName(t, 20)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if _, err := env.Install(ctx, InstallOptions{Package: "redis", Name: name}); err != nil {
		t.Fatal(err)
	}
	a, err := env.WS.App(name)
	if err != nil {
		t.Fatal(err)
	}
	a.Placement = &workspace.Placement{Clusters: []string{"dev"}}
	writeCommitted(t, env, "apps/"+name+"/app.yaml", a)
	if _, err := env.Build(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ForCluster("dev").Deploy(ctx, DeployOptions{Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	env.Preflight = true
	refused := func(what string, change func() error, want ...string) {
		t.Helper()
		head := git(t, env.WS.Root, "rev-parse", "HEAD")
		err := change()
		var pe *PreflightError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: %v, want a PreflightError", what, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to name %q", what, err, w)
			}
		}
		if got := git(t, env.WS.Root, "rev-parse", "HEAD"); got != head {
			t.Errorf("%s: a refused change was committed", what)
		}
		if st := git(t, env.WS.Root, "status", "--porcelain", "--untracked-files=all"); st != "" {
			t.Errorf("%s: a refused change left files:\n%s", what, st)
		}
	}
	refused("a claim template dev would refuse", func() error {
		_, err := env.Config(ctx, ConfigOptions{App: name, Values: map[string]any{"storage": "4Gi"}})
		return err
	}, "cluster dev would refuse", "cluster dev, app "+name, "StatefulSet")

	a.Placement = &workspace.Placement{Clusters: []string{"dev", "prod"}}
	writeCommitted(t, env, "apps/"+name+"/app.yaml", a)
	refused("placing it on prod, which cannot be reached", func() error {
		_, err := env.Build(ctx)
		return err
	}, "cluster prod would refuse", "cluster prod: cannot reach")

	a.Placement = &workspace.Placement{Clusters: []string{"dev"}}
	writeCommitted(t, env, "apps/"+name+"/app.yaml", a)
	if _, err := env.Config(ctx, ConfigOptions{App: name, Values: map[string]any{"evictionPolicy": "allkeys-lru"}}); err != nil {
		t.Errorf("a change dev accepts, for dev only, was refused: %v", err)
	}
}

// capsCatalog is a directory catalog of one package, caps, whose ConfigMap
// says what its chart saw in .Capabilities.
func capsCatalog(t *testing.T) string {
	t.Helper()
	cat := t.TempDir()
	files := map[string]string{
		"caps/channels.yaml": "stable: 1.0.0\n",
		"caps/1.0.0/package.yaml": "apiVersion: berth.dev/v1alpha1\nkind: Package\nname: caps\nversion: 1.0.0\ndescription: Capabilities.\n" +
			"charts:\n  - path: chart\n",
		"caps/1.0.0/chart/Chart.yaml": "apiVersion: v2\nname: caps\nversion: 1.0.0\n",
		"caps/1.0.0/chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caps}\ndata:\n" +
			"  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n" +
			"  widget: {{ .Capabilities.APIVersions.Has \"example.com/v1/Widget\" | quote }}\n" +
			"  examplegroup: {{ .Capabilities.APIVersions.Has \"example.com/v1\" | quote }}\n" +
			"  batch: {{ .Capabilities.APIVersions.Has \"batch/v1\" | quote }}\n",
	}
	testcluster.WriteFiles(t, cat, files)
	return cat
}

// TestFleetRendersEachClusterWithItsKubernetes renders a chart that prints
// .Capabilities into a ConfigMap for three clusters: two with the Kubernetes
// version and API versions recorded in berth.yaml, which differ, and one
// without, which gets the defaults of a workspace without clusters. None is
// reached.
func TestFleetRendersEachClusterWithItsKubernetes(t *testing.T) {
	ctx := context.Background()
	cat := capsCatalog(t)
	env := newEnv(t, nil)
	set, err := catalog.OpenRefs(t.TempDir(), env.WS.Root, []catalog.Ref{{Name: "test", Type: catalog.TypeDir, URL: cat}})
	if err != nil {
		t.Fatal(err)
	}
	env.Catalogs = set
	env.WS.Config.Clusters = []workspace.ClusterEntry{
		{Name: "old", Kubernetes: &workspace.ClusterKubernetes{Version: "v1.31.4", APIVersions: []string{"v1", "v1/ConfigMap", "batch/v1", "batch/v1/Job", "example.com/v1", "example.com/v1/Widget"}}},
		{Name: "new", Kubernetes: &workspace.ClusterKubernetes{Version: "v1.34.2", APIVersions: []string{"v1", "v1/ConfigMap"}}},
		{Name: "unrecorded"},
	}
	writeCommitted(t, env, workspace.ConfigFile, env.WS.Config)
	if _, err := env.Install(ctx, InstallOptions{Package: "caps"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"old":        {"kube": "v1.31.4", "widget": "true", "examplegroup": "true", "batch": "true"},
		"new":        {"kube": "v1.34.2", "widget": "false", "examplegroup": "false", "batch": "false"},
		"unrecorded": {"kube": render.DefaultKubeVersion, "widget": "false", "examplegroup": "false", "batch": "true"},
	}
	for cluster, w := range want {
		objs, err := workspace.ReadRenderedFS(os.DirFS(env.WS.Root), workspace.AppRenderedDirIn(cluster, "caps"), nil)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		for _, o := range objs {
			if o.GetKind() == "ConfigMap" && o.GetName() == "caps" {
				got, _, _ = unstructured.NestedMap(o.Object, "data")
			}
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("cluster %s: the chart saw (-want +got):\n%s", cluster, diff)
		}
	}
}
