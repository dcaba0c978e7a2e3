// Command controller benchmarks berth's controller on a local API server: N apps
// of M objects each in one Workspace served by a real git HTTP server, with the
// controller running as its own process (so its CPU and memory are its own). It
// measures the first sync, a steady state (mutating requests, CPU, peak RSS),
// drift repair latency over hand edits (scale a Deployment, delete a ConfigMap),
// and the time from a push announced by a webhook to the changed apps applied.
//
//	go run ./bench/controller -o bench/controller/results.md
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/workspace"
)

type config struct {
	kubeconfig   string
	apps         int
	objects      int
	namespaces   int
	steady       time.Duration
	edits        int
	changed      int
	workers      int
	memoryLimit  string
	deployment   bool
	raw          bool
	rawBefore    bool
	flux         bool
	fluxInterval time.Duration
	fluxEdits    int
	profile      int
	apiProfile   int
	out          string
}

func main() {
	var c config
	// A flag set of its own: controller-runtime registers --kubeconfig globally.
	fs := flag.NewFlagSet("controller", flag.ExitOnError)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "use this cluster instead of starting a fresh local one")
	fs.IntVar(&c.apps, "apps", 1000, "apps in the workspace")
	fs.IntVar(&c.objects, "objects", 10, "objects per app: one Deployment (0 replicas), the rest ConfigMaps")
	fs.IntVar(&c.namespaces, "namespaces", 10, "namespaces the apps are spread over")
	fs.DurationVar(&c.steady, "steady", 5*time.Minute, "length of the steady-state window")
	fs.IntVar(&c.edits, "edits", 100, "hand edits for the drift repair latency (half scale a Deployment, half delete a ConfigMap)")
	fs.IntVar(&c.changed, "changed", 100, "apps changed by the pushed commit")
	fs.IntVar(&c.workers, "workers", 16, "apps the controller applies at once")
	fs.StringVar(&c.memoryLimit, "memory-limit", "auto", "the controller's --memory-limit (soft limit of its Go heap)")
	fs.BoolVar(&c.deployment, "deployment", true, "make one object of each app a Deployment (its health then waits for kube-controller-manager)")
	fs.BoolVar(&c.raw, "raw", true, "after berth's runs, measure the raw ceiling: the same objects applied by a plain parallel loop on the same cluster")
	fs.BoolVar(&c.rawBefore, "raw-before", false, "also measure the raw ceiling once before berth's sync, on the fresh cluster (into namespaces of its own), to see what a cold cluster costs whoever goes first, and to compare berth's sync with the mean of the ceilings before and after it, which cancels the machine's steady drift")
	fs.BoolVar(&c.flux, "flux", false, "then measure Flux's source-controller and kustomize-controller (bench/flux/build.sh builds them) on the same apps and cluster")
	fs.DurationVar(&c.fluxInterval, "flux-interval", time.Minute, "interval of Flux's Kustomizations (its drift repair bound)")
	fs.IntVar(&c.fluxEdits, "flux-edits", 5, "drift edits (ConfigMap deletions) for Flux, each repaired at the next interval")
	fs.IntVar(&c.profile, "profile", 20, "seconds of CPU profile of the controller taken at the start of the first sync (0: none); kept with BERTH_BENCH_KEEP")
	fs.IntVar(&c.apiProfile, "apiserver-profile", 0, "seconds of CPU profile of the API server taken at the start of the first sync and of the raw ceiling (0: none); kept with BERTH_BENCH_KEEP")
	fs.StringVar(&c.out, "o", "", "also write the results (markdown) to this file")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "• "+format+"\n", args...) }

type result struct {
	name, value, note string
}

