package render

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"

	"helm.sh/helm/v4/pkg/chart/common"
	"k8s.io/client-go/discovery"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
)

// Loader loads a package version, for example from the catalogs.
type Loader interface {
	Load(ctx context.Context, name, version string) (*pkgspec.Package, fs.FS, error)
}

// AppInput is an app to render with its private components.
type AppInput struct {
	// Solution holds the resolved versions; App must be one of its apps.
	Solution  *resolve.Solution
	App       string
	Namespace string
	// Values are the user's values for the app; a map under a component's
	// dependency name (such as "postgresql") overrides that component's config.
	Values map[string]any
	// Generator returns the generator of generated values for an app, keyed
	// by "namespace/app" so every app gets its own values.
	Generator func(scope string) pkgspec.Generator
	// KubeVersion is passed to Render.
	KubeVersion string
	// Charts fetches the archives of a package's charts from chart
	// repositories (see catalog.FetchCharts); nil when no package needs any.
	Charts func(ctx context.Context, pkg *pkgspec.Package) (map[string][]byte, error)
	// Seed is the app's secret seed that the random functions of chart
	// templates derive from (see Input.Seed); nil leaves them random.
	Seed []byte
	// APIVersions are API versions charts see in .Capabilities.APIVersions
	// besides those of the cluster, as helm template --api-versions adds.
	APIVersions []string
	// Discovery, when set, is the target cluster's discovery client: charts
	// then see the API versions it serves instead of the built-in list.
	Discovery discovery.ServerResourcesInterface
	// Monitoring is passed to Render for every package of the app.
	Monitoring Monitoring
}

// Part is one rendered package instance of an app.
type Part struct {
	Key     string       `json:"key"`
	Role    resolve.Role `json:"role"`
	App     string       `json:"app"`
	Package string       `json:"package"`
	Version string       `json:"version"`
	Result  *Result      `json:"-"`
}

// AppResult is a rendered app: its components first, in dependency order,
// then the app itself. Shared lists the shared dependencies it needs, which
// are installed as apps of their own.
type AppResult struct {
	Parts  []Part `json:"parts"`
	Shared []Dep  `json:"shared"`
}

// SharedApp returns the app name and namespace a shared dependency is
// installed as: both are the package's name.
func SharedApp(pkg string) (app, namespace string) { return pkg, pkg }

// RenderApp renders an app and its components. Errors name the component.
func RenderApp(ctx context.Context, l Loader, in AppInput) (*AppResult, error) {
	r := &appRenderer{l: l, in: in, out: &AppResult{}, shared: map[string]Dep{}}
	if in.Discovery != nil || len(in.APIVersions) > 0 {
		versions, err := apiVersions(in.Discovery)
		if err != nil {
			return nil, err
		}
		r.apiVersions = append(versions, in.APIVersions...)
	}
	if _, err := r.instance(ctx, resolve.AppKey(in.App), in.App, in.Values, ""); err != nil {
		return nil, err
	}
	for _, d := range r.shared {
		r.out.Shared = append(r.out.Shared, d)
	}
	sort.Slice(r.out.Shared, func(i, j int) bool { return r.out.Shared[i].Package < r.out.Shared[j].Package })
	return r.out, nil
}

type appRenderer struct {
	l      Loader
	in     AppInput
	out    *AppResult
	shared map[string]Dep
	// apiVersions are what charts see; nil for the built-in list.
	apiVersions []string
}

