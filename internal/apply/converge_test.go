package apply

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/testcluster"
)

// Lists keyed by a number (ports) or with several entries (webhooks,
// containers) come back from the API server in its own order, not in the
// alphabetical order of a re-encoded copy: the drift check must not see a
// change there.
const multiEntryLists = `
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: https, port: 443, targetPort: 8443}
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 10250, targetPort: 10250}
  - {name: vnc, port: 6080, targetPort: 6080}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - {containerPort: 8443, name: https}
        - {containerPort: 8080, name: http}
        - {containerPort: 10250, name: metrics}
      - name: sidecar
        image: busybox:1.36
        ports:
        - {containerPort: 9000}
        - {containerPort: 443, protocol: UDP}
        - {containerPort: 443, protocol: TCP}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: %[1]s-hooks}
webhooks:
- name: zeta.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  clientConfig: {url: "https://zeta.example.com:443/validate"}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]
- name: alpha.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  clientConfig: {url: "https://alpha.example.com:10250/validate"}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [secrets]}]
`

func TestReapplyOfMultiEntryListsMakesNoWrites(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, c := newEngine(t)
	objs := objects(t, ns, multiEntryLists)
	mustApply(t, e, objs, applyOpts("multi", ns))
	t.Cleanup(func() {
		_, _ = e.Delete(context.Background(), DeleteOptions{App: "multi", Namespace: ns})
	})

	c.reset()
	res := mustApply(t, e, objects(t, ns, multiEntryLists), applyOpts("multi", ns))
	if n := res.Count(ActionUnchanged); n != len(objs) {
		t.Errorf("second apply: %d of %d objects unchanged: %v", n, len(objs), changeReasons(res))
	}
	if m := c.mutating(); len(m) != 0 {
		t.Errorf("second apply made %d write(s), want 0:\n%s", len(m), strings.Join(m, "\n"))
	}

	plan, err := e.Plan(context.Background(), objects(t, ns, multiEntryLists), PlanOptions{App: "multi", Namespace: ns, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := plan.Count(ActionUnchanged); n != len(plan.Changes) {
		t.Errorf("plan after apply is not clean: %v", changeReasons(plan))
	}
}

// changeReasons lists what a result did to each object, for failure messages.
func changeReasons(res *Result) []string {
	var out []string
	for _, c := range res.Changes {
		out = append(out, c.Object.ShortString()+": "+string(c.Action)+" "+c.Reason+c.Error)
	}
	return out
}

func TestSecretWithNullStringDataApplies(t *testing.T) {
	ns := testcluster.Namespace(t)
	e, _ := newEngine(t)
	objs := objects(t, ns, `
apiVersion: v1
kind: Secret
metadata: {name: empty}
stringData: null
---
apiVersion: v1
kind: Secret
metadata: {name: both}
data: {a: YQ==}
stringData: null
---
apiVersion: v1
kind: Secret
metadata: {name: nulldata}
data: null
stringData: {b: bee, c: null}
`)
	res := mustApply(t, e, objs, applyOpts("nullsecret", ns))
	if n := res.Count(ActionCreate); n != 3 {
		t.Fatalf("created %d secrets, want 3: %v", n, changeReasons(res))
	}
	got, ok := get(t, schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, ns, "nulldata")
	if !ok {
		t.Fatal("secret nulldata was not created")
	}
	data, _, _ := unstructured.NestedStringMap(got.Object, "data")
	if data["b"] != "YmVl" || data["c"] != "" {
		t.Errorf("secret nulldata data = %v, want b=YmVl (bee) and c empty", data)
	}
}

func TestEnginesShareTheCallersClients(t *testing.T) {
	ns := testcluster.Namespace(t)
	cfg := testcluster.Config(t)
	c := &counter{}
	cfg.WrapTransport = c.wrap
	clients, err := NewClients(cfg, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	first, err := NewEngineForClients(*clients, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewEngineForClients(*clients, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, first, objects(t, ns, configMaps(1, "one", "x")), applyOpts("first", ns))
	c.reset()
	mustApply(t, second, objects(t, ns, configMaps(1, "two", "x")), applyOpts("second", ns))
	for _, r := range c.requests {
		if strings.HasPrefix(r, "GET /api?") || strings.HasPrefix(r, "GET /apis?") || strings.HasPrefix(r, "GET /api/v1?") {
			t.Errorf("the second engine ran discovery again (%s): it does not share the first one's cache", r)
		}
	}
	if _, err := NewEngineForClients(Clients{Dynamic: clients.Dynamic}, DefaultOptions()); err == nil {
		t.Error("NewEngineForClients without a metadata client and discovery: no error")
	}
}
