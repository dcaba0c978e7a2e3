package apply

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/testcluster"
)

func TestApplyLabelsNamespacesAndFieldManager(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	role := testcluster.UniqueName(t, 50)
	objs := objects(t, ns, `
apiVersion: v1
kind: ConfigMap
metadata:
  name: plain
  labels: {team: data}
data: {a: "1"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: `+role+`
  namespace: ignored-for-cluster-scoped
rules: []
`)
	t.Cleanup(func() {
		_ = dynClient(t).Resource(schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}).Delete(context.Background(), role, metav1.DeleteOptions{})
	})
	res := mustApply(t, e, objs, applyOpts("web", ns))
	want := map[string]Action{"configmap/plain": ActionCreate, "clusterrole/" + role: ActionCreate}
	if diff := cmp.Diff(want, actions(res)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}

	cm, ok := get(t, cmGVR, ns, "plain")
	if !ok {
		t.Fatalf("configmap/plain was not created in namespace %s (the --namespace of the apply)", ns)
	}
	wantLabels := map[string]string{"team": "data", LabelApp: "web", LabelManagedBy: "berth"}
	if diff := cmp.Diff(wantLabels, cm.GetLabels()); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if managerEntry(cm.GetManagedFields(), "berth") == nil {
		t.Errorf("no server-side apply entry of field manager berth in %v", cm.GetManagedFields())
	}
	if _, ok := get(t, schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, "", role); !ok {
		t.Errorf("cluster-scoped clusterrole/%s was not created", role)
	}
	if objs[0].GetLabels()[LabelApp] != "" {
		t.Errorf("Apply modified the caller's objects")
	}
}

func TestApplyCRDAndItsCustomResourceInOneSet(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	objs, err := ReadManifests(nil, "testdata/crd-and-cr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	removeCRDAfter(t, "widgets.test.berth.dev")
	var stages []string
	opts := applyOpts("widgets", ns)
	opts.Events = func(ev Event) {
		if ev.Type == EventStage {
			stages = append(stages, ev.Message)
		}
	}
	res := mustApply(t, e, objs, opts)
	want := map[string]Action{"customresourcedefinition/widgets.test.berth.dev": ActionCreate, "widget.test.berth.dev/small": ActionCreate}
	if diff := cmp.Diff(want, actions(res)); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"custom resource definitions (1)", "objects (1)"}, stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	w, ok := get(t, schema.GroupVersionResource{Group: "test.berth.dev", Version: "v1", Resource: "widgets"}, ns, "small")
	if !ok {
		t.Fatal("widget/small was not created")
	}
	if size, _, _ := unstructuredInt(w.Object, "spec", "size"); size != 1 {
		t.Errorf("widget/small spec.size = %d, want 1", size)
	}
}

func TestApplyIsolatesFailingObjects(t *testing.T) {
	tests := map[string]struct {
		bad     string
		wantMsg string
	}{
		"rejected by validation": {
			bad: `
apiVersion: v1
kind: Service
metadata: {name: bad-port}
spec:
  ports: [{port: 99999}]`,
			wantMsg: "spec.ports[0].port",
		},
		"unknown kind": {
			bad: `
apiVersion: nothing.berth.dev/v1
kind: Gizmo
metadata: {name: nope}`,
			wantMsg: "does not serve kind Gizmo",
		},
		"namespace that does not exist": {
			bad: `
apiVersion: v1
kind: ConfigMap
metadata: {name: lost, namespace: no-such-namespace-berth}`,
			wantMsg: "not found",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := testcluster.Namespace(t)
			e, _ := newEngine(t)
			objs := objects(t, ns, configMaps(3, "good", "v")+"\n---"+tc.bad)
			_, err := e.Apply(context.Background(), objs, applyOpts("iso", ns))
			var oe *ObjectsError
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v, want an *ObjectsError", err)
			}
			if len(oe.Failed) != 1 || !strings.Contains(oe.Failed[0].Error, tc.wantMsg) {
				t.Fatalf("failed = %+v, want one failure mentioning %q", oe.Failed, tc.wantMsg)
			}
			for i := 0; i < 3; i++ {
				name := "good-" + string(rune('0'+i))
				if _, ok := get(t, cmGVR, ns, name); !ok {
					t.Errorf("configmap/%s was not applied next to the failing object", name)
				}
			}
			// A second run with the same set does not redo the valid objects.
			res, err := e.Apply(context.Background(), objs, applyOpts("iso", ns))
			if !errors.As(err, &oe) {
				t.Fatalf("second apply: err = %v, want an *ObjectsError", err)
			}
			if got := res.Count(ActionUnchanged); got != 3 {
				t.Errorf("second apply: %d unchanged, want 3: %+v", got, res.Changes)
			}
		})
	}
}

