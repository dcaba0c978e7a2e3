package render

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/testcluster"
)

// unhealthyOnKwok names the charts that cannot become healthy on the test
// cluster for a reason that is not berth's, and why. Their first deploy is
// allowed to end Progressing or Failed on health; everything else (applied
// without refusals, 0 writes on redeploy, a clean plan, uninstall) is still
// checked.
var unhealthyOnKwok = map[string]string{
	"traefik": "its Service is of type LoadBalancer, and the test cluster runs no load-balancer controller to give it an address",
}

// deployValues returns the values file a chart deploys with: its own under
// testdata/deploy, else the one TestCompareWithHelm renders it with.
func deployValues(c mirrorChart) string {
	p := filepath.Join("testdata", "deploy", c.name+".yaml")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return compareValues(c)
}

// TestDeployMirrorCharts renders every chart version of the mirror with
// berth's renderer and deploys it through the deploy library (the path of
// the CLI and the controller) to the test cluster, each as an app of a
// unique name in a namespace of its own, then checks what Helm users rely
// on: a second deploy writes nothing, the engine's plan is clean, and
// uninstall deletes what helm uninstall deletes and keeps what it keeps (the
// CRDs of crds/ folders, objects annotated helm.sh/resource-policy: keep, and
// hooks), read back from the cluster. Volume claims are kept too: berth
// never deletes data by default (helm does).
//
// The versions of one chart share cluster-scoped objects (CRDs), so they
// run one after the other; different charts run in parallel.
func TestDeployMirrorCharts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local cluster")
	}
	if _, err := os.Stat(mirror); err != nil {
		t.Fatalf("the chart mirror: %v", err)
	}
	cfg := testcluster.Config(t)
	eng, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := &mirrorDeployEnv{
		eng: eng, dyn: dyn, d: deploy.New(eng, dyn),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
	}
	byName := map[string][]mirrorChart{}
	for _, c := range mirrorCharts(t) {
		byName[c.name] = append(byName[c.name], c)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, c := range byName[name] {
				t.Run(c.version, func(t *testing.T) { env.check(t, c) })
			}
		})
	}
}

type mirrorDeployEnv struct {
	eng    *apply.Engine
	dyn    dynamic.Interface
	d      *deploy.Deployer
	mapper meta.ResettableRESTMapper
}

// phased returns copies of the rendered objects annotated with their phase,
// as berth build annotates an app of one part.
func phased(res *Result) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(res.Objects))
	for _, o := range res.Objects {
		obj := o.Object.DeepCopy()
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[deploy.AnnotationPhase] = strconv.Itoa(o.Stage.order())
		obj.SetAnnotations(ann)
		out = append(out, obj)
	}
	return out
}

func (e *mirrorDeployEnv) check(t *testing.T, c mirrorChart) {
	archive, err := os.ReadFile(c.archive)
	if err != nil {
		t.Fatal(err)
	}
	ns := testcluster.Namespace(t)
	app := uniqueApp(t)
	objs := phased(renderMirrorChartAs(t, c, archive, deployValues(c), testSeed, app, ns))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	e.cleanupClusterScoped(t, app, objs)
	a := &deploy.App{Name: app, Namespace: ns, Objects: objs}
	opts := deploy.Options{Timeout: 5 * time.Minute}
	why, unhealthy := unhealthyOnKwok[c.name]
	if unhealthy {
		// Enough for its CRDs to be established (the engine waits for
		// that at most a minute), not to wait for what will not come.
		opts.Timeout = 90 * time.Second
	}

	first := e.d.Deploy(ctx, []*deploy.App{a}, opts).Apps[0]
	t.Logf("app %s in %s: first deploy %s in %s: %v", app, ns, first.State, first.Duration.Round(time.Millisecond), first.Actions)
	switch {
	case first.State == deploy.StateReady:
		if unhealthy {
			t.Errorf("deployed healthy, although listed as unhealthy on kwok (%s): drop it from unhealthyOnKwok", why)
		}
	case unhealthy && first.Count(apply.ActionFail) == 0:
		t.Logf("not healthy, as expected on kwok (%s): %v", why, first.Err)
	default:
		for _, ch := range first.Changes {
			if ch.Action == apply.ActionFail {
				t.Errorf("%s: %s", ch.Object, ch.Error)
			}
		}
		t.Fatalf("first deploy: %s: %v", first.State, first.Err)
	}

	second := e.d.Deploy(ctx, []*deploy.App{a}, opts).Apps[0]
	if second.Wrote() {
		t.Errorf("the second deploy wrote: %v", second.Actions)
		for _, ch := range second.Changes {
			if ch.Action != apply.ActionUnchanged {
				t.Errorf("  %s: %s %s", ch.Object, ch.Action, ch.Reason)
			}
		}
	}
	if !unhealthy && second.State != deploy.StateReady {
		t.Errorf("second deploy: %s: %v", second.State, second.Err)
	}

	stripped, err := deploy.StripIgnoredFields(objs)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := e.eng.Plan(ctx, stripped, apply.PlanOptions{App: app, Namespace: ns, Prune: true})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, ch := range plan.Changes {
		if ch.Action != apply.ActionUnchanged {
			t.Errorf("plan after deploy: %s: %s %s\n%s", ch.Object, ch.Action, ch.Reason, ch.Diff)
		}
	}

	removed := e.d.Remove(ctx, a, opts)
	if removed.State != deploy.StateReady {
		t.Fatalf("uninstall: %s: %v", removed.State, removed.Err)
	}
	e.checkUninstalled(ctx, t, objs)
}

