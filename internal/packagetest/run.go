package packagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Masterminds/semver/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/buildinfo"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/render"
)

// RunOptions configures Run.
type RunOptions struct {
	// Dir is the package's directory; see LintOptions.Dir.
	Dir string
	// From is the version the upgrade step starts from: by default the
	// newest version of the package's catalog below the tested one; none
	// skips the step.
	From string
	// Cluster returns the client configuration of the cluster to test on.
	Cluster func() (*rest.Config, error)
	// Executable is the berth binary the throwaway workspace's git runs as
	// its encryption filter.
	Executable string
	// ChartCache is where charts from chart repositories are kept.
	ChartCache string
	// KubeVersion is the Kubernetes version charts are rendered for.
	KubeVersion string
	// Timeout bounds each deploy's wait for health; DefaultTimeout when zero.
	Timeout time.Duration
	// OnStep, when set, is called as each step ends.
	OnStep func(Step)
}

// FromNone in RunOptions.From skips the upgrade step.
const FromNone = "none"

// DefaultTimeout bounds a deploy's wait for health.
const DefaultTimeout = 5 * time.Minute

// Run tests the package in o.Dir on a cluster, in a throwaway workspace
// (a temporary directory) through the same lifecycle as berth install,
// deploy, upgrade and uninstall: render; install with the preflight
// server-side dry run; deploy until healthy; deploy again expecting no write;
// uninstall with the data expecting nothing of the app left; then install the
// previous version, deploy it and upgrade it to this one (across a breaking
// boundary: expect berth to refuse). A step that fails skips those that need
// it. The report says what passed; an error means the test could not run.
func Run(ctx context.Context, o RunOptions) (*Report, error) {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	s, err := open(o.Dir)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	digest, err := Digest(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("digest of %s: %w", o.Dir, err)
	}
	from, err := s.previous(ctx, o.From)
	if err != nil {
		return nil, err
	}
	info := buildinfo.Get()
	r := &Report{
		APIVersion: pkgspec.APIVersion, Kind: ReportKind, Package: s.pkg.Name, Version: s.pkg.Version,
		Digest: digest, From: from, Berth: info.Version + " (" + info.Commit + ")", Started: time.Now().UTC(),
	}
	t, err := newTester(ctx, s, o, r)
	if err != nil {
		return nil, err
	}
	defer t.close()
	t.run(ctx)
	r.Finished = time.Now().UTC()
	r.Status = StatusPassed
	for _, st := range r.Steps {
		if st.Status == StatusFailed {
			r.Status = StatusFailed
		}
	}
	return r, nil
}

// previous returns the version to upgrade from: want when given (it must be
// in the catalog), else the newest earlier version of the catalog.
func (s *subject) previous(ctx context.Context, want string) (string, error) {
	if want == FromNone {
		return "", nil
	}
	e, _, err := s.entry(ctx)
	if err != nil {
		return "", err
	}
	cur, err := semver.NewVersion(s.pkg.Version)
	if err != nil {
		return "", err
	}
	var best *semver.Version
	for _, v := range versionsOf(e) {
		if want != "" {
			if v == want {
				return want, nil
			}
			continue
		}
		sv, err := semver.NewVersion(v)
		if err == nil && sv.LessThan(cur) && (best == nil || sv.GreaterThan(best)) {
			best = sv
		}
	}
	switch {
	case want != "" && !s.inCatalog:
		return "", fmt.Errorf("%s is not in a catalog directory (CATALOG/%s/%s), so it has no version %s to upgrade from", s.dir, s.pkg.Name, s.pkg.Version, want)
	case want != "":
		return "", fmt.Errorf("the catalog %s has no version %s of %s to upgrade from (versions: %s)", s.root, want, s.pkg.Name, strings.Join(versionsOf(e), ", "))
	}
	if best == nil {
		return "", nil
	}
	return best.Original(), nil
}

func versionsOf(e *catalog.Entry) []string {
	if e == nil {
		return nil
	}
	out := make([]string, len(e.Versions))
	for i, v := range e.Versions {
		out[i] = v.Version
	}
	return out
}

// chartFetcher returns the fetcher of charts from chart repositories kept in
// cache, through the mirrors of BERTH_CHART_MIRROR as berth install reads
// them; nil without a cache.
func chartFetcher(cache string) (func(context.Context, *pkgspec.Package) (map[string][]byte, error), error) {
	if cache == "" {
		return nil, nil
	}
	mirrors, err := catalog.MirrorsFromEnv()
	if err != nil {
		return nil, err
	}
	return (&catalog.ChartFetcher{Cache: cache, Mirrors: mirrors}).Fetch, nil
}

