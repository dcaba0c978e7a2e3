package render

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"berth.dev/berth/internal/testcluster"
	testcatalog "berth.dev/berth/test/catalog"
)

// TestMain runs the tests against the fixture catalog (test/catalog) as the
// built-in one; tests of the real built-in catalog open it with catalog.Embedded.
func TestMain(m *testing.M) {
	testcatalog.Use()
	os.Exit(testcluster.Main(m))
}

// TestBuiltinDryRun renders every version of every built-in package, with its
// shared dependencies, creates the CRDs they ship for real, and sends every
// other object to the real API server as a server-side dry-run apply, so the
// server validates each one against its schema.
func TestBuiltinDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local cluster")
	}
	cfg := testcluster.Config(t)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))

	// The check must be able to fail: a Deployment without a selector is invalid.
	t.Run("rejects an invalid object", func(t *testing.T) {
		ns := testcluster.Namespace(t)
		bad, err := decodeObjects("bad.yaml", []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec: {template: {spec: {containers: [{name: c, image: x}]}}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = dyn.Resource(appsv1.SchemeGroupVersion.WithResource("deployments")).Namespace(ns).Apply(context.Background(), "bad", bad[0],
			metav1.ApplyOptions{FieldManager: "berth-render-test", DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			t.Fatal("the API server accepted a Deployment without a selector in a dry-run")
		}
	})

	// The CRDs this test created are deleted when every package has been
	// checked, leaving the shared cluster as it was; packages share them, so
	// not earlier. Other test binaries deploy the same packages at the same
	// time: a CRD that existed before, or that berth applied since, is theirs.
	crds := map[string]bool{}
	t.Cleanup(func() {
		for name := range crds {
			cur, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			if slices.ContainsFunc(cur.ManagedFields, func(f metav1.ManagedFieldsEntry) bool { return f.Manager == "berth" }) {
				continue
			}
			uid := cur.UID
			err = ext.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				t.Errorf("deleting CRD %s: %v", name, err)
			}
		}
	})
	existed := map[string]bool{}

	set := builtinSet()
	u := builtinUniverse(t, set)
	for _, bv := range builtinVersions(t, set) {
		t.Run(bv.name+"@"+bv.version, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ns := testcluster.Namespace(t)
			res := renderBuiltin(t, set, u, bv, ns, nil)
			var objs []Object
			for _, d := range res.Shared {
				// A shared dependency is an app of its own; render it here too,
				// so the CRDs the package needs exist.
				shared := renderBuiltin(t, set, u, builtinVersion{d.Package, d.Version}, ns, nil)
				for _, p := range shared.Parts {
					objs = append(objs, p.Result.Objects...)
				}
			}
			for _, p := range res.Parts {
				objs = append(objs, p.Result.Objects...)
			}
			created := 0
			for _, o := range objs {
				if o.Stage != StageCRDs {
					continue
				}
				if _, ok := crds[o.Object.GetName()]; !ok && !existed[o.Object.GetName()] {
					_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, o.Object.GetName(), metav1.GetOptions{})
					existed[o.Object.GetName()] = err == nil
				}
				_, err := dyn.Resource(apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")).
					Apply(ctx, o.Object.GetName(), o.Object, metav1.ApplyOptions{FieldManager: "berth-render-test", Force: true})
				if err != nil {
					t.Fatalf("creating %s (%s): %v", o.ID(), o.Source, err)
				}
				waitEstablished(ctx, t, ext, o.Object.GetName())
				if !existed[o.Object.GetName()] {
					crds[o.Object.GetName()] = true
				}
				created++
			}
			if created > 0 {
				mapper.Reset()
			}
			checked := 0
			for _, o := range objs {
				if o.Stage == StageCRDs {
					continue
				}
				gvk := o.Object.GroupVersionKind()
				m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Errorf("%s (%s): the API server does not serve %s: %v", o.ID(), o.Source, gvk, err)
					continue
				}
				var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
				if m.Scope.Name() == meta.RESTScopeNameNamespace {
					if o.Object.GetNamespace() != ns {
						t.Errorf("%s (%s): namespace %q, want the app's namespace %q", o.ID(), o.Source, o.Object.GetNamespace(), ns)
						continue
					}
					ri = dyn.Resource(m.Resource).Namespace(ns)
				} else if o.Object.GetNamespace() != "" {
					t.Errorf("%s (%s): a cluster-scoped object has namespace %q", o.ID(), o.Source, o.Object.GetNamespace())
				}
				_, err = ri.Apply(ctx, o.Object.GetName(), o.Object, metav1.ApplyOptions{FieldManager: "berth-render-test", Force: true, DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					t.Errorf("%s (%s): the API server rejects it: %v", o.ID(), o.Source, err)
				}
				checked++
			}
			if checked == 0 {
				t.Fatal("no objects were checked")
			}
			t.Logf("%d CRDs created, %d objects accepted by server-side dry-run", created, checked)
		})
	}
}

func waitEstablished(ctx context.Context, t *testing.T, ext apiextensions.Interface, name string) {
	t.Helper()
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s never became established: %v", name, err)
	}
}

// TestRenderAppSeesClusterAPIVersions renders with the API server's
// discovery: charts see what it serves, kinds included, which the built-in
// list (group/versions only) lacks, plus the versions given besides.
func TestRenderAppSeesClusterAPIVersions(t *testing.T) {
	dc, err := discovery.NewDiscoveryClientForConfig(testcluster.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := apiVersions(dc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"v1", "apps/v1", "apps/v1/Deployment", "apiextensions.k8s.io/v1/CustomResourceDefinition"} {
		if !slices.Contains(got, want) {
			t.Errorf("the cluster's API versions lack %s", want)
		}
	}
	builtin, err := apiVersions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(builtin, "apps/v1/Deployment") || !slices.Contains(builtin, "apps/v1") {
		t.Errorf("without a cluster, want helm's built-in group/versions, got %v", builtin)
	}
}