func run(ctx context.Context, c config) error {
	if c.apps < 1 || c.objects < 2 || c.namespaces < 1 || c.changed > c.apps {
		return errors.New("need -apps >= 1, -objects >= 2, -namespaces >= 1 and -changed <= -apps")
	}
	work, err := os.MkdirTemp("", "berth-bench-controller-")
	if err != nil {
		return err
	}
	if os.Getenv("BERTH_BENCH_KEEP") == "" {
		defer os.RemoveAll(work)
	} else {
		logf("keeping %s (controller.log)", work)
	}

	logf("building berth")
	berth := filepath.Join(work, "berth")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", berth, "berth.dev/berth/cmd/berth").CombinedOutput(); err != nil {
		return fmt.Errorf("building berth: %v\n%s", err, out)
	}
	var clusterLogs string // the local cluster's component logs
	if c.kubeconfig == "" {
		home := filepath.Join(work, "home")
		clusterLogs = filepath.Join(home, "clusters", "bench-controller", "logs")
		logf("starting a fresh local cluster")
		cl, _, err := localcluster.Up(ctx, localcluster.UpOptions{Home: home, Name: "bench-controller", Nodes: 1})
		defer func() {
			_, _ = localcluster.Down(context.Background(), localcluster.DownOptions{Home: home, Name: "bench-controller", Purge: true})
		}()
		if err != nil {
			return err
		}
		c.kubeconfig = cl.KubeconfigPath()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	k, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		return err
	}

	// The workspace, in a git repository served over smart HTTP.
	logf("writing a workspace of %d apps x %d objects", c.apps, c.objects)
	ws, err := workspace.Init(ctx, filepath.Join(work, "ws"), workspace.InitOptions{})
	if err != nil {
		return err
	}
	if err := writeApps(ctx, ws, c, 0, c.apps, "1"); err != nil {
		return err
	}
	bare := filepath.Join(work, "git", "ws.git")
	if err := git(ctx, "", "init", "--quiet", "--bare", "--initial-branch=main", bare); err != nil {
		return err
	}
	push := func() (string, error) {
		if err := git(ctx, ws.Root, "push", "--quiet", "--force", bare, "HEAD:refs/heads/main"); err != nil {
			return "", err
		}
		out, err := exec.CommandContext(ctx, "git", "-C", ws.Root, "rev-parse", "HEAD").Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := push()
	if err != nil {
		return err
	}
	gitURL, stopGit, err := serveGit(filepath.Join(work, "git"))
	if err != nil {
		return err
	}
	defer stopGit()

	const ns, name, token = "berth-system", "bench", "bench-webhook-token"
	bopts := controller.DefaultBootstrapOptions()
	bopts.Local, bopts.Name, bopts.Namespace, bopts.WebhookToken = true, name, ns, token
	bopts.Workspace.URL = gitURL + "/ws.git"
	bopts.Workspace.Interval = metav1.Duration{Duration: time.Hour} // the webhook, not polling
	bopts.Workspace.Timeout = metav1.Duration{Duration: 10 * time.Minute}
	if _, err := controller.Bootstrap(ctx, cfg, bopts); err != nil {
		return err
	}
	for i := range c.namespaces {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNamespace(i)}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}

	var rawBefore time.Duration
	if c.raw && c.rawBefore {
		logf("raw ceiling on the fresh cluster, before berth: the same %d objects", c.apps*c.objects)
		if rawBefore, err = rawCeiling(ctx, dyn, cs, c, 64, "raw-before"); err != nil {
			return err
		}
	}

	// The controller, as its own process.
	hookAddr, metricsAddr := freeAddr(), freeAddr()
	logFile, err := os.Create(filepath.Join(work, "controller.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	proc := exec.Command(berth, "controller", "--kubeconfig", c.kubeconfig, "--namespace", ns, "--cache-dir", filepath.Join(work, "cache"),
		"--webhook-addr", hookAddr, "--metrics-addr", metricsAddr, "--probe-addr", "0", "--workers", strconv.Itoa(c.workers),
		"--memory-limit", c.memoryLimit)
	proc.Stdout, proc.Stderr = logFile, logFile
	start := time.Now()
	if err := proc.Start(); err != nil {
		return err
	}
	defer func() {
		_ = proc.Process.Signal(os.Interrupt)
		_ = proc.Wait()
	}()
	var results []result
	total := c.apps * c.objects

	logf("first sync of %d objects", total)
	clusterDir := ""
	if clusterLogs != "" {
		clusterDir = filepath.Dir(clusterLogs)
	}
	procs := map[string]int{"berth controller": proc.Process.Pid, "bench (the raw loop's client)": os.Getpid()}
	cpuA0 := processCPU(clusterDir, procs)
	api0, err := readAPIStats(ctx, cs)
	if err != nil {
		return err
	}
	profDone := make(chan error, 1)
	profPath := filepath.Join(work, "first-sync.cpu.pprof")
	if c.profile > 0 {
		go func() {
			// The metrics port listens once the controller started.
			for range 100 {
				if _, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			profDone <- cpuProfile(ctx, metricsAddr, c.profile, profPath)
		}()
	} else {
		profDone <- nil
	}
	apiProfA := c.profileAPIServer(ctx, cs, filepath.Join(work, "apiserver-first-sync.pprof"))
	if err := waitReady(ctx, k, ns, name, rev, 30*time.Minute); err != nil {
		return fmt.Errorf("%w (controller log: %s)", err, tail(logFile.Name()))
	}
	first := time.Since(start)
	cpuA1 := processCPU(clusterDir, procs)
	api1, err := readAPIStats(ctx, cs)
	if err != nil {
		return err
	}
	apiDuring := apiTable(api0, api1, first, 12)
	if err := <-profDone; err != nil {
		logf("no CPU profile: %v", err)
	} else if c.profile > 0 {
		if out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", berth, profPath).CombinedOutput(); err == nil {
			logf("controller CPU profile, first %ds of the first sync:\n%s", c.profile, out)
		}
	}
	throttle := ""
	if clusterLogs != "" {
		throttle = fmt.Sprintf("client-side throttling waits logged: kube-controller-manager %d, kube-scheduler %d, kwok %d",
			throttled(filepath.Join(clusterLogs, localcluster.BinControllerManager+".log")),
			throttled(filepath.Join(clusterLogs, localcluster.BinScheduler+".log")),
			throttled(filepath.Join(clusterLogs, localcluster.BinKwok+".log")))
		logf("%s", throttle)
	}
	results = append(results, result{"first sync (controller start to Ready)", first.Round(time.Millisecond).String(),
		fmt.Sprintf("%d apps, %d objects, health-gated; %.0f objects/s", c.apps, total, float64(total)/first.Seconds())})
	// The ceiling right after berth's sync, so that both see the same load.
	var cpuDuring string
	apiProfB := func() {}
	if c.raw {
		logf("raw ceiling: the same %d objects by a plain parallel loop", total)
		cpuB0 := processCPU(clusterDir, procs)
		apiProfB = c.profileAPIServer(ctx, cs, filepath.Join(work, "apiserver-raw.pprof"))
		raw, err := rawCeiling(ctx, dyn, cs, c, 64, "raw-apps")
		if err != nil {
			return err
		}
		cpuB1 := processCPU(clusterDir, procs)
		cpuDuring = cpuTable([2]string{"berth first sync", "raw ceiling"}, total, cpuA0, cpuA1, cpuB0, cpuB1)
		results = append(results,
			result{"raw ceiling (same objects, same cluster)", raw.Round(time.Millisecond).String(), "client-go server-side apply, 64 requests at a time, no rate limit; then every Deployment Available"},
			result{"berth first sync / raw ceiling", fmt.Sprintf("%.2fx", first.Seconds()/raw.Seconds()), "goal: within 1.5x"})
		if rawBefore > 0 {
			// The machine's speed drifts over a run (a shared host): the
			// mean of a ceiling taken before berth's sync and one after it
			// cancels a drift that is steady over the three phases.
			mean := (rawBefore + raw) / 2
			results = append(results, result{"raw ceiling before berth's sync, on the fresh cluster", rawBefore.Round(time.Millisecond).String(),
				fmt.Sprintf("berth first sync / this: %.2fx", first.Seconds()/rawBefore.Seconds())},
				result{"berth first sync / mean of the raw ceilings before and after it", fmt.Sprintf("%.2fx", first.Seconds()/mean.Seconds()),
					fmt.Sprintf("mean %s; before / after: %.2fx, the machine's drift over the run", mean.Round(time.Millisecond), rawBefore.Seconds()/raw.Seconds())})
		}
	}
	apiProfA()
	apiProfB()

	// Steady state.
	m := &metricsReader{url: "http://" + metricsAddr + "/metrics"}
	if err := settle(ctx, m); err != nil {
		return err
	}
	w0, err := m.mutating(ctx)
	if err != nil {
		return err
	}
	cpu0, err := cpuTicks(proc.Process.Pid)
	if err != nil {
		return err
	}
	logf("steady state for %s", c.steady)
	select {
	case <-time.After(c.steady):
	case <-ctx.Done():
		return ctx.Err()
	}
	w1, err := m.mutating(ctx)
	if err != nil {
		return err
	}
	cpu1, _ := cpuTicks(proc.Process.Pid)
	hwm, rss := memory(proc.Process.Pid)
	results = append(results,
		result{"steady state: mutating requests by the controller", strconv.Itoa(w1 - w0), fmt.Sprintf("over %s, from the controller's rest_client_requests_total", c.steady)},
		result{"steady state: controller CPU", fmt.Sprintf("%.2f%% of one core", 100*float64(cpu1-cpu0)/ticksPerSecond/c.steady.Seconds()), ""},
		result{"controller RSS after the first sync", fmt.Sprintf("%d MiB now, %d MiB peak", rss>>10, hwm>>10), "VmRSS, VmHWM"},
	)

	// Drift repair latency.
	logf("%d hand edits", c.edits)
	rnd := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	for i := range c.edits {
		app := rnd.IntN(c.apps)
		d, err := edit(ctx, cs, app, c, c.deployment && i%2 == 0)
		if err != nil {
			return fmt.Errorf("edit %d: %w (controller log: %s)", i, err, tail(logFile.Name()))
		}
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	results = append(results, result{"drift repair latency p50 / p99 / max",
		fmt.Sprintf("%s / %s / %s", pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(time.Millisecond)),
		fmt.Sprintf("%d edits: %s; from the edit's response to the repair seen by a watch", c.edits, editKinds(c))})

	// A push, announced by a webhook.
	for _, n := range []int{1, c.changed} {
		logf("push changing %d apps", n)
		if err := writeApps(ctx, ws, c, 0, n, fmt.Sprintf("push-%d-%d", n, time.Now().UnixNano())); err != nil {
			return err
		}
		rev, err := push()
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := webhook(ctx, hookAddr, gitURL+"/ws.git", token); err != nil {
			return err
		}
		if err := waitReady(ctx, k, ns, name, rev, 10*time.Minute); err != nil {
			return err
		}
		results = append(results, result{fmt.Sprintf("push to applied, %d changed app(s)", n), time.Since(t0).Round(time.Millisecond).String(),
			fmt.Sprintf("webhook to Workspace Ready at the new commit; %d ConfigMaps changed, health-gated", n*(c.objects-1))})
	}

	hwm, _ = memory(proc.Process.Pid)
	results = append(results, result{"controller peak RSS over the whole run", fmt.Sprintf("%d MiB", hwm>>10), "VmHWM"})

	if c.flux {
		logf("flux: the same %d apps", c.apps)
		fr, err := benchFlux(ctx, fluxEnv{work: work, kubeconfig: c.kubeconfig, gitURL: gitURL, gitRoot: filepath.Join(work, "git"), dyn: dyn, cs: cs}, c)
		if err != nil {
			// Recorded, not fatal: berth's numbers stand on their own.
			logf("flux: %v", err)
			fr = append(fr, result{"Flux", "not measured", strings.ReplaceAll(err.Error(), "\n", " ")})
		}
		results = append(results, fr...)
	}
	table := render(results, c) + "\n" + apiDuring
	if cpuDuring != "" {
		table += "\n" + cpuDuring
	}
	if throttle != "" {
		table += "\n" + throttle + "\n"
	}
	fmt.Print(table)
	if c.out != "" {
		return os.WriteFile(c.out, []byte(table), 0o644)
	}
	return nil
}

func appNamespace(i int) string { return fmt.Sprintf("bench-apps-%02d", i) }

func appName(i int) string { return fmt.Sprintf("app-%04d", i) }

// writeApps writes apps [from, to) with value in their ConfigMaps, as one commit.
func writeApps(ctx context.Context, ws *workspace.Workspace, c config, from, to int, value string) error {
	var paths []string
	if from == 0 && to == c.apps {
		// Every app: two directories, not 2 x apps pathspecs, which git
		// matches against every file (quadratic at 10,000 apps).
		paths = []string{workspace.AppsDir, workspace.RenderedDir}
	} else {
		for i := from; i < to; i++ {
			paths = append(paths, workspace.AppDir(appName(i)), workspace.AppRenderedDir(appName(i)))
		}
	}
	return ws.Change(ctx, fmt.Sprintf("bench: %d apps at %s", to-from, value), paths, func() error {
		for i := from; i < to; i++ {
			name := appName(i)
			if err := ws.WriteApp(&workspace.App{Name: name, Package: "bench", Namespace: appNamespace(i % c.namespaces)}); err != nil {
				return err
			}
			var objs []*unstructured.Unstructured
			first := 0
			if c.deployment {
				objs, first = append(objs, deployment(name)), 1
			}
			for j := first; j < c.objects; j++ {
				objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": fmt.Sprintf("%s-%d", name, j)},
					"data":     map[string]any{"value": value, "index": strconv.Itoa(j)},
				}})
			}
			if _, err := ws.WriteRendered(ctx, name, objs); err != nil {
				return err
			}
		}
		return nil
	})
}

