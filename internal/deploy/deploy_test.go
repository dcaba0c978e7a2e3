package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

// failingTransport refuses the first n mutating requests, as an API server
// that is restarting does.
type failingTransport struct {
	rt   http.RoundTripper
	left atomic.Int64
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet && f.left.Add(-1) >= 0 {
		return nil, fmt.Errorf("dial tcp 127.0.0.1:6443: %w", syscall.ECONNREFUSED)
	}
	return f.rt.RoundTrip(r)
}

func newDeployer(t *testing.T, cfg *rest.Config) *Deployer {
	t.Helper()
	eng, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return New(eng, dynamic.NewForConfigOrDie(cfg))
}

func cm(name, phase string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name}, "data": map[string]any{"k": "v"}}}
	if phase != "" {
		u.SetAnnotations(map[string]string{AnnotationPhase: phase})
	}
	return u
}

type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }
func (e *events) of(typ EventType) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.all {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// A short API server outage (connection refused on the first writes) is
// retried with back-off and reported, not a failed deploy.
func TestTransientErrorsAreRetried(t *testing.T) {
	ns := testcluster.Namespace(t)
	cfg := rest.CopyConfig(testcluster.Config(t))
	ft := &failingTransport{}
	ft.left.Store(2)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { ft.rt = rt; return ft })
	d := newDeployer(t, cfg)
	ev := &events{}
	app := &App{Name: "blip", Namespace: ns, Objects: []*unstructured.Unstructured{cm("a", "")}}
	r := d.DeployApp(context.Background(), app, Options{Timeout: time.Minute, RetryFor: time.Minute, Events: ev.add})
	if r.State != StateReady {
		t.Fatalf("state %s: %v", r.State, r.Err)
	}
	if n := len(ev.of(EventRetry)); n == 0 {
		t.Error("no retry was reported")
	}
	// Without RetryFor the first error is returned, as an Error (transient).
	ft.left.Store(1)
	r = d.DeployApp(context.Background(), &App{Name: "blip2", Namespace: ns, Objects: []*unstructured.Unstructured{cm("b", "")}}, Options{Timeout: time.Minute})
	if r.State != StateError || !Transient(r.Err) {
		t.Errorf("without retries: state %s, err %v; want a transient Error", r.State, r.Err)
	}
}

