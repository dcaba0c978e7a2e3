package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/workspace"
)

// BreakingChange is a version change that crosses a breaking boundary: a new
// major version, or a version its package marks breaking.
type BreakingChange struct {
	VersionChange
	// Why names the boundary: "major version 16 -> 17" or "17.1.0 is marked breaking".
	Why string `json:"why"`
	// Note is what the package says must happen to the data.
	Note string `json:"note,omitempty"`
}

// BreakingError refuses version changes that cross a breaking boundary.
type BreakingError struct {
	Op      string // "upgrade" or "rollback"
	Changes []BreakingChange
}

func (e *BreakingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s refused: ", e.Op)
	for i, c := range e.Changes {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s -> %s crosses a breaking boundary (%s)", c.Package, c.From, c.To, c.Why)
		if c.Note != "" {
			fmt.Fprintf(&b, ": %s", strings.TrimSpace(c.Note))
		}
	}
	b.WriteString("; nothing was changed")
	return b.String()
}

// breaking returns the changes that cross a breaking boundary, in either
// direction: between From and To the major version changes, or a version in
// (lower, higher] is marked breaking by its package.
func (e *Env) breaking(ctx context.Context, changes []VersionChange) ([]BreakingChange, error) {
	var out []BreakingChange
	for _, c := range changes {
		if c.From == "" || c.To == "" {
			continue
		}
		from, err1 := semver.NewVersion(c.From)
		to, err2 := semver.NewVersion(c.To)
		if err1 != nil || err2 != nil || from.Equal(to) {
			continue
		}
		lo, hi := from, to
		if hi.LessThan(lo) {
			lo, hi = hi, lo
		}
		f, err := e.Catalogs.Find(ctx, c.Package)
		if err != nil {
			return nil, err
		}
		var bc *BreakingChange
		// Versions are newest first; the note of the newest boundary wins.
		for _, v := range f.Entry.Versions {
			sv, err := semver.NewVersion(v.Version)
			if err != nil || !sv.GreaterThan(lo) || sv.GreaterThan(hi) {
				continue
			}
			pkg, _, err := e.Catalogs.Load(ctx, f, v.Version)
			if err != nil {
				return nil, err
			}
			if pkg.Upgrade.Breaking {
				bc = &BreakingChange{VersionChange: c, Why: v.Version + " is marked breaking", Note: pkg.Upgrade.Note}
				break
			}
			if bc == nil && sv.Major() != lo.Major() && pkg.Upgrade.Note != "" {
				bc = &BreakingChange{VersionChange: c, Note: pkg.Upgrade.Note}
			}
		}
		if lo.Major() != hi.Major() {
			if bc == nil {
				bc = &BreakingChange{VersionChange: c}
			}
			if bc.Why == "" {
				bc.Why = fmt.Sprintf("major version %d -> %d", from.Major(), to.Major())
			}
		}
		if bc != nil && bc.Why != "" {
			out = append(out, *bc)
		}
	}
	return out, nil
}

// notBelow narrows an app's version constraint so that an upgrade never picks
// a version lower than the locked one. Exact pins (=X) are the user's choice
// and stay as they are; a constraint the locked version no longer satisfies
// (edited by hand) is left alone for the resolver to report.
func notBelow(constraint, locked string) string {
	if locked == "" || strings.HasPrefix(constraint, "=") {
		return constraint
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return constraint
	}
	v, err := semver.NewVersion(locked)
	if err != nil || !c.Check(v) {
		return constraint
	}
	return constraint + ", >=" + locked
}

// channelVersion is the version a channel-following app upgrades to: the
// channel's, unless that is lower than the locked one (the app was pinned
// above the channel, then unpinned, or the channel moved back): then it stays.
func channelVersion(channelAt, locked string) string {
	if locked == "" {
		return channelAt
	}
	c, err1 := semver.NewVersion(channelAt)
	l, err2 := semver.NewVersion(locked)
	if err1 == nil && err2 == nil && c.LessThan(l) {
		return locked
	}
	return channelAt
}

// lockedVersion is the app's own locked version, if any.
func lockedVersion(lock *workspace.Lock, app string) string {
	if in, ok := lock.Get("app:" + app); ok {
		return in.Version
	}
	return ""
}