func TestApplyUnchangedSetMakesNoWritesAndReadsInBatches(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	docs := configMaps(50, "cm", "v") + `
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
`
	mustApply(t, e, objects(t, ns, docs), applyOpts("noop", ns))

	c.reset()
	res := mustApply(t, e, objects(t, ns, docs), applyOpts("noop", ns))
	if got := res.Count(ActionUnchanged); got != 53 {
		t.Errorf("%d unchanged, want 53: %+v", got, res.Changes)
	}
	if m := c.mutating(); len(m) != 0 {
		t.Errorf("no-op apply sent %d mutating requests, want 0:\n%s", len(m), strings.Join(m, "\n"))
	}
	// One GET of the inventory and one LIST per kind: configmaps, deployments,
	// services, secrets.
	if r := c.reads(); len(r) > 5 {
		t.Errorf("no-op apply sent %d reads, want at most 5 (batched):\n%s", len(r), strings.Join(r, "\n"))
	}
}

func TestApplyInterruptedConvergesOnTheNextRun(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	mustApply(t, e, objects(t, ns, configMaps(2, "old", "v")), applyOpts("crash", ns))

	// The new set drops old-1 and adds 40 objects; the apply is cancelled
	// after its first object, as a crash would stop it.
	newSet := objects(t, ns, configMaps(1, "old", "v")+configMaps(40, "new", "v"))
	ctx, cancel := context.WithCancel(context.Background())
	opts := applyOpts("crash", ns)
	opts.Prune = true
	opts.Events = func(ev Event) {
		if ev.Type == EventApplied {
			cancel()
		}
	}
	if _, err := e.Apply(ctx, newSet, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted apply: err = %v, want context.Canceled", err)
	}
	inv, err := e.Inventory(context.Background(), "crash", ns)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range inv.Entries {
		names = append(names, en.Name)
	}
	if len(names) != 42 || !slices.Contains(names, "old-1") || !slices.Contains(names, "new-39") {
		t.Fatalf("inventory after the interruption holds %d objects %v, want the union of old and new (42)", len(names), names)
	}

	opts.Events = nil
	res := mustApply(t, e, newSet, opts)
	if got := actions(res)["configmap/old-1"]; got != ActionDelete {
		t.Errorf("old-1: %s, want delete", got)
	}
	if _, ok := get(t, cmGVR, ns, "old-1"); ok {
		t.Errorf("configmap/old-1 survived the converging apply")
	}
	for i := 0; i < 40; i++ {
		if _, ok := get(t, cmGVR, ns, "new-"+itoa(i)); !ok {
			t.Errorf("configmap/new-%d missing after the converging apply", i)
		}
	}
	inv, err = e.Inventory(context.Background(), "crash", ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Entries) != 41 {
		t.Errorf("final inventory holds %d objects, want 41", len(inv.Entries))
	}
	for _, en := range inv.Entries {
		if en.Desired == "" || en.Fields == "" {
			t.Errorf("final inventory entry %s lacks hashes: %+v", en.Name, en)
		}
	}
}

func TestReadManifestsNamesTheFileOfABadDocument(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/a.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadManifests(nil, dir)
	if err == nil || !strings.Contains(err.Error(), "a.yaml: document 2") || !strings.Contains(err.Error(), "apiVersion") {
		t.Errorf("err = %v, want it to name a.yaml, document 2, and the missing apiVersion", err)
	}
}

// laggingMapper is discovery as a loaded API server serves it: a new kind
// shows up a few lookups after its CRD reports Established.
type laggingMapper struct {
	meta.ResettableRESTMapper
	kind   schema.GroupKind
	misses int
}

func (m *laggingMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if gk == m.kind && m.misses > 0 {
		m.misses--
		return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
	}
	return m.ResettableRESTMapper.RESTMapping(gk, versions...)
}

// A custom resource applied with its CRD is created even when discovery
// serves its kind only a while after the CRD is established.
func TestApplyWaitsForDiscoveryToServeItsOwnCRDsKind(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	lag := &laggingMapper{ResettableRESTMapper: e.mapper, kind: schema.GroupKind{Group: "test.berth.dev", Kind: "Widget"}, misses: 4}
	e.mapper = lag
	objs, err := ReadManifests(nil, "testdata/crd-and-cr.yaml")
	if err != nil {
		t.Fatal(err)
	}
	removeCRDAfter(t, "widgets.test.berth.dev")
	res := mustApply(t, e, objs, applyOpts("lagging", ns))
	if got := actions(res)["widget.test.berth.dev/small"]; got != ActionCreate {
		t.Errorf("widget/small: %s, want created once discovery serves its kind", got)
	}
	if lag.misses != 0 {
		t.Errorf("discovery was asked too few times: %d lookups left", lag.misses)
	}
}

