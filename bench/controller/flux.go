package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// Flux's controllers, as bench/flux/build.sh builds them.
const (
	fluxSourceVersion    = "v1.8.5"
	fluxKustomizeVersion = "v1.7.3"
	fluxNamespace        = "flux-system"
)

func fluxNamespaceFor(i int) string { return fmt.Sprintf("flux-apps-%02d", i) }

var (
	gitRepoGVR = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	ksGVR      = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	crdGVR     = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// fluxEnv is what a Flux run needs from the berth run before it.
type fluxEnv struct {
	work, kubeconfig, gitURL string
	gitRoot                  string
	dyn                      dynamic.Interface
	cs                       kubernetes.Interface
}

// benchFlux measures Flux's source-controller and kustomize-controller, run
// as local processes against the same cluster, on the same apps served from
// a local git repository: one GitRepository and a Kustomization per app
// (wait: true, so each is health-gated as berth's apps are).
func benchFlux(ctx context.Context, e fluxEnv, c config) ([]result, error) {
	cache := os.Getenv("BERTH_FLUX_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, err
		}
		cache = filepath.Join(home, ".cache", "berth", "flux")
	}
	srcBin := filepath.Join(cache, "bin", "source-controller-"+fluxSourceVersion)
	ksBin := filepath.Join(cache, "bin", "kustomize-controller-"+fluxKustomizeVersion)
	for _, b := range []string{srcBin, ksBin} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("%s is not built: run bench/flux/build.sh (%w)", b, err)
		}
	}
	// The CRDs.
	crds, _ := filepath.Glob(filepath.Join(cache, "crds", "*.yaml"))
	for _, f := range crds {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		body, _ := u.MarshalJSON()
		if _, err := e.dyn.Resource(crdGVR).Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "bench", Force: ptr(true)}); err != nil {
			return nil, fmt.Errorf("applying %s: %w", f, err)
		}
	}
	for _, r := range []schema.GroupVersionResource{gitRepoGVR, ksGVR} {
		if err := waitFor(ctx, time.Minute, func() bool {
			_, err := e.dyn.Resource(r).Namespace(fluxNamespace).List(ctx, metav1.ListOptions{Limit: 1})
			return err == nil
		}); err != nil {
			return nil, fmt.Errorf("CRD of %s not served: %w", r.Resource, err)
		}
	}
	for _, ns := range append([]string{fluxNamespace}, nsList(c, fluxNamespaceFor)...) {
		_, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
	}

	// The same apps, as plain manifests, one directory per app.
	repo := filepath.Join(e.work, "flux-ws")
	for i := range c.apps {
		dir := filepath.Join(repo, "apps", appName(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var docs []string
		first := 0
		if c.deployment {
			b, _ := yaml.Marshal(deployment(appName(i)).Object)
			docs, first = append(docs, string(b)), 1
		}
		for j := first; j < c.objects; j++ {
			b, _ := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": fmt.Sprintf("%s-%d", appName(i), j)},
				"data":     map[string]any{"value": "1", "index": strconv.Itoa(j)}})
			docs = append(docs, string(b))
		}
		if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
			return nil, err
		}
	}
	bare := filepath.Join(e.gitRoot, "flux.git")
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main", repo},
		{"-C", repo, "add", "."},
		{"-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@berth.dev", "commit", "--quiet", "-m", "apps"},
		{"init", "--quiet", "--bare", "--initial-branch=main", bare},
		{"-C", repo, "push", "--quiet", bare, "HEAD:refs/heads/main"},
	} {
		if err := git(ctx, "", args...); err != nil {
			return nil, err
		}
	}

	// The GitRepository and the Kustomizations exist before the controllers
	// start, as the Workspace does before berth's.
	interval := c.fluxInterval.String()
	gr := map[string]any{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "bench", "namespace": fluxNamespace},
		"spec":     map[string]any{"url": e.gitURL + "/flux.git", "interval": "1h", "ref": map[string]any{"branch": "main"}}}
	if err := ssa(ctx, e.dyn, gitRepoGVR, fluxNamespace, gr); err != nil {
		return nil, err
	}
	for i := range c.apps {
		ks := map[string]any{"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
			"metadata": map[string]any{"name": appName(i), "namespace": fluxNamespace},
			"spec": map[string]any{"interval": interval, "path": "./apps/" + appName(i), "prune": true, "wait": true, "timeout": "5m",
				"targetNamespace": fluxNamespaceFor(i % c.namespaces),
				"sourceRef":       map[string]any{"kind": "GitRepository", "name": "bench"}}}
		if err := ssa(ctx, e.dyn, ksGVR, fluxNamespace, ks); err != nil {
			return nil, err
		}
	}

	// The controllers, as local processes.
	storageAddr := freeAddr()
	srcMetrics, ksMetrics := freeAddr(), freeAddr()
	qps := []string{"--kube-api-qps=200", "--kube-api-burst=400"} // berth's controller's limits
	src := fluxProcess(srcBin, filepath.Join(e.work, "source-controller.log"), e.kubeconfig,
		append([]string{"--storage-path=" + filepath.Join(e.work, "flux-storage"), "--storage-addr=" + storageAddr, "--storage-adv-addr=" + storageAddr,
			"--metrics-addr=" + srcMetrics, "--health-addr=" + freeAddr(), "--concurrent=4"}, qps...))
	ks := fluxProcess(ksBin, filepath.Join(e.work, "kustomize-controller.log"), e.kubeconfig,
		append([]string{"--metrics-addr=" + ksMetrics, "--health-addr=" + freeAddr(), "--concurrent=" + strconv.Itoa(c.workers)}, qps...))
	// source-controller refuses a storage path that does not exist.
	if err := os.MkdirAll(filepath.Join(e.work, "flux-storage"), 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	var exited []chan error
	for _, p := range []*exec.Cmd{src, ks} {
		if err := p.Start(); err != nil {
			return nil, err
		}
		done := make(chan error, 1)
		go func() { done <- p.Wait() }()
		exited = append(exited, done)
		defer func() {
			_ = p.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = p.Process.Kill()
			}
		}()
	}
	var died error
	alive := func() bool {
		for i, ch := range exited {
			select {
			case err := <-ch:
				ch <- err // the deferred stop reads it again
				died = fmt.Errorf("%s exited (%v): %s", []string{"source-controller", "kustomize-controller"}[i], err,
					strings.ReplaceAll(tail(filepath.Join(e.work, []string{"source-controller", "kustomize-controller"}[i]+".log")), "\n", " "))
				return false
			default:
			}
		}
		return true
	}
	logf("flux: first sync of %d Kustomizations", c.apps)
	if err := waitFor(ctx, 30*time.Minute, func() bool { return !alive() || fluxReady(ctx, e.dyn) == c.apps }); err != nil || died != nil {
		if died != nil {
			err = died
		}
		return nil, fmt.Errorf("flux: %d of %d Kustomizations Ready: %w (logs in %s)", fluxReady(ctx, e.dyn), c.apps, err, e.work)
	}
	first := time.Since(start)
	total := c.apps * c.objects
	results := []result{{"Flux: first sync (controllers start to every Kustomization applied and healthy once)", first.Round(time.Millisecond).String(),
		fmt.Sprintf("%d Kustomizations (wait: true), %d objects; %.0f objects/s", c.apps, total, float64(total)/first.Seconds())}}

	// Steady state, both controllers together.
	ms := []*metricsReader{{url: "http://" + srcMetrics + "/metrics"}, {url: "http://" + ksMetrics + "/metrics"}}
	sum := func(f func(*metricsReader) (int, error)) (int, error) {
		n := 0
		for _, m := range ms {
			v, err := f(m)
			if err != nil {
				return 0, err
			}
			n += v
		}
		return n, nil
	}
	mut := func(m *metricsReader) (int, error) { return m.mutating(ctx) }
	w0, err := sum(mut)
	if err != nil {
		return nil, err
	}
	cpu0 := fluxTicks(src, ks)
	logf("flux: steady state for %s", c.steady)
	select {
	case <-time.After(c.steady):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w1, _ := sum(mut)
	cpu1 := fluxTicks(src, ks)
	var rss, hwm int64
	for _, p := range []*exec.Cmd{src, ks} {
		h, r := memory(p.Process.Pid)
		rss, hwm = rss+r, hwm+h
	}
	results = append(results,
		result{"Flux: steady state: mutating requests", strconv.Itoa(w1 - w0), fmt.Sprintf("over %s, interval %s; rest_client_requests_total of both controllers (server-side dry-runs are PATCHes)", c.steady, interval)},
		result{"Flux: steady state: CPU", fmt.Sprintf("%.2f%% of one core", 100*float64(cpu1-cpu0)/ticksPerSecond/c.steady.Seconds()), "source-controller + kustomize-controller"},
		result{"Flux: RSS after the first sync", fmt.Sprintf("%d MiB now, %d MiB peak", rss>>10, hwm>>10), "both controllers, VmRSS, VmHWM"},
	)

	// Drift repair: Flux has no watch on what it applied; a deleted object
	// comes back at the Kustomization's next interval.
	logf("flux: %d drift edits (each waits up to %s)", c.fluxEdits, c.fluxInterval+time.Minute)
	rnd := rand.New(rand.NewPCG(3, 4))
	var lat []time.Duration
	for range c.fluxEdits {
		app := rnd.IntN(c.apps)
		d, err := fluxDeleteAndWait(ctx, e.cs, fluxNamespaceFor(app%c.namespaces), fmt.Sprintf("%s-%d", appName(app), 1+app%(c.objects-1)), c.fluxInterval+time.Minute)
		if err != nil {
			return nil, fmt.Errorf("flux drift: %w", err)
		}
		lat = append(lat, d)
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		results = append(results, result{"Flux: drift repair latency p50 / p99 / max", fmt.Sprintf("%s / %s / %s", pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(time.Millisecond)),
			fmt.Sprintf("%d ConfigMap deletions; repaired at the next reconcile (interval %s)", len(lat), interval)})
	}
	return results, nil
}

