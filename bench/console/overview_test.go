// Package console benchmarks the console's overview at fleet scale: a
// synthetic workspace of many apps, each with a ConfigMap in the local
// cluster, served by internal/console. Run it with bench/console/run.sh.
package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/console"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

func TestOverviewAtScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BERTH_BENCH_CONSOLE_APPS"))
	if n == 0 {
		t.Skip("a benchmark: set BERTH_BENCH_CONSOLE_APPS (bench/console/run.sh does)")
	}
	ctx := context.Background()
	cfg := testcluster.Config(t)
	cs := testcluster.Clientset(t)
	home := t.TempDir()
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: home, Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	const spaces = 10
	var nss []string
	for range spaces {
		nss = append(nss, testcluster.Namespace(t))
	}
	prefix := testcluster.UniqueName(t, 20)

	// The synthetic workspace: app.yaml, a lock entry and one rendered
	// ConfigMap per app, committed at once.
	start := time.Now()
	lock := &workspace.Lock{}
	objs := make([]*corev1.ConfigMap, n)
	for i := range n {
		name := fmt.Sprintf("%s-%05d", prefix, i)
		ns := nss[i%spaces]
		if err := ws.WriteApp(&workspace.App{Name: name, Package: "webapp", Channel: "stable", Namespace: ns}); err != nil {
			t.Fatal(err)
		}
		lock.Instances = append(lock.Instances, workspace.LockInstance{Key: resolve.AppKey(name), Role: "app", Package: "webapp", Version: "1.0.0"})
		cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{apply.LabelApp: name}}, Data: map[string]string{"n": strconv.Itoa(i)}}
		objs[i] = cm
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		u.SetName(name)
		u.SetNamespace(ns)
		if _, err := ws.WriteRendered(ctx, name, []*unstructured.Unstructured{u}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.WriteLock(lock); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) {
		if out, err := exec.Command("git", append([]string{"-C", ws.Root}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("add", "-A")
	git("-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "synthetic fleet")
	t.Logf("workspace of %d apps written in %s", n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	var wg sync.WaitGroup
	work := make(chan *corev1.ConfigMap)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cm := range work {
				if _, err := cs.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for _, cm := range objs {
		work <- cm
	}
	close(work)
	wg.Wait()
	t.Logf("%d ConfigMaps created in %s", n, time.Since(start).Round(time.Millisecond))

	set, err := catalog.OpenRefs(home, ws.Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := &lifecycle.Env{WS: ws, Catalogs: set, Cluster: func() (*rest.Config, error) { return cfg, nil }}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start = time.Now()
	opts := console.DefaultOptions()
	opts.Env, opts.Cluster = env, cfg
	opts.TokenUser = console.User{Name: "bench"}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := console.New(sctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	startup := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	// Server time per page, as a browser asks for it (signed in), median of 20.
	jar := newSession(t, hs.URL, srv)
	pages := map[string]string{
		"overview, page 1":      "/",
		"overview, last page":   fmt.Sprintf("/?page=%d", (n+49)/50),
		"search (as one types)": "/?q=" + prefix + "-0421",
		"filter by health":      "/?health=Healthy&page=3",
	}
	results := map[string]time.Duration{}
	for name, path := range pages {
		var times []time.Duration
		for range 20 {
			t0 := time.Now()
			resp, err := jar.Get(hs.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = drain(resp)
			times = append(times, time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", path, resp.StatusCode)
			}
		}
		slices.Sort(times)
		results[name] = times[len(times)/2]
	}

	// Time until the overview is usable in headless Chromium: from
	// navigation until the first row is visible and htmx is loaded.
	u, _ := url.Parse(hs.URL)
	usable := browserUsable(t, hs.URL, jar.Jar.Cookies(u)[0])

	fmt.Printf("\n| %d apps | value |\n| --- | --- |\n", n)
	fmt.Printf("| console start (workspace read, caches synced) | %s |\n", startup.Round(time.Millisecond))
	for _, name := range []string{"overview, page 1", "overview, last page", "search (as one types)", "filter by health"} {
		fmt.Printf("| server time: %s (median of 20) | %s |\n", name, results[name].Round(100*time.Microsecond))
	}
	fmt.Printf("| headless Chromium: navigation to usable overview (median of 5) | %s |\n", usable.Round(time.Millisecond))
	fmt.Printf("| Go heap in use after start, minus before (GC'd) | %.1f MiB |\n", float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20))
	fmt.Printf("| Go heap in use after start, whole test process | %.1f MiB |\n", float64(after.HeapInuse)/(1<<20))
}

func drain(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if err != nil {
			return n, nil
		}
	}
}

// newSession signs in with the one-time token and returns the client.
func newSession(t *testing.T, base string, srv *console.Server) *http.Client {
	c := &http.Client{Jar: mustJar(t)}
	resp, err := c.Get(base + "/signin?token=" + srv.Token())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return c
}
