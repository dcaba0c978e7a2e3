package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// plan is a resolved workspace: every app (the user's and the shared ones) with
// the solution that fixes their versions.
type plan struct {
	apps     map[string]*workspace.App
	solution *resolve.Solution
	lock     *workspace.Lock
	// charts fetches the charts the apps take from chart repositories and
	// records their digests for the lock.
	charts *catalog.ChartFetcher
	// notes are the rendered apps' package notes (secrets hidden), by app.
	notes map[string]string
	// kube is the one cluster's Kubernetes, as charts see it (nil: berth's
	// defaults); the lock records it.
	kube *workspace.ClusterKubernetes
}

// constraint is the version constraint an app is resolved with. An app that
// follows a channel keeps its locked version until it is upgraded; upgrade
// moves it to the channel's current version, never below the locked one. An
// app with a version constraint upgrades within it, also never below.
func (e *Env) constraint(ctx context.Context, a *workspace.App, lock *workspace.Lock, upgrade bool, to string) (string, error) {
	if to != "" {
		return "=" + to, nil
	}
	locked := lockedVersion(lock, a.Name)
	if a.Version != "" {
		if upgrade {
			return notBelow(a.Version, locked), nil
		}
		return a.Version, nil
	}
	if locked != "" && !upgrade {
		return "=" + locked, nil
	}
	f, err := e.Catalogs.Find(ctx, a.Package)
	if err != nil {
		return "", err
	}
	channel := a.Channel
	if channel == "" {
		channel = "stable"
	}
	v, ok := f.Entry.Channels[channel]
	if !ok {
		return "", fmt.Errorf("app %s follows channel %q, which package %s does not have (channels: %s); set another with 'berth upgrade %s --channel C'",
			a.Name, channel, a.Package, strings.Join(f.Entry.ChannelNames(), ", "), a.Name)
	}
	return "=" + channelVersion(v, locked), nil
}

// solve resolves apps. Shared dependencies become apps of their own, named after
// their package (render.SharedApp), pinned to the version their dependants need.
// Apps named in upgrade are resolved afresh (to the version given, or the newest
// their constraint or channel allows); all others prefer their locked versions.
func (e *Env) solve(ctx context.Context, apps map[string]*workspace.App, lock *workspace.Lock, upgrade map[string]string) (*plan, error) {
	if err := e.checkLockCatalogs(lock); err != nil {
		return nil, err
	}
	u, prefer, err := e.Catalogs.Universe(ctx)
	if err != nil {
		return nil, err
	}
	locked := map[string]string{}
	for _, in := range lock.Instances {
		owner, _, _ := strings.Cut(strings.TrimPrefix(in.Key, "app:"), "/")
		if in.Role == string(resolve.RoleShared) {
			owner = strings.TrimPrefix(in.Key, "shared:")
		}
		if _, up := upgrade[owner]; !up {
			locked[in.Key] = in.Version
		}
	}
	var requests []resolve.Request
	for _, name := range slices.Sorted(maps.Keys(apps)) {
		a := apps[name]
		if a.Shared {
			continue // derived from the apps that need it
		}
		to, up := upgrade[name]
		if up && to == "" && a.Version != "" && !strings.HasPrefix(a.Version, "=") {
			// An app with a version constraint follows the constraint, not a
			// channel: its upgrade is the newest version the constraint
			// allows, not the stable channel's.
			prefer = maps.Clone(prefer)
			delete(prefer, a.Package)
		}
		c, err := e.constraint(ctx, a, lock, up, to)
		if err != nil {
			return nil, err
		}
		requests = append(requests, resolve.Request{App: a.Name, Package: a.Package, Constraint: c, Installed: true})
	}
	sol, err := resolve.Solve(u, resolve.Input{Requests: requests, Locked: locked, Prefer: prefer})
	if err != nil {
		return nil, err
	}
	// Install every shared instance as an app of its own at the chosen version.
	out := map[string]*workspace.App{}
	for name, a := range apps {
		if !a.Shared {
			out[name] = a
		}
	}
	shared := false
	for _, in := range sol.Instances {
		if in.Role != resolve.RoleShared {
			continue
		}
		shared = true
		name, ns := render.SharedApp(in.Package)
		a, ok := apps[name]
		if !ok {
			a = &workspace.App{Name: name, Package: in.Package, Namespace: ns, Shared: true}
		} else if !a.Shared || a.Package != in.Package {
			return nil, fmt.Errorf("the shared dependency %s must be installed as app %q, but an app of that name already exists for package %s; rename that app", in.Package, name, a.Package)
		}
		out[name] = a
		requests = append(requests, resolve.Request{App: name, Package: in.Package, Constraint: "=" + in.Version, Installed: true})
	}
	if shared {
		if sol, err = resolve.Solve(u, resolve.Input{Requests: requests, Locked: locked, Prefer: prefer}); err != nil {
			return nil, err
		}
	}
	charts, err := e.chartFetcher(lock)
	if err != nil {
		return nil, err
	}
	return &plan{apps: out, solution: sol, lock: lock, charts: charts, kube: e.targetKubernetes(ctx, lock)}, nil
}

