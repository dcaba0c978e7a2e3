package controller

import (
	"bytes"
	"context"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
	testcatalog "berth.dev/berth/test/catalog"
)

// TestMain runs the tests against the fixture catalog (test/catalog) as the
// built-in one; tests of the real built-in catalog open it with catalog.Embedded.
func TestMain(m *testing.M) {
	testcatalog.Use()
	os.Exit(testcluster.Main(m))
}

var crdOnce sync.Once

// installCRD installs berth's CRDs, as bootstrap does, once per test binary.
func installCRD(t *testing.T) {
	t.Helper()
	cfg := testcluster.Config(t)
	crdOnce.Do(func() { installCRDOn(t, cfg) })
}

// installCRDOn installs berth's CRDs in the cluster of cfg.
func installCRDOn(t *testing.T, cfg *rest.Config) { testcluster.InstallCRDs(t, cfg) }

// gitServer serves bare repositories over smart HTTP with the real git
// http-backend, and can be taken down to play an unreachable server.
type gitServer struct {
	root string
	srv  *httptest.Server
	down atomic.Bool
	// token, when set, is the password HTTPS basic auth must carry.
	token atomic.Pointer[string]
}

func newGitServer(t *testing.T) *gitServer {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	out, err := exec.Command(gitBin, "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	g := &gitServer{root: t.TempDir()}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + g.root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			// Drop the connection: what a client sees of a server that is gone.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if tok := g.token.Load(); tok != nil {
			if _, pw, ok := r.BasicAuth(); !ok || pw != *tok {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// repo is a workspace pushed to a bare repository on a gitServer.
type repo struct {
	t    *testing.T
	ws   *workspace.Workspace
	bare string
	URL  string
}

func (g *gitServer) newRepo(t *testing.T, name string) *repo {
	t.Helper()
	ctx := context.Background()
	ws, err := workspace.Init(ctx, filepath.Join(t.TempDir(), name), workspace.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(g.root, name+".git")
	run(t, "", "git", "init", "--quiet", "--bare", "--initial-branch=main", bare)
	r := &repo{t: t, ws: ws, bare: bare, URL: g.srv.URL + "/" + name + ".git"}
	r.push()
	return r
}

func (r *repo) push() {
	r.t.Helper()
	run(r.t, r.ws.Root, "git", "push", "--quiet", "--force", r.bare, "HEAD:refs/heads/main")
}

// head is the commit the branch points at.
func (r *repo) head() string {
	r.t.Helper()
	return strings.TrimSpace(run(r.t, r.ws.Root, "git", "rev-parse", "HEAD"))
}

// app writes an app, its rendered objects and extra raw files (workspace
// relative path -> bytes, for encrypted or malformed files) and commits them.
// It does not push.
func (r *repo) app(name, namespace string, objs []*unstructured.Unstructured, raw map[string][]byte) {
	r.t.Helper()
	ctx := context.Background()
	paths := []string{workspace.AppDir(name), workspace.AppRenderedDir(name)}
	err := r.ws.Change(ctx, "app "+name, paths, func() error {
		if err := r.ws.WriteApp(&workspace.App{Name: name, Package: name, Namespace: namespace}); err != nil {
			return err
		}
		if _, err := r.ws.WriteRendered(context.Background(), name, objs); err != nil {
			return err
		}
		for rel, data := range raw {
			if err := r.ws.WriteFile(rel, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

// remove takes an app out of the workspace and commits it. It does not push.
func (r *repo) remove(name string) {
	r.t.Helper()
	paths := []string{workspace.AppDir(name), workspace.AppRenderedDir(name)}
	err := r.ws.Change(context.Background(), "remove "+name, paths, func() error {
		for _, p := range paths {
			if err := removeAll(r.ws.Abs(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *repo) lock(l *workspace.Lock) {
	r.t.Helper()
	err := r.ws.Change(context.Background(), "lock", []string{workspace.LockFile}, func() error { return r.ws.WriteLock(l) })
	if err != nil {
		r.t.Fatal(err)
	}
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// configMap returns a ConfigMap manifest.
func configMap(name string, data map[string]string) *unstructured.Unstructured {
	d := map[string]any{}
	for k, v := range data {
		d[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name},
		"data":     d,
	}}
}

// running is a controller started by a test.
type running struct {
	c       *Controller
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	counter *requestCounter
}

// startController runs a controller for the Workspaces of namespace ns until
// the test ends (or stop is called).
func startController(t *testing.T, ns string, mutate func(*Options)) *running {
	t.Helper()
	return startControllerOn(t, testcluster.Config(t), ns, mutate)
}

func startControllerOn(t *testing.T, cfg *rest.Config, ns string, mutate func(*Options)) *running {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	rc := &requestCounter{}
	cfg.Wrap(rc.wrap)
	reg := prometheus.NewRegistry()
	opts := DefaultOptions()
	opts.Namespace = ns
	opts.CacheDir = t.TempDir()
	opts.MetricsAddr, opts.ProbeAddr, opts.WebhookAddr = "0", "0", "0"
	opts.Registry = reg
	if os.Getenv("BERTH_TEST_LOG") != "" {
		opts.Logger = testr.New(t)
	}
	if mutate != nil {
		mutate(&opts)
	}
	c, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, reg: reg, cancel: cancel, done: make(chan error, 1), counter: rc}
	go func() { r.done <- c.Start(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

// metric returns the sum of a counter's values, or a histogram's count.
func (r *running) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// requestCounter records the mutating requests a controller sends.
type requestCounter struct {
	mu       sync.Mutex
	mutating []string
	// inventoryReads are the GETs of apps' inventories.
	inventoryReads []string
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		switch {
		case r.Method != http.MethodGet && !strings.Contains(r.URL.Path, "/leases/"):
			c.mu.Lock()
			c.mutating = append(c.mutating, r.Method+" "+r.URL.Path)
			c.mu.Unlock()
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/secrets/berth-inventory-"):
			c.mu.Lock()
			c.inventoryReads = append(c.inventoryReads, r.URL.Path)
			c.mu.Unlock()
		}
		return rt.RoundTrip(r)
	})
}

func (c *requestCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.mutating
	c.mutating = nil
	return out
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// kube is a controller-runtime client for the test's own reads and writes.
func kube(t *testing.T) client.Client {
	t.Helper()
	return kubeFor(t, testcluster.Config(t))
}

func kubeFor(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// createWorkspace creates a Workspace following r's main branch.
func createWorkspace(t *testing.T, c client.Client, ns, name, url string, mutate func(*berthv1.Workspace)) *berthv1.Workspace {
	t.Helper()
	ws := &berthv1.Workspace{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       berthv1.WorkspaceSpec{URL: url, Branch: "main", Interval: metav1.Duration{Duration: time.Hour}},
	}
	if mutate != nil {
		mutate(ws)
	}
	if err := c.Create(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	return ws
}

// waitWorkspace waits until cond holds for the Workspace.
func waitWorkspace(t *testing.T, c client.Client, ns, name string, timeout time.Duration, cond func(*berthv1.Workspace) (bool, string)) *berthv1.Workspace {
	t.Helper()
	var ws berthv1.Workspace
	// appStatus and describe read the apps' WorkspaceApps through c.
	readers.Store(&ws, c)
	testcluster.WaitFor(t, timeout, func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ws); err != nil {
			return false, err.Error(), nil
		}
		ok, state := cond(&ws)
		return ok, state, nil
	})
	return &ws
}

// readyAt is a waitWorkspace condition: Ready at revision rev.
func readyAt(rev string) func(*berthv1.Workspace) (bool, string) {
	return func(ws *berthv1.Workspace) (bool, string) {
		c := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady)
		state := describe(ws)
		return c != nil && c.Status == metav1.ConditionTrue && ws.Status.LastAppliedRevision == rev && c.ObservedGeneration == ws.Generation, state
	}
}

func describe(ws *berthv1.Workspace) string {
	var b strings.Builder
	b.WriteString("fetched " + short(ws.Status.LastFetchedRevision) + " applied " + short(ws.Status.LastAppliedRevision))
	for _, c := range ws.Status.Conditions {
		b.WriteString("; " + c.Type + "=" + string(c.Status) + " " + c.Reason + ": " + c.Message)
	}
	for _, a := range workspaceApps(ws) {
		b.WriteString("; app " + a.Spec.App + ":")
		for _, c := range a.Status.Conditions {
			b.WriteString(" " + c.Type + "=" + string(c.Status) + "(" + c.Message + ")")
		}
	}
	return b.String()
}

// readers holds the client each Workspace that waitWorkspace returned was
// read with, so its apps are read from the same cluster.
var readers sync.Map

// workspaceApps reads the WorkspaceApps of ws, or nil when it cannot.
func workspaceApps(ws *berthv1.Workspace) []berthv1.WorkspaceApp {
	c, ok := readers.Load(ws)
	if !ok {
		return nil
	}
	list, err := ListWorkspaceApps(context.Background(), c.(client.Client), ws)
	if err != nil {
		return nil
	}
	return list
}

// appStatus is the state of app name of ws, nil when it has none.
func appStatus(ws *berthv1.Workspace, name string) *berthv1.AppStatus {
	for _, a := range workspaceApps(ws) {
		if a.Spec.App == name {
			return &a.Status
		}
	}
	return nil
}

// requestFetch does what the webhook does: ask for a fetch now.
func requestFetch(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	annotate(t, c, ns, name, berthv1.AnnotationFetchRequestedAt)
}

func annotate(t *testing.T, c client.Client, ns, name, key string) {
	t.Helper()
	var ws berthv1.Workspace
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &ws); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ws.DeepCopy())
	if ws.Annotations == nil {
		ws.Annotations = map[string]string{}
	}
	ws.Annotations[key] = time.Now().Format(time.RFC3339Nano)
	if err := c.Patch(context.Background(), &ws, patch); err != nil {
		t.Fatal(err)
	}
}

func removeAll(p string) error { return os.RemoveAll(p) }

func objectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

// headCommit returns the commit HEAD names in the git repository at root.
func headCommit(tb testing.TB, root string) *object.Commit {
	tb.Helper()
	repo, err := git.PlainOpen(root)
	if err != nil {
		tb.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil {
		tb.Fatal(err)
	}
	commit, err := repo.CommitObject(head.Hash())
	if err != nil {
		tb.Fatal(err)
	}
	return commit
}