func deployment(name string) *unstructured.Unstructured {
	labels := map[string]any{"app": name}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"replicas": int64(0),
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app:1"}}},
			},
		},
	}}
}

func git(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// serveGit serves the bare repositories under root with git http-backend.
func serveGit(root string) (string, func(), error) {
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return "", nil, err
	}
	h := &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"), Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	return "http://" + lis.Addr().String(), func() { _ = srv.Close() }, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(ctx context.Context, k client.Client, ns, name, rev string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		var ws berthv1.Workspace
		if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ws); err == nil {
			c := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady)
			if c != nil {
				last = c.Message
				if c.Status == metav1.ConditionTrue && ws.Status.LastAppliedRevision == rev {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workspace not Ready at %s within %s: %s", rev, timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// edit changes one object of an app by hand and returns how long the
// controller took to put it back, as seen by a watch opened before the edit.
func edit(ctx context.Context, cs kubernetes.Interface, app int, c config, scale bool) (time.Duration, error) {
	ns, name := appNamespace(app%c.namespaces), appName(app)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var w watch.Interface
	var done func(watch.Event) bool
	var doEdit func() error
	if scale {
		sel := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
		l, err := cs.AppsV1().Deployments(ns).List(ctx, sel)
		if err != nil {
			return 0, err
		}
		sel.ResourceVersion = l.ResourceVersion
		if w, err = cs.AppsV1().Deployments(ns).Watch(ctx, sel); err != nil {
			return 0, err
		}
		scaled := false
		done = func(e watch.Event) bool {
			d, ok := e.Object.(*appsv1.Deployment)
			if !ok || e.Type != watch.Modified || d.Spec.Replicas == nil {
				return false
			}
			if *d.Spec.Replicas == 3 {
				scaled = true
			}
			return scaled && *d.Spec.Replicas == 0
		}
		doEdit = func() error {
			_, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, name, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}, metav1.UpdateOptions{FieldManager: "kubectl-scale"})
			return err
		}
	} else {
		cm := fmt.Sprintf("%s-%d", name, 1+app%(c.objects-1)) // index 0 is the Deployment, or unused
		sel := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", cm).String()}
		l, err := cs.CoreV1().ConfigMaps(ns).List(ctx, sel)
		if err != nil {
			return 0, err
		}
		sel.ResourceVersion = l.ResourceVersion
		if w, err = cs.CoreV1().ConfigMaps(ns).Watch(ctx, sel); err != nil {
			return 0, err
		}
		done = func(e watch.Event) bool { return e.Type == watch.Added }
		doEdit = func() error { return cs.CoreV1().ConfigMaps(ns).Delete(ctx, cm, metav1.DeleteOptions{}) }
	}
	defer w.Stop()
	if err := doEdit(); err != nil {
		return 0, err
	}
	t0 := time.Now() // the edit is in: the controller can see it from now on
	for {
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				return 0, errors.New("watch closed")
			}
			if done(e) {
				return time.Since(t0), nil
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("%s/%s not repaired within 30s", ns, name)
		}
	}
}