// Rename is a configured value an upgrade carried over from the name its
// parameter had before to its name in the new version (see the package's
// upgrade.renamed), or back on a downgrade.
type Rename struct {
	App string `json:"app"`
	// Component is the dependency whose values held it, for a private
	// component's parameter; empty for the app's own.
	Component string `json:"component,omitempty"`
	Package   string `json:"package"`
	// Version is the package version that renamed the parameter.
	Version string `json:"version"`
	From    string `json:"from"`
	To      string `json:"to"`
}

func (r Rename) String() string {
	where := r.App
	if r.Component != "" {
		where += " (" + r.Component + ")"
	}
	return fmt.Sprintf("%s: %s -> %s (renamed in %s %s)", where, r.From, r.To, r.Package, r.Version)
}

// RenameConflictError refuses an upgrade whose renamed parameter would
// overwrite a value the user set under the new name.
type RenameConflictError struct {
	Rename
	// File is where the value under the new name is set.
	File string
}

func (e *RenameConflictError) Error() string {
	return fmt.Sprintf("%s %s renames the parameter %s to %s, and app %s sets both (%s in %s); keep one of the two values and remove the other; nothing was changed",
		e.Package, e.Version, e.From, e.To, e.App, e.To, e.File)
}

// renameStep is the renames of one package version, in the direction of the
// version change.
type renameStep struct {
	version string
	names   map[string]string
}

// renames is what carrying values across one version change needs.
type renames struct {
	steps []renameStep
	// from and to are the package at the versions the values move from and to.
	from, to *pkgspec.Package
}

// renamesOf lists, in the order they apply, the renames between c.From
// and c.To: for an upgrade, those of every version in (From, To], oldest
// first; for a downgrade the same versions newest first, each undone.
func (e *Env) renamesOf(ctx context.Context, c VersionChange) (*renames, error) {
	from, err1 := semver.NewVersion(c.From)
	to, err2 := semver.NewVersion(c.To)
	if err1 != nil || err2 != nil || from.Equal(to) {
		return nil, nil
	}
	down := to.LessThan(from)
	lo, hi := from, to
	if down {
		lo, hi = to, from
	}
	f, err := e.Catalogs.Find(ctx, c.Package)
	if err != nil {
		return nil, err
	}
	out := &renames{}
	// Versions are newest first, the order a downgrade undoes them in.
	for _, v := range f.Entry.Versions {
		sv, err := semver.NewVersion(v.Version)
		if err != nil || !sv.GreaterThan(lo) || sv.GreaterThan(hi) {
			continue
		}
		pkg, _, err := e.Catalogs.Load(ctx, f, v.Version)
		if err != nil {
			return nil, err
		}
		if len(pkg.Upgrade.Renamed) == 0 {
			continue
		}
		st := renameStep{version: v.Version, names: pkg.Upgrade.Renamed}
		if down {
			st.names = map[string]string{}
			for old, name := range pkg.Upgrade.Renamed {
				st.names[name] = old
			}
		}
		out.steps = append(out.steps, st)
	}
	if len(out.steps) == 0 {
		return nil, nil
	}
	if !down {
		slices.Reverse(out.steps)
	}
	if out.from, _, err = e.Catalogs.Load(ctx, f, c.From); err != nil {
		return nil, err
	}
	if out.to, _, err = e.Catalogs.Load(ctx, f, c.To); err != nil {
		return nil, err
	}
	return out, nil
}

// appValues are the three places an app's values are set: app.yaml,
// secrets.yaml and the user's values.yaml, each narrowed to one component's
// values when renaming a component's parameters, with what generates the
// values of the instance's generated parameters.
type appValues struct {
	plain, secret, user map[string]any
	generator           pkgspec.Generator
}

