package apply

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/testcluster"
)

var jobGVR = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}

// hookJob is a Job hook of events, with extra annotations and pod template
// image; the test cluster's job controller and kwok run it to completion.
func hookJob(name, events, image string, annotations ...string) string {
	ann := "    " + AnnotationHookEvents + ": " + events + "\n"
	for i := 0; i+1 < len(annotations); i += 2 {
		ann += "    " + annotations[i] + ": " + quoteYAML(annotations[i+1]) + "\n"
	}
	return `---
apiVersion: batch/v1
kind: Job
metadata:
  name: ` + name + `
  annotations:
` + ann + `spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: run, image: ` + image + `}]
`
}

func quoteYAML(s string) string { return `"` + s + `"` }

const mainConfigMap = `---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
`

// hookActions returns each hook's action and reason.
func hookActions(res *Result) map[string]string {
	out := map[string]string{}
	for _, c := range res.Changes {
		out[c.Object.ShortString()] = string(c.Action) + ": " + c.Reason
	}
	return out
}

func TestHooksRunAtTheirEventsOnlyAndOnlyWhenChanged(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	set := func(upgradeImage string) []*unstructured.Unstructured {
		return objects(t, ns, mainConfigMap+
			hookJob("install", HookPreInstall, "busybox:1.36")+
			hookJob("upgrade", HookPreUpgrade, upgradeImage)+
			hookJob("both", HookPreInstall+","+HookPreUpgrade, "busybox:1.36"))
	}
	opts := applyOpts("hooks", ns)

	// Install: the install hooks run, the upgrade hook does not.
	res := mustApply(t, e, set("busybox:1.36"), opts)
	if res.Operation != OperationInstall {
		t.Errorf("first apply: operation %q, want install", res.Operation)
	}
	if _, ok := get(t, jobGVR, ns, "install"); !ok {
		t.Errorf("pre-install hook job/install did not run: %v", hookActions(res))
	}
	if _, ok := get(t, jobGVR, ns, "both"); !ok {
		t.Errorf("pre-install,pre-upgrade hook job/both did not run: %v", hookActions(res))
	}
	if _, ok := get(t, jobGVR, ns, "upgrade"); ok {
		t.Errorf("pre-upgrade hook job/upgrade ran at install: %v", hookActions(res))
	}

	// First upgrade: the upgrade hooks run, as a whole, the install hook
	// does not.
	res = mustApply(t, e, set("busybox:1.36"), opts)
	if res.Operation != OperationUpgrade {
		t.Errorf("second apply: operation %q, want upgrade", res.Operation)
	}
	if _, ok := get(t, jobGVR, ns, "upgrade"); !ok {
		t.Errorf("pre-upgrade hook job/upgrade did not run at upgrade: %v", hookActions(res))
	}
	if a := actions(res)["job/install"]; a != ActionUnchanged {
		t.Errorf("pre-install hook at upgrade: %s, want unchanged: %v", a, hookActions(res))
	}

	// Nothing changed: no hook runs again, nothing is written.
	c.reset()
	res = mustApply(t, e, set("busybox:1.36"), opts)
	if m := c.mutating(); len(m) != 0 {
		t.Errorf("unchanged upgrade made %d write(s), want 0:\n%s\n%v", len(m), strings.Join(m, "\n"), hookActions(res))
	}

	// The upgrade hook's pod template changes: the Job is re-created (delete
	// then create), never refused as immutable.
	before, _ := get(t, jobGVR, ns, "upgrade")
	res = mustApply(t, e, set("busybox:1.37"), opts)
	after, ok := get(t, jobGVR, ns, "upgrade")
	if !ok || after.GetUID() == before.GetUID() {
		t.Fatalf("changed hook job/upgrade was not re-created: %v", hookActions(res))
	}
	img, _, _ := unstructured.NestedSlice(after.Object, "spec", "template", "spec", "containers")
	if !strings.Contains(strings.TrimSpace(toString(img)), "busybox:1.37") {
		t.Errorf("re-created job/upgrade runs %v, want busybox:1.37", img)
	}

	// Hooks gone from the manifests are not pruned (Helm does not own
	// them as release resources): kept once, and forgotten.
	opts.Prune = true
	res = mustApply(t, e, objects(t, ns, mainConfigMap), opts)
	for _, name := range []string{"install", "both", "upgrade"} {
		if a := actions(res)["job/"+name]; a != ActionKeep {
			t.Errorf("pruning hook job/%s: %s, want keep: %v", name, a, hookActions(res))
		}
		if _, ok := get(t, jobGVR, ns, name); !ok {
			t.Errorf("hook job/%s was pruned", name)
		}
	}
	res = mustApply(t, e, objects(t, ns, mainConfigMap), opts)
	if len(res.Changes) != 1 {
		t.Errorf("after pruning, the hooks are still in the inventory: %v", hookActions(res))
	}
}