// An apply told the app is new creates its inventory without reading it;
// told so wrongly, it finds the inventory when creating it, before any
// object is written, and applies as an upgrade that prunes as usual.
func TestApplyAssumingANewAppReadsNoInventory(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	opts := applyOpts("fresh", ns)
	opts.AssumeNew, opts.Prune = true, true
	res := mustApply(t, e, objects(t, ns, configMaps(2, "fresh", "one")), opts)
	if res.Operation != OperationInstall {
		t.Errorf("operation %s, want install", res.Operation)
	}
	for _, r := range c.reads() {
		if strings.Contains(r, "/secrets/"+InventoryName("fresh")) {
			t.Errorf("the apply read the inventory of an app it was told is new: %s", r)
		}
	}
	if ok, err := e.Installed(context.Background(), "fresh", ns); err != nil || !ok {
		t.Fatalf("no inventory after the install: %v", err)
	}

	// Wrongly told: the app is installed, with 2 ConfigMaps; now it has 1.
	c.reset()
	res = mustApply(t, e, objects(t, ns, configMaps(1, "fresh", "two")), opts)
	if res.Operation != OperationUpgrade {
		t.Errorf("operation %s, want upgrade: the inventory existed", res.Operation)
	}
	if _, ok := get(t, cmGVR, ns, "fresh-1"); ok {
		t.Error("fresh-1, which the set no longer holds, was not pruned")
	}
	if cm, ok := get(t, cmGVR, ns, "fresh-0"); !ok || cm.Object["data"].(map[string]any)["value"] != "two" {
		t.Errorf("fresh-0 = %v, want value two", cm)
	}
	var created int
	for _, m := range c.mutating() {
		if strings.HasPrefix(m, "POST ") && strings.Contains(m, "/secrets") {
			created++
		}
		if strings.Contains(m, "/configmaps/") && created == 0 {
			t.Errorf("an object was written before the inventory's creation failed: %s", m)
		}
	}
	if created != 1 {
		t.Errorf("%d creations of the inventory, want the 1 that found it", created)
	}
}

// An apply records only the object's UID and berth's managedFields entry, so
// it asks the API server for the metadata, in protobuf, not for the whole
// object in JSON: less to encode, send and decode for every object.
func TestAppliesAskForTheMetadataOnly(t *testing.T) {
	ns := testcluster.Namespace(t)
	cfg := testcluster.Config(t)
	type exchange struct{ path, accept, got string }
	var (
		mu      sync.Mutex
		applies []exchange
	)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if err == nil && r.Header.Get("Content-Type") == "application/apply-patch+yaml" {
				mu.Lock()
				applies = append(applies, exchange{r.URL.Path, r.Header.Get("Accept"), resp.Header.Get("Content-Type")})
				mu.Unlock()
			}
			return resp, err
		})
	}
	e, err := NewEngine(cfg, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, ns, configMaps(2, "meta", "x")+`
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: meta}
spec:
  replicas: 0
  selector: {matchLabels: {app: meta}}
  template:
    metadata: {labels: {app: meta}}
    spec: {containers: [{name: c, image: example.invalid/c:1}]}
`)
	mustApply(t, e, objs, applyOpts("meta", ns))
	if len(applies) != 3 {
		t.Fatalf("saw %d applies, want 3: %v", len(applies), applies)
	}
	for _, a := range applies {
		if !strings.Contains(a.accept, "as=PartialObjectMetadata") || !strings.HasPrefix(a.got, "application/vnd.kubernetes.protobuf") {
			t.Errorf("apply of %s asked for %q and got %q, want the metadata only, in protobuf", a.path, a.accept, a.got)
		}
	}
	inv, err := e.Inventory(context.Background(), "meta", ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range inv.Entries {
		if en.Fields == "" || en.Desired == "" {
			t.Errorf("inventory entry %s/%s has no fingerprint of berth's fields (%q) or manifest (%q)", en.Kind, en.Name, en.Fields, en.Desired)
		}
	}
	// What the metadata recorded is what makes the next apply write nothing.
	applies = nil
	res := mustApply(t, e, objs, applyOpts("meta", ns))
	if n := res.Count(ActionUnchanged); n != 3 || len(applies) != 0 {
		t.Errorf("second apply: %d unchanged, %d applies sent (%v); want 3 and none", n, len(applies), applies)
	}
}