// tester runs the steps in a throwaway workspace.
type tester struct {
	s      *subject
	o      RunOptions
	r      *Report
	env    *lifecycle.Env
	tmp    string
	writes *atomic.Int64
	values map[string]any
	// installed are the apps to remove when the test ends early.
	installed map[string]bool
	// namespaces are those the test created, deleted at the end (an
	// uninstall has deleted them already).
	namespaces []string
}

func newTester(ctx context.Context, s *subject, o RunOptions, r *Report) (*tester, error) {
	tmp, err := os.MkdirTemp("", "berth-package-test-")
	if err != nil {
		return nil, err
	}
	t := &tester{s: s, o: o, r: r, tmp: tmp, writes: &atomic.Int64{}, values: requiredSamples(s.pkg), installed: map[string]bool{}}
	ws, _, err := lifecycle.Init(ctx, filepath.Join(tmp, "ws"), lifecycle.InitOptions{Home: filepath.Join(tmp, "home"), Executable: o.Executable})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("creating the throwaway workspace: %w", err)
	}
	t.env = &lifecycle.Env{
		WS: ws, Catalogs: s.set, Cluster: t.counted(o.Cluster), Preflight: true,
		KubeVersion: o.KubeVersion, ChartCache: o.ChartCache,
	}
	return t, nil
}

// counted wraps the cluster's transport to count the requests that write.
func (t *tester) counted(cluster func() (*rest.Config, error)) func() (*rest.Config, error) {
	return func() (*rest.Config, error) {
		if cluster == nil {
			return nil, errors.New("no cluster to test on")
		}
		cfg, err := cluster()
		if err != nil {
			return nil, err
		}
		cfg = rest.CopyConfig(cfg)
		wrap := cfg.WrapTransport
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			if wrap != nil {
				rt = wrap(rt)
			}
			return &countingTransport{rt: rt, writes: t.writes}
		}
		return cfg, nil
	}
}

type countingTransport struct {
	rt     http.RoundTripper
	writes *atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		c.writes.Add(1)
	}
	return c.rt.RoundTrip(r)
}

// createNamespace creates the app's namespace, labelled as the app's (so
// berth owns it and deletes it with the app), so that the preflight
// dry-runs every object: the API server cannot dry-run an object in a
// namespace that does not exist yet, and the preflight skips those.
func (t *tester) createNamespace(ctx context.Context, name string) error {
	dyn, err := t.dynamic()
	if err != nil {
		return err
	}
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": name, "labels": map[string]any{apply.LabelManagedBy: apply.ManagedByValue, apply.LabelApp: name}},
	}}
	if _, err := dyn.Resource(namespaces).Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the test's namespace %s: %w", name, err)
	}
	t.namespaces = append(t.namespaces, name)
	return nil
}

var namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

func (t *tester) dynamic() (dynamic.Interface, error) {
	cfg, err := t.env.Cluster()
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfig(cfg)
}

// close removes what a failed test left in the cluster, and the workspace.
func (t *tester) close() {
	ctx, cancel := context.WithTimeout(context.Background(), t.o.Timeout)
	defer cancel()
	for app := range t.installed {
		_, _ = t.env.Uninstall(ctx, lifecycle.UninstallOptions{App: app, DeleteData: true, Timeout: t.o.Timeout})
	}
	if dyn, err := t.dynamic(); err == nil {
		for _, ns := range t.namespaces {
			_ = dyn.Resource(namespaces).Delete(ctx, ns, metav1.DeleteOptions{})
		}
	}
	os.RemoveAll(t.tmp)
}

// step runs fn as the step called name and records it; fn returns a detail.
func (t *tester) step(name StepName, fn func() (string, error)) bool {
	start := time.Now()
	detail, err := fn()
	st := Step{Name: name, Status: StatusPassed, Detail: detail, Seconds: math.Round(time.Since(start).Seconds()*1000) / 1000}
	if err != nil {
		st.Status, st.Error = StatusFailed, err.Error()
	}
	t.record(st)
	return err == nil
}

func (t *tester) skip(name StepName, why string) {
	t.record(Step{Name: name, Status: StatusSkipped, Detail: why})
}

func (t *tester) record(st Step) {
	t.r.Steps = append(t.r.Steps, st)
	if t.o.OnStep != nil {
		t.o.OnStep(st)
	}
}

