package apply

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"berth.dev/berth/internal/testcluster"
)

const webDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
`

func TestApplyDetectsAndRepairsDrift(t *testing.T) {
	tests := map[string]struct {
		drift  func(t *testing.T, ns string)
		object string // the drifted object, as ShortString
		check  func(t *testing.T, ns string)
	}{
		"deleted": {
			drift: func(t *testing.T, ns string) {
				err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Delete(context.Background(), "settings", metav1.DeleteOptions{})
				if err != nil {
					t.Fatal(err)
				}
			},
			object: "configmap/settings",
			check: func(t *testing.T, ns string) {
				if _, ok := get(t, cmGVR, ns, "settings"); !ok {
					t.Error("configmap/settings was not re-created")
				}
			},
		},
		"scaled like kubectl scale": {
			drift: func(t *testing.T, ns string) {
				_, err := testcluster.Clientset(t).AppsV1().Deployments(ns).UpdateScale(context.Background(), "web",
					&autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 5}},
					metav1.UpdateOptions{FieldManager: "kubectl-scale"})
				if err != nil {
					t.Fatal(err)
				}
			},
			object: "deployment/web",
			check: func(t *testing.T, ns string) {
				d, _ := get(t, deployGVR, ns, "web")
				if n, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); n != 2 {
					t.Errorf("deployment/web has %d replicas after the repair, want 2", n)
				}
			},
		},
		"edited like kubectl edit": {
			drift: func(t *testing.T, ns string) {
				_, err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Patch(context.Background(), "settings", types.MergePatchType,
					[]byte(`{"data":{"mode":"slow"}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"})
				if err != nil {
					t.Fatal(err)
				}
			},
			object: "configmap/settings",
			check: func(t *testing.T, ns string) {
				cm, _ := get(t, cmGVR, ns, "settings")
				if v, _, _ := unstructured.NestedString(cm.Object, "data", "mode"); v != "fast" {
					t.Errorf("configmap/settings data.mode = %q after the repair, want fast", v)
				}
			},
		},
		"secret data edited": {
			drift: func(t *testing.T, ns string) {
				_, err := testcluster.Clientset(t).CoreV1().Secrets(ns).Patch(context.Background(), "creds", types.MergePatchType,
					[]byte(`{"data":{"password":"b3RoZXI="}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"})
				if err != nil {
					t.Fatal(err)
				}
			},
			object: "secret/creds",
			check: func(t *testing.T, ns string) {
				s, err := testcluster.Clientset(t).CoreV1().Secrets(ns).Get(context.Background(), "creds", metav1.GetOptions{})
				if err != nil || string(s.Data["password"]) != "hunter2" {
					t.Errorf("secret/creds password = %q, %v after the repair, want hunter2", s.Data["password"], err)
				}
			},
		},
		"label removed": {
			drift: func(t *testing.T, ns string) {
				_, err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Patch(context.Background(), "settings", types.MergePatchType,
					[]byte(`{"metadata":{"labels":{"berth.dev/app":null}}}`), metav1.PatchOptions{FieldManager: "kubectl-label"})
				if err != nil {
					t.Fatal(err)
				}
			},
			object: "configmap/settings",
			check: func(t *testing.T, ns string) {
				cm, _ := get(t, cmGVR, ns, "settings")
				if cm.GetLabels()[LabelApp] != "drift" {
					t.Errorf("configmap/settings labels %v after the repair, want %s=drift", cm.GetLabels(), LabelApp)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := testcluster.Namespace(t)
			e, c := newEngine(t)
			objs := objects(t, ns, webDeployment)
			mustApply(t, e, objs, applyOpts("drift", ns))
			tc.drift(t, ns)

			plan, err := e.Plan(context.Background(), objs, PlanOptions{App: "drift", Namespace: ns})
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			for _, ch := range plan.Changes {
				drifted := ch.Object.ShortString() == tc.object
				if drifted != (ch.Action != ActionUnchanged) {
					t.Errorf("plan: %s %s (%s), want only %s changed", ch.Object.ShortString(), ch.Action, ch.Reason, tc.object)
				}
				if drifted && !strings.HasPrefix(ch.Reason, "drift") {
					t.Errorf("plan: %s reason %q, want it to say drift", ch.Object.ShortString(), ch.Reason)
				}
			}

			res := mustApply(t, e, objs, applyOpts("drift", ns))
			if got := res.Count(ActionUnchanged); got != len(objs)-1 {
				t.Errorf("repairing apply: %d unchanged, want %d: %+v", got, len(objs)-1, res.Changes)
			}
			tc.check(t, ns)

			c.reset()
			res = mustApply(t, e, objs, applyOpts("drift", ns))
			if got := res.Count(ActionUnchanged); got != len(objs) {
				t.Errorf("apply after the repair: %d unchanged, want %d: %+v", got, len(objs), res.Changes)
			}
			if m := c.mutating(); len(m) != 0 {
				t.Errorf("apply after the repair sent mutating requests: %v", m)
			}
		})
	}
}

func TestApplyIgnoresDefaultsStatusAndOthersFields(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	crdObjs, err := ReadManifests(nil, "testdata/crd-and-cr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	removeCRDAfter(t, "widgets.test.berth.dev")
	objs := append(objects(t, ns, webDeployment+`
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: ClusterIP
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`), crdObjs...)
	opts := applyOpts("defaults", ns)
	opts.Wait = true
	mustApply(t, e, objs, opts)

	// What the API server, controllers and other people do that is none of berth's business:
	ctx := context.Background()
	cs := testcluster.Clientset(t)
	poll(t, testTimeout, func(ctx context.Context) (bool, string, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return d.Status.AvailableReplicas == 2 && d.Annotations["deployment.kubernetes.io/revision"] != "", "status " + d.Status.String(), nil
	})
	widgets := dynClient(t).Resource(schema.GroupVersionResource{Group: "test.berth.dev", Version: "v1", Resource: "widgets"}).Namespace(ns)
	w, err := widgets.Get(ctx, "small", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedSlice(w.Object, []any{map[string]any{"type": "Ready", "status": "True", "reason": "Done", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}}, "status", "conditions")
	if _, err := widgets.UpdateStatus(ctx, w, metav1.UpdateOptions{FieldManager: "widget-controller"}); err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Patch(ctx, "settings", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"example.com/seen-by":"auditor"}},"data":{"extra":"added by someone else"}}`), metav1.PatchOptions{FieldManager: "auditor"})
	if err != nil {
		t.Fatal(err)
	}

	c.reset()
	res := mustApply(t, e, objs, applyOpts("defaults", ns))
	want := map[string]Action{
		"deployment/web": ActionUnchanged, "configmap/settings": ActionUnchanged, "service/web": ActionUnchanged, "secret/creds": ActionUnchanged,
		"customresourcedefinition/widgets.test.berth.dev": ActionUnchanged, "widget.test.berth.dev/small": ActionUnchanged,
	}
	if diff := cmp.Diff(want, actions(res)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if m := c.mutating(); len(m) != 0 {
		t.Errorf("apply sent mutating requests: %v", m)
	}
	// Someone else's field stays: berth applies only its own.
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil || cm.Data["extra"] != "added by someone else" {
		t.Errorf("configmap/settings data = %v, %v; want the other manager's key kept", cm.Data, err)
	}
}

func TestApplyReportsConflictsAndForceTakesOwnership(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	ctx := context.Background()
	cs := testcluster.Clientset(t)
	// Another tool applied the ConfigMap first, owning data.mode.
	other := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": ns},
		"data":     map[string]any{"mode": "slow"},
	}}
	if _, err := dynClient(t).Resource(cmGVR).Namespace(ns).Apply(ctx, "settings", other, metav1.ApplyOptions{FieldManager: "helm"}); err != nil {
		t.Fatal(err)
	}
	objs := objects(t, ns, `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
`)
	res, err := e.Apply(ctx, objs, applyOpts("conflict", ns))
	if err == nil {
		t.Fatal("apply over another manager's field succeeded, want a conflict")
	}
	if !apierrors.IsConflict(err) {
		t.Errorf("err = %v, want it to wrap the API server's conflict", err)
	}
	want := []Conflict{{Field: ".data.mode", Manager: "helm"}}
	if diff := cmp.Diff(want, res.Changes[0].Conflicts, cmpIgnoreMessage); diff != "" {
		t.Errorf("conflicts (-want +got):\n%s", diff)
	}
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `.data.mode is owned by "helm"`) {
		t.Errorf("error %q should be a *ConflictError naming the field and the manager", err)
	}
	// The CLI adds the hint; in the controller's status a flag means nothing.
	if strings.Contains(err.Error(), "--force-conflicts") {
		t.Errorf("error %q names a command-line flag", err)
	}
	if cm, _ := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{}); cm.Data["mode"] != "slow" {
		t.Errorf("data.mode = %q after the conflict, want slow", cm.Data["mode"])
	}

	opts := applyOpts("conflict", ns)
	opts.ForceConflicts = true
	mustApply(t, e, objs, opts)
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil || cm.Data["mode"] != "fast" {
		t.Fatalf("data.mode = %q, %v after --force-conflicts, want fast", cm.Data["mode"], err)
	}
	for _, f := range cm.ManagedFields {
		if f.Manager == "helm" && f.FieldsV1 != nil && strings.Contains(string(f.FieldsV1.Raw), "f:mode") {
			t.Errorf("helm still owns data.mode after --force-conflicts: %s", f.FieldsV1.Raw)
		}
	}
}