// checkLockCatalogs fails when a locked package comes from a catalog the
// workspace does not list (one added to a berth home before catalogs were part
// of the workspace, or removed by hand from berth.yaml).
func (e *Env) checkLockCatalogs(lock *workspace.Lock) error {
	missing := map[string][]string{}
	for _, in := range lock.Instances {
		if in.Catalog == "" {
			continue
		}
		if _, ok := e.Catalogs.Source(in.Catalog); !ok && !slices.Contains(missing[in.Catalog], in.Package) {
			missing[in.Catalog] = append(missing[in.Catalog], in.Package)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(missing)) {
		parts = append(parts, fmt.Sprintf("%s (from catalog %s)", strings.Join(missing[c], ", "), c))
	}
	var have []string
	for _, r := range e.Catalogs.Refs {
		have = append(have, r.Name)
	}
	return fmt.Errorf("%s: the locked packages %s come from catalogs that %s does not list (it lists: %s); add them to the workspace's catalogs",
		workspace.LockFile, strings.Join(parts, "; "), workspace.ConfigFile, strings.Join(have, ", "))
}

// values merges, for rendering, what app.yaml records, the secret values and
// the user's own overrides in values.yaml (which win).
func (e *Env) values(a *workspace.App, s *appSecrets) (map[string]any, error) {
	user, err := e.WS.UserValues(a.Name)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	mergeValues(out, a.Values)
	if s != nil {
		mergeValues(out, s.Values)
	}
	mergeValues(out, user)
	return out, nil
}

// mergeValues copies src into dst; maps (a component's values) merge key by key.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				dst[k] = dm
			}
			mergeValues(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// namespacePhase puts an app's namespace, which holds its inventory, before
// every other phase.
const namespacePhase = "-1"

// renderApp renders one app of a plan into objects annotated with their phase,
// plus its namespace when it has one of its own.
func (e *Env) renderApp(ctx context.Context, p *plan, a *workspace.App) ([]*unstructured.Unstructured, error) {
	return e.renderAppWith(ctx, p, a, kubernetesTarget(p.kube))
}

// renderTarget is what a fleet cluster changes of a render: the values its
// placement's overrides set, which win over all others, and the Kubernetes
// version and API versions charts see there (the Env's when empty).
type renderTarget struct {
	override    map[string]any
	kubeVersion string
	discovery   discovery.ServerResourcesInterface
}

// renderAppWith is renderApp for a target.
func (e *Env) renderAppWith(ctx context.Context, p *plan, a *workspace.App, to renderTarget) ([]*unstructured.Unstructured, error) {
	s, err := e.readSecrets(a.Name)
	if err != nil {
		return nil, err
	}
	seed, err := s.seed()
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", a.Name, err)
	}
	vals, err := e.values(a, s)
	if err != nil {
		return nil, err
	}
	mergeValues(vals, to.override)
	kube := e.KubeVersion
	if to.kubeVersion != "" {
		kube = to.kubeVersion
	}
	mon, err := e.monitoring(p)
	if err != nil {
		return nil, err
	}
	res, err := render.RenderApp(ctx, e.Catalogs.Loader(), render.AppInput{
		Solution: p.solution, App: a.Name, Namespace: a.Namespace, Values: vals, KubeVersion: kube, Discovery: to.discovery,
		Generator:  func(scope string) pkgspec.Generator { return pkgspec.SeededGenerator(seed, scope) },
		Charts:     p.charts.Fetch,
		Seed:       seed,
		Monitoring: mon,
	})
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", a.Name, err)
	}
	if n := len(res.Parts); n > 0 {
		// The app's own part comes last, after its components.
		if p.notes == nil {
			p.notes = map[string]string{}
		}
		p.notes[a.Name] = res.Parts[n-1].Result.PackageNotes
	}
	var objs []*unstructured.Unstructured
	hasNamespace := false
	for i, part := range res.Parts {
		for _, o := range part.Result.Objects {
			obj := o.Object.DeepCopy()
			ann := obj.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			ann[AnnotationPhase] = strconv.Itoa(i*10 + stageIndex(o.Stage))
			obj.SetAnnotations(ann)
			// Components deploy as part of the app that owns them: the deploy
			// engine's inventory and pruning go by this label.
			labels := obj.GetLabels()
			labels[render.LabelApp] = a.Name
			obj.SetLabels(labels)
			if err := labelClaimTemplates(obj, a.Name); err != nil {
				return nil, fmt.Errorf("app %s: %w", a.Name, err)
			}
			if obj.GetKind() == "Namespace" && obj.GetName() == a.Namespace {
				// The app's namespace holds its inventory: it comes before
				// everything, CRDs included.
				hasNamespace = true
				ann[AnnotationPhase] = namespacePhase
				obj.SetAnnotations(ann)
			}
			objs = append(objs, obj)
		}
	}
	if !hasNamespace && a.Namespace != "default" {
		ns := &unstructured.Unstructured{}
		ns.SetAPIVersion("v1")
		ns.SetKind("Namespace")
		ns.SetName(a.Namespace)
		ns.SetAnnotations(map[string]string{AnnotationPhase: namespacePhase})
		objs = append(objs, ns)
	}
	return objs, nil
}