func TestTransient(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
	tests := map[string]struct {
		err  error
		want bool
	}{
		"connection refused": {fmt.Errorf("x: %w", syscall.ECONNREFUSED), true},
		"429":                {apierrors.NewTooManyRequests("slow down", 1), true},
		"503":                {apierrors.NewServiceUnavailable("restarting"), true},
		"leader changed":     {errors.New("etcdserver: leader changed"), true},
		"not found":          {apierrors.NewNotFound(gr, "x"), false},
		"invalid":            {apierrors.NewBadRequest("spec.x: invalid"), false},
		"nil":                {nil, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Transient(tt.err); got != tt.want {
				t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// Apps go phase by phase; an app that is not ready holds back its
// dependants only; a suspended one holds back nothing; removing an app that
// was never deployed (or is already gone) is done.
func TestDeployOrderGatesAndRemoval(t *testing.T) {
	ns := testcluster.Namespace(t)
	cfg := testcluster.Config(t)
	d := newDeployer(t, cfg)
	ev := &events{}
	bad := cm("bad", "")
	bad.Object["data"] = map[string]any{"k": map[string]any{"not": "a string"}} // the API server refuses it
	apps := []*App{
		{Name: "base", Namespace: ns, Objects: []*unstructured.Unstructured{cm("c2", "20"), cm("c1", "10"), cm("c3", "")}},
		{Name: "broken", Namespace: ns, Objects: []*unstructured.Unstructured{bad}},
		{Name: "paused", Namespace: ns, Suspended: true},
		{Name: "user", Namespace: ns, DependsOn: []string{"broken"}, Objects: []*unstructured.Unstructured{cm("u", "")}},
		{Name: "other", Namespace: ns, DependsOn: []string{"base", "paused"}, Objects: []*unstructured.Unstructured{cm("o", "")}},
	}
	res := d.Deploy(context.Background(), apps, Options{Timeout: time.Minute, Workers: 4, Events: ev.add})
	got := map[string]State{}
	for _, a := range res.Apps {
		got[a.App] = a.State
	}
	want := map[string]State{"base": StateReady, "broken": StateFailed, "paused": StateSuspended, "user": StateBlocked, "other": StateReady}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	var ae *AppError
	if err := res.Err(); !errors.As(err, &ae) || ae.App != "broken" {
		t.Errorf("Err() = %v, want the broken app first", err)
	}
	var phases [][]string
	for _, e := range ev.of(EventPhase) {
		if e.App != "base" {
			continue
		}
		var names []string
		for _, r := range e.Objects {
			names = append(names, r.Name)
		}
		phases = append(phases, names)
	}
	if diff := cmp.Diff([][]string{{"c1"}, {"c1", "c2"}, {"c1", "c2", "c3"}}, phases); diff != "" {
		t.Errorf("phases of base (-want +got):\n%s", diff)
	}
	if a := res.Apps[0]; a.Count(apply.ActionCreate) != 3 || a.Count(apply.ActionUnchanged) != 0 {
		t.Errorf("base counted %v over its phases, want 3 created, each once", a.Actions)
	}
	if _, err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Get(context.Background(), "u", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the blocked app was applied (%v)", err)
	}
	// Again: every object of every phase unchanged, none "kept" by the
	// phases before its own.
	again := d.DeployApp(context.Background(), apps[0], Options{Timeout: time.Minute})
	if diff := cmp.Diff(map[apply.Action]int{apply.ActionUnchanged: 3}, again.Actions); diff != "" {
		t.Errorf("second deploy of base (-want +got):\n%s", diff)
	}

	// Removal: base's objects go; an app never deployed is done.
	for _, name := range []string{"base", "never-deployed"} {
		r := d.Remove(context.Background(), &App{Name: name, Namespace: ns}, Options{Timeout: time.Minute})
		if r.State != StateReady || r.Err != nil {
			t.Errorf("Remove(%s) = %s, %v", name, r.State, r.Err)
		}
	}
	if _, err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Get(context.Background(), "c1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("base's objects are left after Remove (%v)", err)
	}
}

// A namespace that existed before the app is used as it is: berth does not
// take it over, so removing the app leaves it.
func TestANamespaceTheUserMadeIsNotTheApps(t *testing.T) {
	ns := testcluster.Namespace(t) // made by the test, as a user would
	d := newDeployer(t, testcluster.Config(t))
	nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
	nsObj.SetAnnotations(map[string]string{AnnotationPhase: "-1"})
	app := &App{Name: "guest", Namespace: ns, Objects: []*unstructured.Unstructured{nsObj, cm("g", "")}}
	if r := d.DeployApp(context.Background(), app, Options{Timeout: time.Minute}); r.State != StateReady {
		t.Fatalf("deploy: %s %v", r.State, r.Err)
	}
	if r := d.Remove(context.Background(), &App{Name: "guest", Namespace: ns}, Options{Timeout: time.Minute}); r.Err != nil {
		t.Fatalf("remove: %v", r.Err)
	}
	got, err := testcluster.Clientset(t).CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp != nil {
		t.Fatalf("the user's namespace was deleted with the app (%v)", err)
	}
	if got.Labels[apply.LabelApp] != "" {
		t.Errorf("the user's namespace was taken over: labels %v", got.Labels)
	}
}

// listCounter counts full (not metadata-only) list requests per resource.
type listCounter struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	lists map[string]int
}

func (l *listCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && !strings.Contains(r.Header.Get("Accept"), "PartialObjectMetadata") {
		// .../namespaces/NS/RESOURCE is a list; .../RESOURCE/NAME is a get.
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if n := len(parts); n >= 3 && parts[n-3] == "namespaces" {
			l.mu.Lock()
			l.lists[parts[len(parts)-1]]++
			l.mu.Unlock()
		}
	}
	return l.rt.RoundTrip(r)
}

// Objects of kinds without a status (ConfigMaps, Secrets, ServiceAccounts,
// RBAC) are ready once applied: the deploy reports them ready without listing
// them again, which was a third of the API server's requests in a first sync
// of a thousand apps. Kinds with a status are still waited for.
func TestStatuslessObjectsAreReadyWithoutAWait(t *testing.T) {
	ns := testcluster.Namespace(t)
	cfg := rest.CopyConfig(testcluster.Config(t))
	lc := &listCounter{lists: map[string]int{}}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { lc.rt = rt; return lc })
	d := newDeployer(t, cfg)
	ev := &events{}
	sa := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "runner"}}}
	svc := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "web"},
		"spec": map[string]any{"ports": []any{map[string]any{"port": int64(80)}}}}}
	app := &App{Name: "plain", Namespace: ns, Objects: []*unstructured.Unstructured{cm("a", ""), cm("b", ""), sa, svc}}
	r := d.DeployApp(context.Background(), app, Options{Timeout: 2 * time.Minute, Events: ev.add})
	if r.State != StateReady {
		t.Fatalf("state %s: %v", r.State, r.Err)
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.lists["configmaps"] != 0 || lc.lists["serviceaccounts"] != 0 {
		t.Errorf("the deploy listed objects without a status: %v", lc.lists)
	}
	if lc.lists["services"] == 0 {
		t.Errorf("the deploy did not wait for the Service: %v", lc.lists)
	}
	ready := map[string]bool{}
	for _, e := range ev.of(EventObject) {
		if e.Apply.Type == apply.EventReady {
			ready[e.Apply.Object.Name] = true
		}
	}
	for _, n := range []string{"a", "b", "runner", "web"} {
		if !ready[n] {
			t.Errorf("no ready event for %s: %v", n, ready)
		}
	}
}

