package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// AskFunc asks the user for configuration values of pkg beyond those given (the
// terminal wizard) and returns the answers.
type AskFunc func(ctx context.Context, pkg *pkgspec.Package, given map[string]any) (map[string]any, error)

// InstallOptions configures Install.
type InstallOptions struct {
	// Package is NAME, NAME@VERSION, NAME@CHANNEL or NAME@CONSTRAINT (^2.9).
	Package   string
	Name      string // app name; the package's name by default
	Namespace string // the app name by default
	Channel   string // channel to follow when Package names no version
	// Values are the configuration given up front (--values, --set); a map under
	// a component's dependency name configures that component.
	Values map[string]any
	// Ask, when set, asks for what is still needed; without it a missing
	// required value is an error that lists every one.
	Ask AskFunc
	// DryRun resolves, configures and renders as Install does and returns
	// what it would commit in Preview and Objects, committing nothing.
	DryRun bool
}

// InstallResult says what Install wrote.
type InstallResult struct {
	App     string   `json:"app"`
	Summary string   `json:"summary"`
	Apps    []string `json:"apps"` // the app and any shared dependencies it brought
	// Notes are the package's post-install notes (where the app is served,
	// how to log in), secrets hidden; empty when it has none.
	Notes string `json:"notes,omitempty"`
	// Dependencies are the app's dependencies as resolved: its private
	// components and the shared apps it uses, new or already installed.
	Dependencies []InstallDependency `json:"dependencies,omitempty"`
	// Preview (dry run only) is what the install would commit.
	Preview *Preview `json:"preview,omitempty"`
	// Objects (dry run only, one-cluster workspaces) are the objects the
	// install would render, of the app and the shared apps it brings.
	Objects []RenderedObject `json:"objects,omitempty"`
}

// InstallDependency is one dependency of an installed app, as resolved.
type InstallDependency struct {
	Name    string `json:"name"` // the dependency's name in the package
	Package string `json:"package"`
	Version string `json:"version"`
	// Shared is the app serving a shared dependency; "" for a component.
	Shared string `json:"shared,omitempty"`
	// New is set for a shared app the install adds.
	New bool `json:"new,omitempty"`
}