func (t *tester) run(ctx context.Context) {
	app := appName(t.s.pkg.Name)
	if !t.step(StepRender, func() (string, error) { return t.render(ctx) }) {
		for _, n := range []StepName{StepDryRun, StepInstall, StepRedeploy, StepUninstall, StepUpgrade} {
			t.skip(n, "the package does not render")
		}
		return
	}
	installed := t.step(StepDryRun, func() (string, error) { return t.install(ctx, app, t.s.pkg.Version) })
	healthy := false
	if installed {
		healthy = t.step(StepInstall, func() (string, error) { return t.deploy(ctx, app) })
	} else {
		t.skip(StepInstall, "the dry run failed")
	}
	if healthy {
		t.step(StepRedeploy, func() (string, error) { return t.redeploy(ctx, app) })
	} else {
		t.skip(StepRedeploy, "the app did not install")
	}
	if installed {
		t.step(StepUninstall, func() (string, error) { return t.uninstall(ctx, app) })
	} else {
		t.skip(StepUninstall, "nothing was installed")
	}
	switch {
	case t.r.From == "":
		t.skip(StepUpgrade, "no earlier version to upgrade from")
	case !healthy:
		t.skip(StepUpgrade, "the version itself did not install")
	default:
		t.step(StepUpgrade, func() (string, error) { return t.upgrade(ctx, app+"-up") })
	}
}

// appName returns a fresh app name for the package, which is also its
// namespace.
func appName(pkg string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	if len(pkg) > 40 {
		pkg = strings.TrimRight(pkg[:40], "-")
	}
	return "pt-" + pkg + "-" + hex.EncodeToString(b)
}

// requiredSamples gives each required parameter without a default a sample
// value, so a package that asks for a domain can be tested unattended.
func requiredSamples(pkg *pkgspec.Package) map[string]any {
	values := map[string]any{}
	for _, q := range pkg.Config {
		if q.Required && q.Default == nil && q.Generate == nil && q.When == "" {
			values[q.Name] = sample(q)
		}
	}
	return values
}

func (t *tester) render(ctx context.Context) (string, error) {
	charts, err := chartFetcher(t.o.ChartCache)
	if err != nil {
		return "", err
	}
	res, err := t.s.render(ctx, renderOptions{Values: t.values, Charts: charts, KubeVersion: t.o.KubeVersion})
	if err != nil {
		return "", err
	}
	n := 0
	for _, p := range res.Parts {
		n += len(p.Result.Objects)
	}
	return fmt.Sprintf("%d objects in %d parts", n, len(res.Parts)), nil
}

func (t *tester) install(ctx context.Context, app, version string) (string, error) {
	if err := t.createNamespace(ctx, app); err != nil {
		return "", err
	}
	_, err := t.env.Install(ctx, lifecycle.InstallOptions{Package: t.s.pkg.Name + "@" + version, Name: app, Namespace: app, Values: t.values})
	if err != nil {
		return "", err
	}
	t.installed[app] = true
	return fmt.Sprintf("%s %s installed as app %s; the API server accepted every object in a server-side dry run", t.s.pkg.Name, version, app), nil
}

func (t *tester) deploy(ctx context.Context, app string) (string, error) {
	res, err := t.env.Deploy(ctx, lifecycle.DeployOptions{Apps: []string{app}, Timeout: t.o.Timeout})
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		return "", err
	}
	objects := 0
	for _, a := range res.Apps {
		objects += a.Objects
	}
	return fmt.Sprintf("%d objects of %d apps healthy", objects, len(res.Apps)), nil
}

func (t *tester) redeploy(ctx context.Context, app string) (string, error) {
	before := t.writes.Load()
	res, err := t.env.Deploy(ctx, lifecycle.DeployOptions{Apps: []string{app}, Timeout: t.o.Timeout})
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		return "", err
	}
	if n := t.writes.Load() - before; n != 0 {
		var actions []string
		for _, a := range res.Apps {
			actions = append(actions, fmt.Sprintf("%s %v", a.App, a.Actions))
		}
		return "", fmt.Errorf("deploying the unchanged app again made %d writes to the cluster, want 0 (%s): something in the package changes on every deploy", n, strings.Join(actions, "; "))
	}
	return "0 writes", nil
}