// checkUninstalled reads every rendered object back from the cluster: what
// helm uninstall keeps must exist, the rest must be gone.
func (e *mirrorDeployEnv) checkUninstalled(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	e.mapper.Reset()
	kept, deleted := 0, 0
	for _, o := range objs {
		ann := o.GetAnnotations()
		ref := apply.RefOf(o)
		if _, hook := ann[AnnotationHookEvents]; hook {
			// Hooks are not release resources: helm leaves them to their
			// delete policy, and so does berth.
			continue
		}
		live, err := e.get(ctx, o)
		switch want := helmKeeps(o); {
		case err != nil && !apierrors.IsNotFound(err):
			t.Errorf("%s: reading it after uninstall: %v", ref, err)
		case want != "" && err != nil:
			t.Errorf("%s: deleted at uninstall, but %s", ref, want)
		case want != "":
			kept++
		case err == nil && live.GetDeletionTimestamp() == nil:
			t.Errorf("%s: still there after uninstall; helm deletes it", ref)
		default:
			deleted++
		}
	}
	if deleted == 0 {
		t.Error("uninstall deleted nothing")
	}
	t.Logf("uninstall: %d objects deleted, %d kept", deleted, kept)
}

// helmKeeps says why helm uninstall (or berth, for data) keeps an object, ""
// when it deletes it.
func helmKeeps(o *unstructured.Unstructured) string {
	ann := o.GetAnnotations()
	switch {
	case ann[AnnotationChartCRD] == "true":
		return "helm never deletes the CRDs of a chart's crds/ folder"
	case ann["helm.sh/resource-policy"] == "keep":
		return "it is annotated helm.sh/resource-policy: keep"
	case o.GetKind() == "PersistentVolumeClaim" && o.GroupVersionKind().Group == "":
		return "berth keeps volume claims (data) unless annotated otherwise"
	}
	return ""
}

func (e *mirrorDeployEnv) get(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := o.GroupVersionKind()
	m, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			// Its CRD is gone with the app.
			return nil, apierrors.NewNotFound(gvk.GroupVersion().WithResource(gvk.Kind).GroupResource(), o.GetName())
		}
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return e.dyn.Resource(m.Resource).Namespace(o.GetNamespace()).Get(ctx, o.GetName(), metav1.GetOptions{})
	}
	return e.dyn.Resource(m.Resource).Get(ctx, o.GetName(), metav1.GetOptions{})
}

// cleanupClusterScoped deletes, when the test ends, the cluster-scoped
// objects the app kept at uninstall that it created: the namespace takes
// the namespaced ones. A CRD that existed before, or that another app has
// applied since (its label names that app: other test binaries deploy the
// same charts), is left alone.
func (e *mirrorDeployEnv) cleanupClusterScoped(t *testing.T, app string, objs []*unstructured.Unstructured) {
	existed := map[string]bool{}
	for _, o := range objs {
		if o.GetNamespace() == "" {
			_, err := e.get(context.Background(), o)
			existed[apply.RefOf(o).String()] = err == nil
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		e.mapper.Reset()
		for _, o := range objs {
			ref := apply.RefOf(o)
			if o.GetNamespace() != "" || existed[ref.String()] {
				continue
			}
			live, err := e.get(ctx, o)
			if err != nil || live.GetLabels()[LabelApp] != app {
				continue
			}
			gvk := o.GroupVersionKind()
			m, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				continue
			}
			uid := live.GetUID()
			err = e.dyn.Resource(m.Resource).Delete(ctx, o.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				t.Errorf("deleting %s: %v", ref, err)
			}
		}
	})
}

// uniqueApp returns an app (release) name no other test uses, short enough
// for the names charts derive from it.
func uniqueApp(t *testing.T) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "m" + hex.EncodeToString(b[:])
}

// TestDeployHookOfBothEvents deploys testdata/helm/hookboth: a
// ServiceAccount hook of pre- and post-install events, deleted when the
// hooks succeed, that a pre-install and a post-install Job both run as. It
// must be there again for the second Job, as in Helm (kube-prometheus-stack's
// admission webhook Jobs failed without it), and a second deploy must
// write nothing.
func TestDeployHookOfBothEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local cluster")
	}
	cfg := testcluster.Config(t)
	eng, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := deploy.New(eng, dyn)
	ns := testcluster.Namespace(t)
	res, err := renderTestdata(t, "hookboth", func(in *Input) { in.Namespace = ns })
	if err != nil {
		t.Fatal(err)
	}
	a := &deploy.App{Name: "demo", Namespace: ns, Objects: phased(res)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opts := deploy.Options{Timeout: 2 * time.Minute}
	first := d.Deploy(ctx, []*deploy.App{a}, opts).Apps[0]
	if first.State != deploy.StateReady {
		t.Fatalf("first deploy: %s: %v", first.State, first.Err)
	}
	second := d.Deploy(ctx, []*deploy.App{a}, opts).Apps[0]
	if second.State != deploy.StateReady || second.Wrote() {
		t.Errorf("second deploy: %s, %v: %v", second.State, second.Actions, second.Err)
	}
}
