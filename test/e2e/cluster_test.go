// Package e2e holds end-to-end tests that run against the shared local cluster.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/testcluster"
	testcatalog "berth.dev/berth/test/catalog"
)

// TestMain runs the tests against the fixture catalog (test/catalog) as the
// built-in one; tests of the real built-in catalog open it with catalog.Embedded.
func TestMain(m *testing.M) {
	testcatalog.Use()
	os.Exit(testcluster.Main(m))
}

func TestServerSideApplyDeploymentBecomesAvailableOnKwokNodes(t *testing.T) {
	ns := testcluster.Namespace(t)
	cs := testcluster.Clientset(t)
	ctx := context.Background()

	labels := map[string]string{"app": "web"}
	deploy := appsv1ac.Deployment("web", ns).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(3).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(labels).
				WithSpec(corev1ac.PodSpec().WithContainers(
					corev1ac.Container().WithName("web").WithImage("nginx:1.27")))))
	applied, err := cs.AppsV1().Deployments(ns).Apply(ctx, deploy, metav1.ApplyOptions{FieldManager: "berth-test"})
	if err != nil {
		t.Fatalf("server-side apply: %v", err)
	}
	var owner *metav1.ManagedFieldsEntry
	for i, mf := range applied.ManagedFields {
		if mf.Manager == "berth-test" {
			owner = &applied.ManagedFields[i]
		}
	}
	if owner == nil || owner.Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managedFields has no Apply entry for berth-test: %+v", applied.ManagedFields)
	}

	testcluster.WaitFor(t, 90*time.Second, func(ctx context.Context) (bool, string, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.AvailableReplicas == 3 {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d/3 available, conditions %+v", d.Status.AvailableReplicas, d.Status.Conditions), nil
	})

	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Fatalf("got %d pods, want 3", len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s is %s, want Running", p.Name, p.Status.Phase)
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s is on node %q: %v", p.Name, p.Spec.NodeName, err)
		}
		if node.Annotations["kwok.x-k8s.io/node"] != "fake" {
			t.Errorf("pod %s runs on %s, which kwok does not manage", p.Name, node.Name)
		}
	}
}

func TestCRDBecomesEstablishedAndServesCustomResources(t *testing.T) {
	cfg := testcluster.Config(t)
	ns := testcluster.Namespace(t)
	ctx := context.Background()
	ext, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A group of its own, so that runs never collide on a cluster-scoped CRD.
	group := testcluster.UniqueName(t, 30) + ".test.berth.dev"
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Required: []string{"size"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"size": {Type: "integer", Minimum: ptr(1.0)},
						}},
					},
				}},
			}},
		},
	}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = ext.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
	})
	testcluster.WaitFor(t, 30*time.Second, func(ctx context.Context) (bool, string, error) {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("conditions %+v", got.Status.Conditions), nil
	})

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	widgets := dyn.Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}).Namespace(ns)
	widget := func(size int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": group + "/v1", "kind": "Widget",
			"metadata": map[string]any{"name": "w1"},
			"spec":     map[string]any{"size": size},
		}}
	}
	// The schema is enforced: the API server owns validation, not berth.
	if _, err := widgets.Create(ctx, widget(0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("creating a widget with size 0: got %v, want Invalid", err)
	}
	if _, err := widgets.Create(ctx, widget(3), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a widget: %v", err)
	}
	got, err := widgets.Get(ctx, "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); size != 3 {
		t.Fatalf("widget spec.size = %d, want 3", size)
	}
}

func TestGarbageCollectorDeletesDependents(t *testing.T) {
	ns := testcluster.Namespace(t)
	cs := testcluster.Clientset(t)
	ctx := context.Background()
	owner, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name:            "dependent",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 60*time.Second, func(ctx context.Context) (bool, string, error) {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "dependent", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		return false, "dependent still exists", err
	})
}

func ptr[T any](v T) *T { return &v }

func TestStatefulSetVolumeClaimsBindThroughTheDefaultStorageClass(t *testing.T) {
	ns := testcluster.Namespace(t)
	cs := testcluster.Clientset(t)
	ctx := context.Background()
	labels := map[string]string{"app": "db"}
	sts := appsv1ac.StatefulSet("db", ns).WithSpec(appsv1ac.StatefulSetSpec().
		WithReplicas(2).
		WithServiceName("db").
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).WithSpec(corev1ac.PodSpec().WithContainers(
			corev1ac.Container().WithName("db").WithImage("postgres:16").
				WithVolumeMounts(corev1ac.VolumeMount().WithName("data").WithMountPath("/var/lib/postgresql/data"))))).
		WithVolumeClaimTemplates(corev1ac.PersistentVolumeClaim("data", "").WithSpec(corev1ac.PersistentVolumeClaimSpec().
			WithAccessModes(corev1.ReadWriteOnce).
			WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")})))))
	if _, err := cs.AppsV1().StatefulSets(ns).Apply(ctx, sts, metav1.ApplyOptions{FieldManager: "berth-test"}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 90*time.Second, func(ctx context.Context) (bool, string, error) {
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		pvcs, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		bound := 0
		for _, p := range pvcs.Items {
			if p.Status.Phase == corev1.ClaimBound {
				bound++
			}
		}
		return s.Status.ReadyReplicas == 2 && bound == 2, fmt.Sprintf("%d/2 ready, %d/%d claims bound", s.Status.ReadyReplicas, bound, len(pvcs.Items)), nil
	})
}