// RenderedObject names an object an app renders.
type RenderedObject struct {
	App       string `json:"app"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Install adds an app to the workspace: resolve it with what is installed,
// configure it, render it and any shared dependencies it needs, and commit. It
// does not deploy; see Deploy. On any error the workspace is left as it was.
func (e *Env) Install(ctx context.Context, opts InstallOptions) (*InstallResult, error) {
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	pkgName, want, _ := strings.Cut(opts.Package, "@")
	f, err := e.Catalogs.Find(ctx, pkgName)
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = f.Entry.Name
	}
	if err := workspace.ValidateAppName(name); err != nil {
		return nil, err
	}
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	if old, ok := apps[name]; ok {
		return nil, fmt.Errorf("app %s is already installed (package %s); change it with 'berth config %s' or 'berth upgrade %s', or install under another --name", name, old.Package, name, name)
	}
	a := &workspace.App{Name: name, Package: f.Entry.Name, Namespace: opts.Namespace}
	if a.Namespace == "" {
		a.Namespace = name
	}
	if err := workspace.ValidateNamespace(a.Namespace); err != nil {
		return nil, err
	}
	for _, other := range apps {
		if other.Namespace == a.Namespace {
			return nil, fmt.Errorf("namespace %s already holds app %s: each app has a namespace of its own (it holds the app's inventory, and uninstall deletes it with the app); pick another namespace", a.Namespace, other.Name)
		}
	}
	if err := chooseVersion(a, f.Entry, want, cmpOr(opts.Channel, e.WS.Config.Defaults.Channel, "stable")); err != nil {
		return nil, err
	}
	apps[name] = a
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	p, err := e.solve(ctx, apps, lock, nil)
	if err != nil {
		return nil, err
	}
	inst, _ := p.solution.Get(resolve.AppKey(name))
	pkg, _, err := e.Catalogs.Load(ctx, f, inst.Version)
	if err != nil {
		return nil, err
	}
	values, err := e.configure(ctx, pkg, opts.Values, opts.Ask)
	if err != nil {
		return nil, err
	}
	plain, secret, err := e.splitSecret(ctx, p, name, pkg, values)
	if err != nil {
		return nil, err
	}
	a.Values = plain

	var written []string
	for n := range p.apps {
		if _, had := apps[n]; !had || n == name {
			written = append(written, n)
		}
	}
	written = append(written, name)
	slices.Sort(written)
	written = slices.Compact(written)

	summary := appSummary(p, name)
	msg := "install " + summary
	var sharedNew []string
	for _, n := range written {
		if n != name {
			in, _ := p.solution.Get(resolve.AppKey(n))
			sharedNew = append(sharedNew, in.Package+" "+in.Version)
		}
	}
	if len(sharedNew) > 0 {
		msg += " with shared " + strings.Join(sharedNew, ", ")
	}
	res := &InstallResult{App: name, Summary: summary, Apps: written, Dependencies: installDependencies(p, name, written)}
	write := func() error {
		s, err := e.initialSecrets(a.Namespace, name, a.Package, secret)
		if err != nil {
			return err
		}
		if err := e.writeSecrets(ctx, name, s); err != nil {
			return err
		}
		return e.writePlan(ctx, p, written)
	}
	if opts.DryRun {
		res.Preview, err = e.preview(ctx, msg, e.allPaths(p, written), func() error {
			if err := write(); err != nil {
				return err
			}
			res.Objects, err = e.renderedObjects(written)
			return err
		})
		if err != nil {
			return nil, err
		}
		res.Notes = p.notes[name]
		return res, nil
	}
	if err := e.WS.Change(ctx, msg, e.allPaths(p, written), write); err != nil {
		return nil, err
	}
	res.Notes = p.notes[name]
	return res, nil
}

// installDependencies lists app's direct dependencies as p resolved them.
func installDependencies(p *plan, app string, written []string) []InstallDependency {
	in, ok := p.solution.Get(resolve.AppKey(app))
	if !ok {
		return nil
	}
	var out []InstallDependency
	for _, dep := range slices.Sorted(maps.Keys(in.Dependencies)) {
		key := in.Dependencies[dep]
		served, ok := p.solution.Get(key)
		if !ok {
			continue
		}
		d := InstallDependency{Name: dep, Package: served.Package, Version: served.Version}
		if shared, isApp := strings.CutPrefix(key, "app:"); isApp && !strings.Contains(shared, "/") {
			d.Shared, d.New = shared, slices.Contains(written, shared)
		}
		out = append(out, d)
	}
	return out
}

// renderedObjects names the objects written under rendered/ for apps (a
// fleet's, rendered per cluster, are not listed).
func (e *Env) renderedObjects(apps []string) ([]RenderedObject, error) {
	if e.WS.Config.IsFleet() {
		return nil, nil
	}
	var out []RenderedObject
	for _, app := range apps {
		objs, err := e.WS.ReadRendered(app)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			out = append(out, RenderedObject{App: app, Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()})
		}
	}
	return out, nil
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// chooseVersion records what the user asked for: a channel to follow, or a
// version constraint.
func chooseVersion(a *workspace.App, e *catalog.Entry, want, channel string) error {
	switch {
	case want == "":
		if _, ok := e.Channels[channel]; !ok {
			return fmt.Errorf("package %s has no channel %q (channels: %s); pick one with --channel or a version with %s@VERSION",
				e.Name, channel, strings.Join(e.ChannelNames(), ", "), e.Name)
		}
		a.Channel = channel
	case e.Channels[want] != "":
		a.Channel = want
	default:
		if _, ok := e.Version(want); ok {
			a.Version = "=" + want
			return nil
		}
		if !strings.ContainsAny(want, "<>=^~*x ") {
			var versions []string
			for _, v := range e.Versions {
				versions = append(versions, v.Version)
			}
			return fmt.Errorf("package %s has no version or channel %q (channels: %s; versions: %s)",
				e.Name, want, strings.Join(e.ChannelNames(), ", "), strings.Join(versions, ", "))
		}
		a.Version = want
	}
	return nil
}

// configure completes the app's own values: asks for what is missing when it
// may, then checks them against the package's schema and rules. Component values
// (maps under a dependency name) pass through for the renderer to check.
func (e *Env) configure(ctx context.Context, pkg *pkgspec.Package, given map[string]any, ask AskFunc) (map[string]any, error) {
	own, comps := map[string]any{}, map[string]any{}
	for k, v := range given {
		if m, ok := v.(map[string]any); ok && isDependency(pkg, k) {
			comps[k] = m
			continue
		}
		own[k] = v
	}
	if ask != nil {
		answers, err := ask(ctx, pkg, own)
		if err != nil {
			return nil, err
		}
		maps.Copy(own, answers)
	}
	// Check now, with throwaway generated values, so that a wrong value fails
	// before anything is written.
	cfg, err := pkg.Configure(pkgspec.ConfigureOptions{Values: own, Generator: pkgspec.SeededGenerator([]byte("berth: check configuration only"), pkg.Name)})
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k := range own {
		out[k] = cfg[k] // typed: "3" from --set becomes 3
	}
	maps.Copy(out, comps)
	return out, nil
}

func isDependency(pkg *pkgspec.Package, name string) bool {
	for _, d := range pkg.Dependencies {
		if d.Key() == name {
			return true
		}
	}
	return false
}

// splitSecret separates the values that must be stored encrypted (secret
// parameters and passwords, of the app and of its components) from the rest.
func (e *Env) splitSecret(ctx context.Context, p *plan, app string, pkg *pkgspec.Package, values map[string]any) (plain, secret map[string]any, err error) {
	plain, secret = map[string]any{}, map[string]any{}
	for k, v := range values {
		if m, ok := v.(map[string]any); ok && isDependency(pkg, k) {
			in, ok := p.solution.Get(resolve.AppKey(app) + "/" + k)
			if !ok {
				return nil, nil, fmt.Errorf("values for %s: %s is not a private component of %s (shared dependencies are configured as apps of their own)", k, k, app)
			}
			f, err := e.Catalogs.Find(ctx, in.Package)
			if err != nil {
				return nil, nil, err
			}
			comp, _, err := e.Catalogs.Load(ctx, f, in.Version)
			if err != nil {
				return nil, nil, err
			}
			cp, cs, err := e.splitSecret(ctx, p, app, comp, m)
			if err != nil {
				return nil, nil, err
			}
			if len(cp) > 0 {
				plain[k] = cp
			}
			if len(cs) > 0 {
				secret[k] = cs
			}
			continue
		}
		if q, ok := pkg.Param(k); ok && q.IsSecret() {
			secret[k] = v
		} else {
			plain[k] = v
		}
	}
	if len(plain) == 0 {
		plain = nil
	}
	return plain, secret, nil
}