// labelClaimTemplates labels the volume claims a StatefulSet will create as the
// app's, so that uninstall knows them: handed over (kept) with the app's
// data by default, deleted with --delete-data.
func labelClaimTemplates(obj *unstructured.Unstructured, app string) error {
	if obj.GetKind() != "StatefulSet" || obj.GroupVersionKind().Group != "apps" {
		return nil
	}
	templates, found, err := unstructured.NestedSlice(obj.Object, "spec", "volumeClaimTemplates")
	if err != nil || !found {
		return err
	}
	for i, t := range templates {
		m, ok := t.(map[string]any)
		if !ok {
			continue
		}
		if err := unstructured.SetNestedField(m, app, "metadata", "labels", render.LabelApp); err != nil {
			return err
		}
		templates[i] = m
	}
	return unstructured.SetNestedSlice(obj.Object, templates, "spec", "volumeClaimTemplates")
}

// lockOf records a plan's solution with each package version's content digest.
func (e *Env) lockOf(ctx context.Context, p *plan) (*workspace.Lock, error) {
	l := &workspace.Lock{Kubernetes: p.kube}
	for _, in := range p.solution.Instances {
		f, err := e.Catalogs.Find(ctx, in.Package)
		if err != nil {
			return nil, err
		}
		pkg, fsys, err := e.Catalogs.Load(ctx, f, in.Version)
		if err != nil {
			return nil, err
		}
		digest, err := catalog.TreeDigest(fsys, ".")
		if err != nil {
			return nil, fmt.Errorf("digest of %s %s: %w", in.Package, in.Version, err)
		}
		l.Instances = append(l.Instances, workspace.LockInstance{
			Key: in.Key, Role: string(in.Role), Package: in.Package, Version: in.Version,
			Catalog: f.Catalog, Digest: digest, Dependencies: in.Dependencies,
		})
		l.Charts = appendChartDigests(l.Charts, pkg, p)
	}
	return l, nil
}

// appendChartDigests adds the digests of pkg's repository charts to charts:
// those this build resolved, else those the lock recorded before (for apps
// this build did not render), each chart once.
func appendChartDigests(charts []workspace.LockedChart, pkg *pkgspec.Package, p *plan) []workspace.LockedChart {
	resolved, before := p.charts.Resolved(), p.lock.ChartDigests()
	for _, c := range pkg.Charts {
		if c.Repo == "" {
			continue
		}
		ref := catalog.ChartRef{Repo: c.Repo, Chart: c.Chart, Version: c.Version}
		digest := resolved[ref]
		if digest == "" {
			digest = before[ref]
		}
		if digest == "" || slices.ContainsFunc(charts, func(lc workspace.LockedChart) bool { return lc.ChartRef == ref }) {
			continue
		}
		charts = append(charts, workspace.LockedChart{ChartRef: ref, Digest: digest})
	}
	return charts
}

// appPaths are the workspace paths that hold an app; in a fleet workspace,
// its rendered directories of every cluster that has one.
func (e *Env) appPaths(name string) []string {
	if e.WS.Config.IsFleet() {
		return append([]string{workspace.AppDir(name)}, e.existing(e.renderedDirsOf(name))...)
	}
	return []string{workspace.AppDir(name), workspace.AppRenderedDir(name)}
}

