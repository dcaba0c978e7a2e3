// Command bench compares berth's deploy engine with its peers on one local API
// server: a minimal parallel server-side-apply loop in client-go (the physical
// limit), berth (the CLI binary and the library), kubectl apply --server-side and
// helm install/upgrade. It times a cold apply and an unchanged re-apply of each
// workload, and counts the requests each makes from the API server's own
// /metrics (apiserver_request_total). Run it with bench/run.sh.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/localcluster"
)

const helmVersion = "v4.0.5"

type config struct {
	kubeconfig string
	tools      string
	workloads  string
	out        string
	workers    int
	runs       int
}

func main() {
	var c config
	flag.StringVar(&c.kubeconfig, "kubeconfig", "", "use this cluster instead of starting a fresh local one")
	flag.StringVar(&c.tools, "tools", "raw,berth,berth-lib,kubectl,helm", "tools to run, comma-separated")
	flag.StringVar(&c.workloads, "workloads", "configmaps,deployments", "workloads to run: configmaps (1,000 ConfigMaps), deployments (500 Deployments + 500 Services)")
	flag.StringVar(&c.out, "o", "", "also write the results table (markdown) to this file")
	flag.IntVar(&c.workers, "workers", 32, "workers of the raw client-go loop")
	flag.IntVar(&c.runs, "runs", 3, "runs of each measurement; the table shows the median")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type workload struct {
	name string
	desc string
	yaml string
	objs []*unstructured.Unstructured
}

func workloads(names string) ([]workload, error) {
	var out []workload
	for _, n := range strings.Split(names, ",") {
		var b strings.Builder
		var desc string
		switch n {
		case "configmaps":
			desc = "1,000 ConfigMaps"
			for i := 0; i < 1000; i++ {
				fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  key: value-%d\n  other: some longer value to make the object a little more realistic\n", i, i)
			}
		case "deployments":
			desc = "500 Deployments (replicas 0) + 500 Services"
			for i := 0; i < 500; i++ {
				fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-%[1]d
spec:
  replicas: 0
  selector:
    matchLabels: {app: web-%[1]d}
  template:
    metadata:
      labels: {app: web-%[1]d}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-%[1]d
spec:
  selector: {app: web-%[1]d}
  ports: [{port: 80, targetPort: 8080}]
`, i)
			}
		default:
			return nil, fmt.Errorf("unknown workload %q: use configmaps or deployments", n)
		}
		objs, err := apply.DecodeManifests(n, strings.NewReader(b.String()))
		if err != nil {
			return nil, err
		}
		out = append(out, workload{name: n, desc: desc, yaml: b.String(), objs: objs})
	}
	return out, nil
}

type env struct {
	cfg        *rest.Config
	kubeconfig string
	kubectl    string
	helm       string
	berth      string
	work       string
	cs         *kubernetes.Clientset
	workers    int
}

func run(ctx context.Context, c config) error {
	wls, err := workloads(c.workloads)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	e := &env{work: work, kubeconfig: c.kubeconfig, workers: c.workers}
	tools := strings.Split(c.tools, ",")

	fmt.Fprintln(os.Stderr, "• building the binaries (kubectl with the control plane, helm "+helmVersion+", berth)")
	bin, err := localcluster.EnsureBinaries(ctx, localcluster.DefaultBuildOptions())
	if err != nil {
		return err
	}
	e.kubectl = filepath.Join(bin, localcluster.BinKubectl)
	if e.helm, err = ensureHelm(ctx); err != nil {
		return err
	}
	e.berth = filepath.Join(work, "berth")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", e.berth, "berth.dev/berth/cmd/berth").CombinedOutput(); err != nil {
		return fmt.Errorf("building berth: %v\n%s", err, out)
	}

	if e.kubeconfig == "" {
		home := filepath.Join(work, "home")
		fmt.Fprintln(os.Stderr, "• starting a fresh local cluster")
		cl, _, err := localcluster.Up(ctx, localcluster.UpOptions{Home: home, Name: "bench", Nodes: 1})
		defer func() {
			_, _ = localcluster.Down(context.Background(), localcluster.DownOptions{Home: home, Name: "bench", Purge: true})
		}()
		if err != nil {
			return err
		}
		e.kubeconfig = cl.KubeconfigPath()
	}
	e.cfg, err = clientcmd.BuildConfigFromFlags("", e.kubeconfig)
	if err != nil {
		return err
	}
	e.cfg.QPS, e.cfg.Burst = -1, 0
	if e.cs, err = kubernetes.NewForConfig(e.cfg); err != nil {
		return err
	}

	paths, charts := map[string]string{}, map[string]string{}
	for _, wl := range wls {
		paths[wl.name] = filepath.Join(work, wl.name+".yaml")
		if err := os.WriteFile(paths[wl.name], []byte(wl.yaml), 0o644); err != nil {
			return err
		}
		if charts[wl.name], err = writeChart(work, wl); err != nil {
			return err
		}
	}
	var all []row
	for run := 1; run <= c.runs; run++ {
		// Rotate the order of the tools from run to run, so that none is
		// always the first on a fresh API server or the one after the
		// heaviest cleanup.
		order := append(append([]string{}, tools[(run-1)%len(tools):]...), tools[:(run-1)%len(tools)]...)
		for _, wl := range wls {
			for _, tool := range order {
				ns := fmt.Sprintf("bench-%s-%s-%d", tool, wl.name, run)
				if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
					return err
				}
				if err := e.settle(ctx, ns); err != nil {
					return err
				}
				for _, phase := range []string{"cold", "unchanged"} {
					r, err := e.measure(ctx, tool, phase, wl, paths[wl.name], charts[wl.name], ns)
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", tool, phase, wl.name, err)
					}
					fmt.Fprintf(os.Stderr, "  run %d  %-9s %-11s %-9s %8s  writes %-5d reads %d\n", run, tool, wl.name, phase, r.elapsed.Round(time.Millisecond), r.writes, r.reads)
					all = append(all, r)
					// Let the controllers finish their own writes (the
					// Deployments' revision annotation) so that they are
					// not counted as the next phase's.
					if err := e.settleWorkloads(ctx, ns); err != nil {
						return err
					}
				}
				// Free the API server's memory and watch cache, and wait
				// until the namespace controller is done deleting.
				if err := e.deleteNamespace(ctx, ns); err != nil {
					return err
				}
			}
		}
	}
	rows := medians(all)
	table := render(rows, wls)
	fmt.Print(table)
	if c.out != "" {
		return os.WriteFile(c.out, []byte(table), 0o644)
	}
	return nil
}

// settle waits until the controllers are done with a new namespace (its root
// CA ConfigMap and default ServiceAccount exist), so their writes are not
// counted as a tool's.
func (e *env) settle(ctx context.Context, ns string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		_, err1 := e.cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		_, err2 := e.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err1 == nil && err2 == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("namespace %s not ready after a minute", ns)
}

// settleWorkloads waits until the deployment controller has seen every
// Deployment in ns.
func (e *env) settleWorkloads(ctx context.Context, ns string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := e.cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		done := true
		for _, d := range list.Items {
			if d.Status.ObservedGeneration != d.Generation || d.Annotations["deployment.kubernetes.io/revision"] == "" {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the deployments in %s were not observed by their controller within 2 minutes", ns)
}

func (e *env) deleteNamespace(ctx context.Context, ns string) error {
	if err := e.cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := e.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("namespace %s still exists 5 minutes after its deletion", ns)
}

// medians keeps, per tool, workload and phase, the run with the median time.
func medians(all []row) []row {
	type key struct{ tool, workload, phase string }
	groups := map[key][]row{}
	var order []key
	for _, r := range all {
		k := key{r.tool, r.workload, r.phase}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []row
	for _, k := range order {
		g := groups[k]
		sort.Slice(g, func(i, j int) bool { return g[i].elapsed < g[j].elapsed })
		m := g[len(g)/2]
		m.min, m.max = g[0].elapsed, g[len(g)-1].elapsed
		out = append(out, m)
	}
	return out
}

type row struct {
	tool, workload, phase string
	elapsed               time.Duration
	min, max              time.Duration
	writes, reads         int
	writesBy              map[string]int
}

func (e *env) measure(ctx context.Context, tool, phase string, wl workload, path, chart, ns string) (row, error) {
	before, err := e.requests(ctx)
	if err != nil {
		return row{}, err
	}
	start := time.Now()
	switch tool {
	case "raw":
		err = e.rawLoop(ctx, wl.objs, ns)
	case "berth":
		err = e.exec(ctx, e.berth, "apply", "--app", "bench", "-n", ns, "-f", path, "--kubeconfig", e.kubeconfig)
	case "berth-lib":
		err = e.berthLib(ctx, wl.objs, ns)
	case "kubectl":
		err = e.exec(ctx, e.kubectl, "apply", "--server-side", "--field-manager", "bench", "-n", ns, "-f", path, "--kubeconfig", e.kubeconfig)
	case "helm":
		verb := "install"
		if phase != "cold" {
			verb = "upgrade"
		}
		err = e.exec(ctx, e.helm, verb, "bench", chart, "-n", ns, "--kubeconfig", e.kubeconfig)
	default:
		err = fmt.Errorf("unknown tool %q: use raw, berth, berth-lib, kubectl or helm", tool)
	}
	elapsed := time.Since(start)
	if err != nil {
		return row{}, err
	}
	after, err := e.requests(ctx)
	if err != nil {
		return row{}, err
	}
	r := row{tool: tool, workload: wl.name, phase: phase, elapsed: elapsed, writesBy: map[string]int{}}
	for k, n := range after {
		d := n - before[k]
		if d <= 0 {
			continue
		}
		if k.mutating() {
			r.writes += d
			r.writesBy[k.verb+" "+k.resource] += d
		} else {
			r.reads += d
		}
	}
	return r, nil
}

func (e *env) exec(ctx context.Context, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args[:2], " "), err, tail(out.String()))
	}
	return nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// rawLoop is the least a client can do: one server-side apply per object, in
// parallel, with no reads and no bookkeeping.
func (e *env) rawLoop(ctx context.Context, objs []*unstructured.Unstructured, ns string) error {
	dyn, err := dynamic.NewForConfig(e.cfg)
	if err != nil {
		return err
	}
	gvr := func(o *unstructured.Unstructured) schema.GroupVersionResource {
		switch o.GetKind() {
		case "Deployment":
			return schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
		case "Service":
			return schema.GroupVersionResource{Version: "v1", Resource: "services"}
		}
		return schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	}
	next := make(chan *unstructured.Unstructured)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < e.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range next {
				_, err := dyn.Resource(gvr(o)).Namespace(ns).Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "raw", Force: true})
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, o := range objs {
		next <- o
	}
	close(next)
	wg.Wait()
	return firstErr
}

func (e *env) berthLib(ctx context.Context, objs []*unstructured.Unstructured, ns string) error {
	eng, err := apply.NewEngine(e.cfg, apply.DefaultOptions())
	if err != nil {
		return err
	}
	opts := apply.DefaultApplyOptions()
	opts.App, opts.Namespace = "bench", ns
	_, err = eng.Apply(ctx, objs, opts)
	return err
}

type reqKey struct {
	verb, resource, subresource, dryRun string
}

func (k reqKey) mutating() bool {
	switch k.verb {
	case "POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION":
		return true
	}
	return false
}

var (
	metricLine = regexp.MustCompile(`^apiserver_request_total\{([^}]*)\} (\S+)$`)
	labelPair  = regexp.MustCompile(`(\w+)="([^"]*)"`)
	benchKinds = map[string]bool{"configmaps": true, "deployments": true, "services": true, "secrets": true}
)

// requests reads apiserver_request_total for the kinds the workloads touch (and
// the Secrets berth and helm keep their records in), leaving out subresources
// such as status, which controllers write on their own.
func (e *env) requests(ctx context.Context) (map[reqKey]int, error) {
	raw, err := e.cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	out := map[reqKey]int{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[1], -1) {
			labels[p[1]] = p[2]
		}
		if !benchKinds[labels["resource"]] || labels["subresource"] != "" {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		out[reqKey{labels["verb"], labels["resource"], labels["subresource"], labels["dry_run"]}] += int(v)
	}
	return out, nil
}

func writeChart(work string, wl workload) (string, error) {
	dir := filepath.Join(work, "chart-"+wl.name)
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		return "", err
	}
	chart := "apiVersion: v2\nname: bench-" + wl.name + "\nversion: 0.1.0\n"
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte(chart), 0o644); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "templates", "objects.yaml"), []byte(wl.yaml), 0o644)
}