// metricsReader reads the controller's own Prometheus metrics.
type metricsReader struct{ url string }

var restRequests = regexp.MustCompile(`^rest_client_requests_total\{([^}]*)\} (\S+)$`)

// mutating sums the controller's non-GET requests to the API server.
func (m *metricsReader) mutating(ctx context.Context) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		mm := restRequests.FindStringSubmatch(line)
		if mm == nil || strings.Contains(mm[1], `method="GET"`) {
			continue
		}
		v, _ := strconv.ParseFloat(mm[2], 64)
		n += int(v)
	}
	return n, nil
}

// settle waits until the controller stopped writing for two seconds (the
// deployment controller's status updates of the first sync are not its writes,
// but its own Events and status are).
func settle(ctx context.Context, m *metricsReader) error {
	last, stable := -1, time.Now()
	for time.Since(stable) < 2*time.Second {
		n, err := m.mutating(ctx)
		if err != nil {
			return err
		}
		if n != last {
			last, stable = n, time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

const ticksPerSecond = 100 // USER_HZ on Linux

func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

// memory returns VmHWM and VmRSS in KiB.
func memory(pid int) (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}

func webhook(ctx context.Context, addr, repo, token string) error {
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, repo))
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/hooks/git", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i].Round(time.Millisecond)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func render(rs []result, c config) string {
	var b strings.Builder
	kinds := "1 Deployment + ConfigMaps"
	if !c.deployment {
		kinds = "ConfigMaps"
	}
	fmt.Fprintf(&b, "| measurement (%d apps x %d objects: %s; one controller) | result | notes |\n|---|---|---|\n", c.apps, c.objects, kinds)
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.name, r.value, r.note)
	}
	return b.String()
}

func editKinds(c config) string {
	if c.deployment {
		return "scale a Deployment, delete a ConfigMap, alternately"
	}
	return "delete a ConfigMap"
}

// profileAPIServer starts a CPU profile of the API server when asked for
// one (-apiserver-profile) and returns the function that waits for it and
// prints its top functions.
func (c config) profileAPIServer(ctx context.Context, cs kubernetes.Interface, path string) func() {
	if c.apiProfile <= 0 {
		return func() {}
	}
	done := make(chan error, 1)
	go func() { done <- apiServerProfile(ctx, cs, c.apiProfile, path) }()
	return func() {
		if err := <-done; err != nil {
			logf("no API server profile: %v", err)
			return
		}
		out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", path).CombinedOutput()
		if err != nil {
			logf("reading %s: %v", path, err)
			return
		}
		logf("API server CPU profile, first %ds (%s):\n%s", c.apiProfile, filepath.Base(path), out)
	}
}