func (t *tester) uninstall(ctx context.Context, app string) (string, error) {
	res, err := t.env.Uninstall(ctx, lifecycle.UninstallOptions{App: app, DeleteData: true, Timeout: t.o.Timeout})
	if err != nil {
		return "", err
	}
	delete(t.installed, app)
	cfg, err := t.env.Cluster()
	if err != nil {
		return "", err
	}
	left, err := leftovers(ctx, cfg, app, t.o.Timeout)
	if err != nil {
		return "", err
	}
	if len(left) > 0 {
		return "", fmt.Errorf("uninstall --delete-data left %d objects of the app in the cluster: %s", len(left), strings.Join(left, ", "))
	}
	detail := "nothing of the app is left in the cluster"
	for _, ns := range res.KeptNamespaces {
		// What the app's software made at run time (cert-manager's
		// webhook makes its CA Secret) is not berth's to delete.
		detail += fmt.Sprintf("; namespace %s is kept, handed over: it holds %s", ns.Name, strings.Join(ns.Holds, ", "))
	}
	return detail, nil
}

func (t *tester) upgrade(ctx context.Context, app string) (string, error) {
	from := t.r.From
	if _, err := t.install(ctx, app, from); err != nil {
		return "", fmt.Errorf("installing %s to upgrade from: %w", from, err)
	}
	if _, err := t.deploy(ctx, app); err != nil {
		return "", fmt.Errorf("deploying %s to upgrade from: %w", from, err)
	}
	var detail string
	_, err := t.env.Upgrade(ctx, lifecycle.UpgradeOptions{Apps: []string{app}, To: t.s.pkg.Version})
	var breaking *lifecycle.BreakingError
	switch {
	case errors.As(err, &breaking):
		// The package (or a new major version) says the move needs the
		// user's action on the data: berth refusing it is the expected
		// outcome, and the move itself cannot be tested unattended.
		detail = fmt.Sprintf("%s -> %s is breaking and berth refuses it without --allow-breaking, as the package declares: %v", from, t.s.pkg.Version, err)
	case err != nil:
		return "", err
	default:
		if _, err := t.deploy(ctx, app); err != nil {
			return "", fmt.Errorf("deploying the upgrade from %s: %w", from, err)
		}
		detail = fmt.Sprintf("%s -> %s upgraded and healthy", from, t.s.pkg.Version)
	}
	if _, err := t.env.Uninstall(ctx, lifecycle.UninstallOptions{App: app, DeleteData: true, Timeout: t.o.Timeout}); err != nil {
		return "", fmt.Errorf("removing the upgraded app: %w", err)
	}
	delete(t.installed, app)
	return detail, nil
}

// leftovers waits until the cluster holds no live object labelled as the
// app's, and its namespace is gone or going, and returns what is still there
// when timeout passes.
func leftovers(ctx context.Context, cfg *rest.Config, app string, timeout time.Duration) ([]string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lists, err := discovery.ServerPreferredResources(dc)
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("listing the cluster's resources: %w", err)
	}
	var gvrs []schema.GroupVersionResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, res := range l.APIResources {
			if strings.Contains(res.Name, "/") || !hasVerb(res.Verbs, "list") {
				continue
			}
			gvrs = append(gvrs, gv.WithResource(res.Name))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		left, err := scan(ctx, dyn, gvrs, app)
		if err != nil || len(left) == 0 {
			return left, err
		}
		select {
		case <-ctx.Done():
			return left, nil
		case <-tick.C:
		}
	}
}

func scan(ctx context.Context, dyn dynamic.Interface, gvrs []schema.GroupVersionResource, app string) ([]string, error) {
	var left []string
	for _, gvr := range gvrs {
		list, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: render.LabelApp + "=" + app})
		if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsForbidden(err) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return left, nil
			}
			return nil, fmt.Errorf("listing %s: %w", gvr.Resource, err)
		}
		for _, o := range list.Items {
			if o.GetDeletionTimestamp() != nil {
				continue
			}
			id := o.GetKind() + "/" + o.GetName()
			if o.GetNamespace() != "" {
				id = o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
			}
			left = append(left, id)
		}
	}
	ns, err := dyn.Resource(namespaces).Get(ctx, app, metav1.GetOptions{})
	// A namespace uninstall handed over (it holds objects berth did not
	// make for the app) is reported, not left behind.
	if err == nil && ns.GetDeletionTimestamp() == nil && ns.GetLabels()[lifecycle.LabelKeptFrom] != app && !contains(left, "Namespace/"+app) {
		left = append(left, "Namespace/"+app)
	}
	sort.Strings(left)
	return left, nil
}

func hasVerb(verbs []string, v string) bool { return contains(verbs, v) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