// ensureHelm builds helm with 'go install' into berth's cache, once.
func ensureHelm(ctx context.Context) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "berth", "bench", "bin", helmVersion)
	bin := filepath.Join(dir, "helm")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.CommandContext(ctx, "go", "install", "helm.sh/helm/v4/cmd/helm@"+helmVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	cmd.Dir = os.TempDir() // outside berth's module
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building helm %s: %v\n%s", helmVersion, err, out)
	}
	return bin, nil
}

func render(rows []row, wls []workload) string {
	var b strings.Builder
	find := func(tool, wl, phase string) (row, bool) {
		for _, r := range rows {
			if r.tool == tool && r.workload == wl && r.phase == phase {
				return r, true
			}
		}
		return row{}, false
	}
	for _, wl := range wls {
		for _, phase := range []string{"cold", "unchanged"} {
			fmt.Fprintf(&b, "\n**%s, %s apply**\n\n", wl.desc, phase)
			fmt.Fprintln(&b, "| tool | median time (min-max) | vs raw loop | vs berth | mutating requests | reads |")
			fmt.Fprintln(&b, "| --- | ---: | ---: | ---: | ---: | ---: |")
			raw, hasRaw := find("raw", wl.name, phase)
			br, hasBerth := find("berth", wl.name, phase)
			for _, r := range rows {
				if r.workload != wl.name || r.phase != phase {
					continue
				}
				ratio := func(ok bool, base row) string {
					if !ok || base.elapsed == 0 {
						return "-"
					}
					return fmt.Sprintf("%.2fx", float64(r.elapsed)/float64(base.elapsed))
				}
				fmt.Fprintf(&b, "| %s | %s (%s-%s) | %s | %s | %d%s | %d |\n", r.tool, r.elapsed.Round(time.Millisecond), r.min.Round(time.Millisecond), r.max.Round(time.Millisecond), ratio(hasRaw, raw), ratio(hasBerth, br), r.writes, breakdown(r.writesBy), r.reads)
			}
		}
	}
	return b.String()
}

func breakdown(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}
