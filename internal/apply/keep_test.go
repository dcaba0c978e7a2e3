package apply

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"berth.dev/berth/internal/testcluster"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// keptCRD is a CRD as render marks those of a chart's crds/ folder.
func keptCRD(group string) string {
	return `---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.` + group + `
  annotations: {` + AnnotationChartCRD + `: "true"}
spec:
  group: ` + group + `
  scope: Namespaced
  names: {kind: Gadget, plural: gadgets, singular: gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
}

func TestKeepPolicyAndChartCRDsAreNeverDeleted(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	group := testcluster.UniqueName(t, 30) + ".test.berth.dev"
	t.Cleanup(func() {
		_ = dynClient(t).Resource(crdGVR).Delete(context.Background(), "gadgets."+group, metaDeleteOptions())
	})
	docs := keptCRD(group) + `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: precious
  annotations: {helm.sh/resource-policy: keep}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
`
	mustApply(t, e, objects(t, ns, docs), applyOpts("keep", ns))

	// Pruning: gone from the manifests, the plain one is deleted, the others kept.
	opts := applyOpts("keep", ns)
	opts.Prune = true
	res := mustApply(t, e, objects(t, ns, `
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
`), opts)
	got := actions(res)
	if got["configmap/plain"] != ActionDelete || got["configmap/precious"] != ActionKeep || got["customresourcedefinition/gadgets."+group] != ActionKeep {
		t.Errorf("prune actions: %v, want plain deleted, precious and the chart CRD kept", hookActions(res))
	}
	for _, c := range res.Changes {
		if c.Action == ActionKeep && !strings.Contains(c.Reason, "never deleted") {
			t.Errorf("%s kept with reason %q: it should say why", c.Object, c.Reason)
		}
	}
	if _, ok := get(t, cmGVR, ns, "precious"); !ok {
		t.Error("configmap/precious (resource-policy keep) was pruned")
	}
	if _, ok := get(t, crdGVR, "", "gadgets."+group); !ok {
		t.Error("the chart's CRD was pruned")
	}

	// Delete: the same rules, whatever the inventory still holds.
	mustApply(t, e, objects(t, ns, docs), applyOpts("keep", ns))
	del, err := e.Delete(context.Background(), DeleteOptions{App: "keep", Namespace: ns, Wait: true, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	got = actions(del)
	if got["configmap/precious"] != ActionKeep || got["customresourcedefinition/gadgets."+group] != ActionKeep || got["configmap/plain"] != ActionDelete {
		t.Errorf("delete actions: %v", hookActions(del))
	}
	if _, ok := get(t, cmGVR, ns, "precious"); !ok {
		t.Error("configmap/precious (resource-policy keep) was deleted by Delete")
	}
	if _, ok := get(t, crdGVR, "", "gadgets."+group); !ok {
		t.Error("the chart's CRD was deleted by Delete")
	}
	if _, err := e.Delete(context.Background(), DeleteOptions{App: "keep", Namespace: ns}); !errors.Is(err, ErrNoInventory) {
		t.Errorf("second delete: %v, want ErrNoInventory", err)
	}
}

func TestNamespaceHoldingKeptObjectsIsKept(t *testing.T) {
	ns := testcluster.Namespace(t)
	own := testcluster.UniqueName(t, 40)
	t.Cleanup(func() {
		_ = dynClient(t).Resource(nsGVR).Delete(context.Background(), own, metaDeleteOptions())
	})
	e, _ := newEngine(t)
	mustApply(t, e, objects(t, own, `
apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: precious
  namespace: %[1]s
  annotations: {helm.sh/resource-policy: keep}
`), applyOpts("keepns", ns))
	res, err := e.Delete(context.Background(), DeleteOptions{App: "keepns", Namespace: ns, Wait: true, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(res)["namespace/"+own]; a != ActionKeep {
		t.Errorf("namespace holding a kept object: %s, want keep: %v", a, hookActions(res))
	}
	if _, ok := get(t, cmGVR, own, "precious"); !ok {
		t.Error("configmap/precious was deleted with its namespace")
	}
}

func TestDeleteRunsDeleteHooks(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	hooks := hookJob("pre-cleanup", HookPreDelete, "busybox:1.36", AnnotationHookDeletePolicy, "hook-succeeded") +
		hookJob("post-cleanup", HookPostDelete, "busybox:1.36")
	objs := objects(t, ns, mainConfigMap+hooks)
	res := mustApply(t, e, objs, applyOpts("delhooks", ns))
	for _, name := range []string{"pre-cleanup", "post-cleanup"} {
		if _, ok := get(t, jobGVR, ns, name); ok {
			t.Errorf("delete hook job/%s ran at install: %v", name, hookActions(res))
		}
	}
	var order []string
	del, err := e.Delete(context.Background(), DeleteOptions{App: "delhooks", Namespace: ns, Wait: true, Timeout: testTimeout, Hooks: objs,
		Events: func(ev Event) {
			if ev.Type == EventApplied || (ev.Type == EventDeleted && ev.Message == "") {
				order = append(order, string(ev.Type)+" "+ev.Object.ShortString())
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := "applied job/pre-cleanup,deleted configmap/settings,applied job/post-cleanup"
	if got := strings.Join(order, ","); got != want {
		t.Errorf("delete order: %s, want %s (%v)", got, want, hookActions(del))
	}
	if _, ok := get(t, jobGVR, ns, "pre-cleanup"); ok {
		t.Error("job/pre-cleanup (hook-succeeded) still exists")
	}
	if _, ok := get(t, jobGVR, ns, "post-cleanup"); !ok {
		t.Error("job/post-cleanup did not run, or was deleted although it has no hook-succeeded policy")
	}
}

func TestChangedJobIsRecreatedNotRefused(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	job := func(image string) string {
		return `
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: run, image: ` + image + `}]
`
	}
	mustApply(t, e, objects(t, ns, job("busybox:1.36")), applyOpts("jobs", ns))
	before, _ := get(t, jobGVR, ns, "batch")
	plan, err := e.Plan(context.Background(), objects(t, ns, job("busybox:1.37")), PlanOptions{App: "jobs", Namespace: ns})
	if err != nil {
		t.Fatalf("plan of a changed Job: %v", err)
	}
	if c := plan.Changes[0]; c.Action != ActionUpdate || !strings.Contains(c.Reason, "re-created") {
		t.Errorf("plan of a changed Job: %s %q, want update, re-created", c.Action, c.Reason)
	}
	res := mustApply(t, e, objects(t, ns, job("busybox:1.37")), applyOpts("jobs", ns))
	after, _ := get(t, jobGVR, ns, "batch")
	if after == nil || after.GetUID() == before.GetUID() {
		t.Fatalf("job/batch was not re-created: %v", hookActions(res))
	}
	if c := res.Changes[0]; !strings.Contains(c.Reason, "re-created") {
		t.Errorf("reason %q does not say the Job was re-created", c.Reason)
	}
}

func metaDeleteOptions() metav1.DeleteOptions { return metav1.DeleteOptions{} }

func TestAPIMessageQuotesTheReasonWithoutGoValues(t *testing.T) {
	type podTemplate struct {
		Labels map[string]string
		Image  string
	}
	err := apierrors.NewInvalid(schema.GroupKind{Group: "batch", Kind: "Job"}, "migrate", field.ErrorList{
		field.Invalid(field.NewPath("spec", "template"), podTemplate{Labels: map[string]string{"a": "b"}, Image: "busybox"}, "field is immutable"),
		field.Invalid(field.NewPath("metadata", "name"), "Bad", "must be lowercase"),
	})
	got := apiMessage(err)
	want := `Job.batch "migrate" is invalid: spec.template: field is immutable; metadata.name: Invalid value: "Bad": must be lowercase`
	if got != want {
		t.Errorf("apiMessage:\n got %s\nwant %s", got, want)
	}
}