// carryRenames moves the values of every app whose package (or component, or
// shared instance) changes version across a renamed parameter to its new
// name, in the apps of p and in the returned secrets of the apps that
// changed (for the caller to write). A value the user also set under the new
// name, or an old name set in values.yaml (berth never edits it), stops it
// before anything is written.
func (e *Env) carryRenames(ctx context.Context, p *plan, changes []VersionChange) ([]Rename, map[string]*appSecrets, error) {
	var done []Rename
	secretsOf := map[string]*appSecrets{}
	changed := map[string]*appSecrets{}
	for _, c := range changes {
		if c.From == "" || c.To == "" {
			continue
		}
		rn, err := e.renamesOf(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		app, component := instanceOwner(c.Key)
		a, ok := p.apps[app]
		if rn == nil || !ok {
			continue
		}
		s, ok := secretsOf[app]
		if !ok {
			if s, err = e.readSecrets(app); err != nil {
				return nil, nil, err
			}
			secretsOf[app] = s
		}
		user, err := e.WS.UserValues(app)
		if err != nil {
			return nil, nil, err
		}
		seed, err := s.seed()
		if err != nil {
			return nil, nil, fmt.Errorf("app %s: %w", app, err)
		}
		if a.Values == nil {
			a.Values = map[string]any{}
		}
		if s.Values == nil {
			s.Values = map[string]any{}
		}
		v := appValues{plain: a.Values, secret: s.Values, user: user}
		instance := app
		for _, dep := range strings.Split(component, "/") {
			if dep == "" {
				continue
			}
			v.plain, v.secret, v.user = submap(v.plain, dep), submap(v.secret, dep), submap(v.user, dep)
			instance += "-" + dep
		}
		v.generator = pkgspec.SeededGenerator(seed, a.Namespace+"/"+instance)
		n := len(done)
		for _, st := range rn.steps {
			for _, old := range slices.Sorted(maps.Keys(st.names)) {
				r := Rename{App: app, Component: component, Package: c.Package, Version: st.version, From: old, To: st.names[old]}
				moved, err := carry(v, rn, r)
				if err != nil {
					return nil, nil, err
				}
				if moved {
					done = append(done, r)
				}
			}
		}
		prune(a.Values)
		prune(s.Values)
		if len(a.Values) == 0 {
			a.Values = nil
		}
		if len(done) > n {
			changed[app] = s
		}
	}
	return done, changed, nil
}

// carry moves one value from r.From to r.To, into secrets.yaml when the new
// parameter is secret and app.yaml otherwise. A generated value (the old
// parameter generates one and the app never set it) is carried too, so that
// a password stays the same under its new name. It reports whether there
// was a value to move.
func carry(v appValues, rn *renames, r Rename) (bool, error) {
	valuesFile := path.Join(workspace.AppDir(r.App), workspace.ValuesFile)
	places := []struct {
		m    map[string]any
		file string
	}{{v.plain, path.Join(workspace.AppDir(r.App), workspace.AppFile)}, {v.secret, secretsPath(r.App)}, {v.user, valuesFile}}
	set := func(key string) bool {
		for _, at := range places {
			if _, ok := at.m[key]; ok {
				return true
			}
		}
		return false
	}
	if set(r.From) {
		for _, at := range places {
			if _, ok := at.m[r.To]; ok {
				return false, &RenameConflictError{Rename: r, File: at.file}
			}
		}
	}
	if _, ok := v.user[r.From]; ok {
		return false, fmt.Errorf("%s sets %s, which %s %s renames to %s; berth never edits that file: rename the key there to %s",
			valuesFile, r.From, r.Package, r.Version, r.To, r.To)
	}
	val, ok := v.plain[r.From]
	if !ok {
		val, ok = v.secret[r.From]
	}
	if !ok {
		q, was := rn.from.Param(r.From)
		if !was || q.Generate == nil || set(r.To) {
			return false, nil
		}
		g, err := v.generator.Generate(q.Name, *q.Generate)
		if err != nil {
			return false, fmt.Errorf("app %s: carrying the generated %s over to %s: %w", r.App, r.From, r.To, err)
		}
		val = g
	}
	delete(v.plain, r.From)
	delete(v.secret, r.From)
	if q, ok := rn.to.Param(r.To); ok && q.IsSecret() {
		v.secret[r.To] = val
	} else {
		v.plain[r.To] = val
	}
	return true, nil
}

// instanceOwner names the app whose values configure the instance key, and
// the path of dependency names (a/b) of the component they are under, if any.
func instanceOwner(key string) (app, component string) {
	if pkg, ok := strings.CutPrefix(key, "shared:"); ok {
		app, _ = render.SharedApp(pkg)
		return app, ""
	}
	app, component, _ = strings.Cut(strings.TrimPrefix(key, "app:"), "/")
	return app, component
}

// submap returns m[key] as a map, putting an empty one there when it has none.
func submap(m map[string]any, key string) map[string]any {
	sub, ok := m[key].(map[string]any)
	if !ok {
		sub = map[string]any{}
		if m != nil {
			m[key] = sub
		}
	}
	return sub
}

// prune removes the empty maps submap left in m, at any depth.
func prune(m map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			prune(sub)
			if len(sub) == 0 {
				delete(m, k)
			}
		}
	}
}