// BuildResult says what a build changed.
type BuildResult struct {
	Apps      []string `json:"apps"`
	Committed bool     `json:"committed"`
	// Refused are the clusters of a fleet an app was not rendered for.
	Refused []Refusal `json:"refused,omitempty"`
}

// writePlan renders the named apps of p (all when names is empty) and writes
// them, their app files, new secrets files and the lock; allPaths lists what it
// may change.
func (e *Env) writePlan(ctx context.Context, p *plan, names []string) error {
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(p.apps))
	}
	if e.WS.Config.IsFleet() {
		refused, err := e.writeFleetPlan(ctx, p, names)
		e.refused = refused
		return err
	}
	rendered := map[string][]*unstructured.Unstructured{}
	for _, name := range names {
		a := p.apps[name]
		if err := e.WS.WriteApp(a); err != nil {
			return err
		}
		if _, err := e.WS.ReadFile(secretsPath(name)); err != nil {
			s, err := e.initialSecrets(a.Namespace, name, a.Package, nil)
			if err != nil {
				return err
			}
			if err := e.writeSecrets(ctx, name, s); err != nil {
				return err
			}
		}
		var objs []*unstructured.Unstructured
		err := e.step(name, "render "+name, func() error {
			var err error
			objs, err = e.renderApp(ctx, p, a)
			return err
		})
		if err != nil {
			return err
		}
		rendered[name] = objs
	}
	if e.Preflight {
		if err := e.preflight(ctx, p, rendered); err != nil {
			return err
		}
	}
	for _, name := range names {
		if _, err := e.WS.WriteRendered(ctx, name, rendered[name]); err != nil {
			return err
		}
	}
	lock, err := e.lockOf(ctx, p)
	if err != nil {
		return err
	}
	return e.WS.WriteLock(lock)
}

// workspaceApps reads every installed app by name.
func (e *Env) workspaceApps() (map[string]*workspace.App, error) {
	list, err := e.WS.Apps()
	if err != nil {
		return nil, err
	}
	apps := map[string]*workspace.App{}
	for _, a := range list {
		apps[a.Name] = a
	}
	return apps, nil
}

// Build re-renders the named apps (all when none is named) into rendered/ and
// updates the lock, committing the result. Nothing changed means no commit.
func (e *Env) Build(ctx context.Context, names ...string) (*BuildResult, error) {
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := apps[n]; !ok {
			_, err := e.WS.App(n)
			return nil, err
		}
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	p, err := e.solve(ctx, apps, lock, nil)
	if err != nil {
		return nil, err
	}
	// Shared apps the solution added must be built too.
	if len(names) > 0 {
		for name := range p.apps {
			if _, had := apps[name]; !had {
				names = append(names, name)
			}
		}
	}
	built := names
	if len(built) == 0 {
		built = slices.Sorted(maps.Keys(p.apps))
	}
	committed, err := e.WS.ChangeCommitted(ctx, "build "+strings.Join(built, ", "), e.allPaths(p, names), func() error {
		return e.writePlan(ctx, p, names)
	})
	if err != nil {
		return nil, err
	}
	return &BuildResult{Apps: built, Committed: committed, Refused: e.refused}, nil
}

// allPaths lists the workspace paths a write of the named apps of p touches.
func (e *Env) allPaths(p *plan, names []string) []string {
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(p.apps))
	}
	paths := []string{workspace.LockFile}
	if e.WS.Config.IsFleet() {
		paths = append(paths, e.fleetPaths(names)...)
	}
	for _, n := range names {
		if e.WS.Config.IsFleet() {
			paths = append(paths, workspace.AppDir(n))
		} else {
			paths = append(paths, e.appPaths(n)...)
		}
		if a, ok := p.apps[n]; ok && e.hasRetained(a.Namespace, n) {
			// A new app takes over the secrets kept for one of its name.
			paths = append(paths, retainedPath(a.Namespace, n))
		}
	}
	return paths
}

// appSummary names an app's package version and its components, for commit
// messages: "airflow 2.9.1 (+ postgresql 16.4.0, redis 7.4.0)".
func appSummary(p *plan, app string) string {
	in, ok := p.solution.Get(resolve.AppKey(app))
	if !ok {
		return app
	}
	var comps []string
	for _, c := range p.solution.Instances {
		if strings.HasPrefix(c.Key, resolve.AppKey(app)+"/") {
			comps = append(comps, c.Package+" "+c.Version)
		}
	}
	s := in.Package + " " + in.Version
	if in.Package != app {
		s = app + " (" + s + ")"
	}
	if len(comps) > 0 {
		s += " (+ " + strings.Join(comps, ", ") + ")"
	}
	return s
}
