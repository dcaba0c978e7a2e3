package apply

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

// counter counts the requests an engine sends, by kind.
type counter struct {
	mu       sync.Mutex
	requests []string
}

func (c *counter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.requests = append(c.requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (c *counter) reset() {
	c.mu.Lock()
	c.requests = nil
	c.mu.Unlock()
}

// mutating returns the requests that could change the cluster, dry runs included.
func (c *counter) mutating() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.requests {
		if !strings.HasPrefix(r, "GET ") {
			out = append(out, r)
		}
	}
	return out
}

// reads returns the GET requests, discovery aside.
func (c *counter) reads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.requests {
		if strings.HasPrefix(r, "GET ") && !strings.HasPrefix(r, "GET /api?") && !strings.HasPrefix(r, "GET /apis?") {
			out = append(out, r)
		}
	}
	return out
}

// newEngine returns an engine for the test cluster and the counter of its requests.
func newEngine(t *testing.T) (*Engine, *counter) {
	t.Helper()
	cfg := testcluster.Config(t)
	c := &counter{}
	cfg.WrapTransport = c.wrap
	e, err := NewEngine(cfg, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

func dynClient(t *testing.T) *dynamic.DynamicClient {
	t.Helper()
	d, err := dynamic.NewForConfig(testcluster.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// objects decodes YAML documents; %[1]s in them stands for ns.
func objects(t *testing.T, ns, docs string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := DecodeManifests(t.Name(), strings.NewReader(strings.ReplaceAll(docs, "%[1]s", ns)))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func configMaps(n int, prefix, value string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-%d\ndata:\n  value: %q\n", prefix, i, value)
	}
	return b.String()
}

func applyOpts(app, ns string) ApplyOptions {
	o := DefaultApplyOptions()
	o.App, o.Namespace = app, ns
	o.Timeout = time.Minute
	return o
}

func mustApply(t *testing.T, e *Engine, objs []*unstructured.Unstructured, opts ApplyOptions) *Result {
	t.Helper()
	res, err := e.Apply(context.Background(), objs, opts)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

var (
	cmGVR      = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployGVR  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	pvcGVR     = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	nsGVR      = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	secretsGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

func get(t *testing.T, gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, bool) {
	t.Helper()
	var ri dynamic.ResourceInterface = dynClient(t).Resource(gvr)
	if ns != "" {
		ri = dynClient(t).Resource(gvr).Namespace(ns)
	}
	o, err := ri.Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return o, true
}

// actions maps each object's short name to its action.
func actions(res *Result) map[string]Action {
	out := map[string]Action{}
	for _, c := range res.Changes {
		out[c.Object.ShortString()] = c.Action
	}
	return out
}

// poll waits for cond, failing the test with the last observation on timeout.
func poll(t *testing.T, timeout time.Duration, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ok, state, err := cond(ctx)
		last = state
		return ok, err
	})
	if err != nil {
		t.Fatalf("condition not met within %s: %v; last seen: %s", timeout, err, last)
	}
}