func nsList(c config, name func(int) string) []string {
	var out []string
	for i := range c.namespaces {
		out = append(out, name(i))
	}
	return out
}

func ssa(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns string, obj map[string]any) error {
	u := &unstructured.Unstructured{Object: obj}
	body, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = dyn.Resource(gvr).Namespace(ns).Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "bench", Force: ptr(true)})
	return err
}

func fluxProcess(bin, logPath, kubeconfig string, args []string) *exec.Cmd {
	p := exec.Command(bin, args...)
	p.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "RUNTIME_NAMESPACE="+fluxNamespace)
	if f, err := os.Create(logPath); err == nil {
		p.Stdout, p.Stderr = f, f
	}
	return p
}

func fluxTicks(ps ...*exec.Cmd) int64 {
	var n int64
	for _, p := range ps {
		t, _ := cpuTicks(p.Process.Pid)
		n += t
	}
	return n
}

// fluxReady counts the Kustomizations applied and healthy once: those with a
// lastAppliedRevision. Their Ready condition is not the measure: Flux sets it
// to Unknown while it reconciles again, which at a short interval and a
// thousand Kustomizations is always some of them.
func fluxReady(ctx context.Context, dyn dynamic.Interface) int {
	l, err := dyn.Resource(ksGVR).Namespace(fluxNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	n := 0
	for _, it := range l.Items {
		if rev, _, _ := unstructured.NestedString(it.Object, "status", "lastAppliedRevision"); rev != "" {
			n++
		}
	}
	return n
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %s", timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

// fluxDeleteAndWait deletes a ConfigMap and times its return, seen by a
// watch opened before the deletion.
func fluxDeleteAndWait(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	l, err := cs.CoreV1().ConfigMaps(ns).List(ctx, sel)
	if err != nil {
		return 0, err
	}
	sel.ResourceVersion = l.ResourceVersion
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, sel)
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return 0, errors.New("watch closed")
			}
			if ev.Type == watch.Added {
				return time.Since(t0), nil
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("%s/%s not repaired within %s", ns, name, timeout)
		}
	}
}