// An app's final inventory is written while its health wait runs, not before
// it: on a first sync of many apps that is a round trip less in each app's
// chain. The test holds the inventory's write until the wait has read the
// app's Deployment, which only a wait running beside the write can do.
func TestTheFinalInventoryIsWrittenWhileTheAppIsWaitedFor(t *testing.T) {
	ns := testcluster.Namespace(t)
	cfg := rest.CopyConfig(testcluster.Config(t))
	var (
		mu       sync.Mutex
		writing  bool // the final inventory's PUT is held
		waitRead = make(chan struct{})
		once     sync.Once
	)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			switch {
			case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/secrets/"+apply.InventoryName("web")):
				mu.Lock()
				writing = true
				mu.Unlock()
				select {
				case <-waitRead:
				case <-time.After(30 * time.Second):
					// The wait read nothing meanwhile: let the write go,
					// and the test fails on its assertion.
				}
				resp, err := rt.RoundTrip(r)
				mu.Lock()
				writing = false
				mu.Unlock()
				return resp, err
			case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/deployments"):
				mu.Lock()
				if writing {
					once.Do(func() { close(waitRead) })
				}
				mu.Unlock()
			}
			return rt.RoundTrip(r)
		})
	})
	d := newDeployer(t, cfg)
	// A Deployment that never becomes ready (no node matches): the wait
	// keeps reading it until its timeout, however late the write starts.
	web := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web"},
		"spec": map[string]any{"replicas": int64(1), "selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"nodeSelector": map[string]any{"no-such-node": "true"},
					"containers": []any{map[string]any{"name": "web", "image": "nginx"}}}}}}}
	var inv *apply.Inventory
	app := &App{Name: "web", Namespace: ns, Objects: []*unstructured.Unstructured{web, cm("settings", "")}}
	r := d.DeployApp(context.Background(), app, Options{Timeout: 15 * time.Second,
		Applied: func(_ *App, _ []*unstructured.Unstructured, i *apply.Inventory) { inv = i }})
	if r.State != StateProgressing || r.Err == nil {
		t.Fatalf("state %s (%v), want Progressing after the wait's timeout: the Deployment cannot become ready", r.State, r.Err)
	}
	select {
	case <-waitRead:
	default:
		t.Fatal("the health wait read nothing while the final inventory was being written: the write and the wait ran one after the other")
	}
	// Applied, its objects are watched for drift though they are not ready.
	if inv == nil || len(inv.Entries) != 2 {
		t.Fatalf("the inventory handed to Applied = %+v, want the Deployment and the ConfigMap", inv)
	}
	installed, err := d.engine.Installed(context.Background(), "web", ns)
	if err != nil || !installed {
		t.Fatalf("the app's inventory is not stored: %v", err)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