func (r *appRenderer) instance(ctx context.Context, key, app string, values map[string]any, path string) (Dep, error) {
	inst, ok := r.in.Solution.Get(key)
	if !ok {
		return Dep{}, fmt.Errorf("render: %s is not in the resolved solution", key)
	}
	where := fmt.Sprintf("component %s of app %s", path, r.in.App)
	pkg, files, err := r.l.Load(ctx, inst.Package, inst.Version)
	if err != nil {
		return Dep{}, err
	}
	own := map[string]any{}
	for k, v := range values {
		own[k] = v
	}
	deps := map[string]Dep{}
	for _, d := range pkg.Dependencies {
		depKey, wired := inst.Dependencies[d.Key()]
		if d.Optional && !wired {
			continue // not installed: templates see no .deps entry
		}
		if d.Kind == pkgspec.Shared {
			dep, err := r.sharedDep(ctx, depKey)
			if err != nil {
				return Dep{}, err
			}
			deps[d.Key()] = dep
			continue
		}
		cfg := map[string]any{}
		for k, v := range d.Config {
			cfg[k] = v
		}
		if over, ok := values[d.Key()].(map[string]any); ok {
			for k, v := range over {
				cfg[k] = v
			}
			delete(own, d.Key())
		}
		sub := d.Key()
		if path != "" {
			sub = path + "." + d.Key()
		}
		dep, err := r.instance(ctx, depKey, app+"-"+d.Key(), cfg, sub)
		if err != nil {
			return Dep{}, err
		}
		deps[d.Key()] = dep
	}
	cfg, err := pkg.Configure(pkgspec.ConfigureOptions{Values: own, Generator: r.generator(app)})
	if err != nil {
		if path != "" {
			return Dep{}, fmt.Errorf("%s: %w", where, err)
		}
		return Dep{}, err
	}
	var charts map[string][]byte
	if r.in.Charts != nil {
		if charts, err = r.in.Charts(ctx, pkg); err != nil {
			return Dep{}, err
		}
	}
	res, err := Render(Input{Package: pkg, Files: files, App: app, Namespace: r.in.Namespace, Config: cfg, Deps: deps, KubeVersion: r.in.KubeVersion, Charts: charts,
		Seed: r.in.Seed, APIVersions: r.apiVersions, Monitoring: r.in.Monitoring})
	if err != nil {
		return Dep{}, err
	}
	r.out.Parts = append(r.out.Parts, Part{Key: key, Role: inst.Role, App: app, Package: inst.Package, Version: inst.Version, Result: res})
	return Dep{App: app, Namespace: r.in.Namespace, Package: inst.Package, Version: inst.Version, Outputs: res.Outputs}, nil
}

// sharedDep computes the outputs of a shared dependency as installed with its
// default configuration.
func (r *appRenderer) sharedDep(ctx context.Context, key string) (Dep, error) {
	if d, ok := r.shared[key]; ok {
		return d, nil
	}
	inst, ok := r.in.Solution.Get(key)
	if !ok {
		return Dep{}, fmt.Errorf("render: %s is not in the resolved solution", key)
	}
	pkg, _, err := r.l.Load(ctx, inst.Package, inst.Version)
	if err != nil {
		return Dep{}, err
	}
	app, ns := SharedApp(inst.Package)
	cfg, err := pkg.Configure(pkgspec.ConfigureOptions{Generator: r.generatorIn(ns, app)})
	if err != nil {
		return Dep{}, fmt.Errorf("shared dependency %s %s: %w", inst.Package, inst.Version, err)
	}
	outs, err := Outputs(pkg, OutputData(pkg, app, ns, cfg))
	if err != nil {
		return Dep{}, err
	}
	d := Dep{App: app, Namespace: ns, Package: inst.Package, Version: inst.Version, Outputs: outs}
	r.shared[key] = d
	return d, nil
}

func (r *appRenderer) generator(app string) pkgspec.Generator {
	return r.generatorIn(r.in.Namespace, app)
}

func (r *appRenderer) generatorIn(ns, app string) pkgspec.Generator {
	if r.in.Generator == nil {
		return nil
	}
	return r.in.Generator(ns + "/" + app)
}

// apiVersions lists the group/versions and group/version/kinds the cluster
// serves, as helm reads them; the built-in list without a client. A group
// the cluster fails to describe (an orphaned API service) is left out, as
// helm does.
func apiVersions(dc discovery.ServerResourcesInterface) ([]string, error) {
	if dc == nil {
		return slices.Clone(common.DefaultVersionSet), nil
	}
	groups, resources, err := dc.ServerGroupsAndResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("reading the API versions of the cluster: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, g := range groups {
		for _, v := range g.Versions {
			add(v.GroupVersion)
		}
	}
	for _, r := range resources {
		for _, res := range r.APIResources {
			add(path.Join(r.GroupVersion, res.Kind))
		}
	}
	if len(out) == 0 {
		return slices.Clone(common.DefaultVersionSet), nil
	}
	sort.Strings(out)
	return out, nil
}