func toString(v any) string {
	b, _ := jsonMarshal(v)
	return string(b)
}

func TestHookJobThatDeletesItselfSucceeds(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	docs := mainConfigMap + strings.Replace(hookJob("selfclean", HookPostInstall+","+HookPostUpgrade, "busybox:1.36"),
		"  backoffLimit: 0\n", "  backoffLimit: 0\n  ttlSecondsAfterFinished: 0\n", 1)
	opts := applyOpts("ttl", ns)
	opts.Wait = true
	res := mustApply(t, e, objects(t, ns, docs), opts)
	if a := actions(res)["job/selfclean"]; a != ActionCreate {
		t.Fatalf("job/selfclean: %s, want create: %v", a, hookActions(res))
	}
	testcluster.WaitFor(t, testTimeout, func(ctx context.Context) (bool, string, error) {
		_, ok := get(t, jobGVR, ns, "selfclean")
		return !ok, "job/selfclean still exists", nil
	})
	// It succeeded and is gone: the next apply neither waits for it nor runs it again.
	c.reset()
	res = mustApply(t, e, objects(t, ns, docs), opts)
	if m := c.mutating(); len(m) != 0 {
		t.Errorf("re-apply made %d write(s), want 0:\n%s\n%v", len(m), strings.Join(m, "\n"), hookActions(res))
	}
	if _, ok := get(t, jobGVR, ns, "selfclean"); ok {
		t.Error("job/selfclean ran again")
	}
}

func TestHookDeletePoliciesAndWeights(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	docs := mainConfigMap + `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: hook-input
  annotations:
    ` + AnnotationHookEvents + `: pre-install
    ` + AnnotationHookWeight + `: "-5"
    ` + AnnotationHookDeletePolicy + `: hook-succeeded
data: {x: "1"}
` + hookJob("first", HookPreInstall, "busybox:1.36", AnnotationHookWeight, "-1", AnnotationHookDeletePolicy, "hook-succeeded") +
		hookJob("second", HookPreInstall, "busybox:1.36", AnnotationHookWeight, "3")
	var mu sync.Mutex
	var order []string
	opts := applyOpts("weights", ns)
	opts.Events = func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Type == EventApplied {
			order = append(order, ev.Object.ShortString())
		}
	}
	res := mustApply(t, e, objects(t, ns, docs), opts)
	want := []string{"configmap/hook-input", "job/first", "job/second", "configmap/settings"}
	if !slices.Equal(order, want) {
		t.Errorf("applied in order %v, want %v", order, want)
	}
	if _, ok := get(t, cmGVR, ns, "hook-input"); ok {
		t.Errorf("configmap/hook-input (hook-succeeded) still exists after its hooks succeeded: %v", hookActions(res))
	}
	if _, ok := get(t, jobGVR, ns, "first"); ok {
		t.Errorf("job/first (hook-succeeded) still exists: %v", hookActions(res))
	}
	if _, ok := get(t, jobGVR, ns, "second"); !ok {
		t.Errorf("job/second (before-hook-creation) was deleted: %v", hookActions(res))
	}
}

func TestFailedPreHookStopsTheApply(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	// Never scheduled, past its deadline at once: the Job fails.
	failing := strings.Replace(hookJob("migrate", HookPreInstall, "busybox:1.36", AnnotationHookDeletePolicy, "hook-failed"),
		"  backoffLimit: 0\n", "  backoffLimit: 0\n  activeDeadlineSeconds: 1\n", 1)
	failing = strings.Replace(failing, "      restartPolicy: Never\n", "      restartPolicy: Never\n      nodeSelector: {no-such-node: \"true\"}\n", 1)
	res, err := e.Apply(context.Background(), objects(t, ns, mainConfigMap+failing), applyOpts("failing", ns))
	var oe *ObjectsError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "job/migrate") {
		t.Fatalf("apply with a failing pre-install hook: %v, want an ObjectsError naming job/migrate", err)
	}
	if a := actions(res)["configmap/settings"]; a != ActionSkip {
		t.Errorf("configmap/settings after a failed pre-install hook: %s, want skip", a)
	}
	if _, ok := get(t, cmGVR, ns, "settings"); ok {
		t.Error("configmap/settings was applied although the pre-install hook failed")
	}
	testcluster.WaitFor(t, testTimeout, func(ctx context.Context) (bool, string, error) {
		_, ok := get(t, jobGVR, ns, "migrate")
		return !ok, "job/migrate (hook-failed) still exists", nil
	})
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
