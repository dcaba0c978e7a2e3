package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// ConfigOptions configures Config.
type ConfigOptions struct {
	App string
	// Values are merged over the current configuration.
	Values map[string]any
	// Channel, when set, switches the app to follow that channel of its
	// package (and unpins it).
	Channel string
	// AllowBreaking lets a channel switch cross a breaking version boundary.
	AllowBreaking bool
	// DryRun computes the change and returns it in Preview, committing nothing.
	DryRun bool
}

// ConfigResult says what Config changed.
type ConfigResult struct {
	App     string          `json:"app"`
	Set     []string        `json:"set"`
	Channel string          `json:"channel,omitempty"`
	Changes []VersionChange `json:"changes,omitempty"`
	// Renamed are the settings a channel switch carried over to a
	// parameter's new name.
	Renamed   []Rename `json:"renamed,omitempty"`
	Committed bool     `json:"committed"`
	Preview   *Preview `json:"preview,omitempty"`
}

// Config changes an app's configuration: the new values are merged over the
// current ones, checked against the package's schema and rules, split into
// plain and secret, rendered and committed. With a channel it switches the app
// to that channel's version (never across a breaking boundary unless allowed).
// Nothing is written when they fail.
func (e *Env) Config(ctx context.Context, opts ConfigOptions) (*ConfigResult, error) {
	app := opts.App
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if _, err := e.WS.App(app); err != nil {
		return nil, err // names the missing file
	}
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	a := apps[app]
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	var upgrade map[string]string
	if opts.Channel != "" {
		f, err := e.Catalogs.Find(ctx, a.Package)
		if err != nil {
			return nil, err
		}
		if _, ok := f.Entry.Channels[opts.Channel]; !ok {
			return nil, fmt.Errorf("package %s has no channel %q (channels: %s)", a.Package, opts.Channel, strings.Join(f.Entry.ChannelNames(), ", "))
		}
		a.Channel, a.Version = opts.Channel, ""
		// To the channel's version, as an upgrade: never below the installed
		// one (the app then stays until the channel catches up).
		upgrade = map[string]string{app: ""}
	}
	p, err := e.solve(ctx, apps, lock, upgrade)
	if err != nil {
		return nil, err
	}
	changes, _ := diffLock(lock, p.solution)
	if !opts.AllowBreaking {
		bad, err := e.breaking(ctx, changes)
		if err != nil {
			return nil, err
		}
		if len(bad) > 0 {
			return nil, &BreakingError{Op: "config", Changes: bad}
		}
	}
	renamed, renamedSecrets, err := e.carryRenames(ctx, p, changes)
	if err != nil {
		return nil, err
	}
	in, _ := p.solution.Get(resolve.AppKey(app))
	f, err := e.Catalogs.Find(ctx, a.Package)
	if err != nil {
		return nil, err
	}
	pkg, _, err := e.Catalogs.Load(ctx, f, in.Version)
	if err != nil {
		return nil, err
	}
	s, ok := renamedSecrets[app]
	if !ok {
		if s, err = e.readSecrets(app); err != nil {
			return nil, err
		}
	}
	merged := map[string]any{}
	mergeValues(merged, a.Values)
	mergeValues(merged, s.Values)
	mergeValues(merged, opts.Values)
	checked, err := e.configure(ctx, pkg, merged, nil)
	if err != nil {
		return nil, err
	}
	plain, secret, err := e.splitSecret(ctx, p, app, pkg, checked)
	if err != nil {
		return nil, err
	}
	a.Values = plain
	s.Values = secret
	p.apps[app] = a
	set := slices.Sorted(maps.Keys(flatten(opts.Values, "")))
	// Names only: a value may be secret.
	var what []string
	if len(set) > 0 {
		what = append(what, "set "+strings.Join(set, ", "))
	}
	if opts.Channel != "" {
		what = append(what, "follow channel "+opts.Channel)
	}
	msg := fmt.Sprintf("configure %s: %s", app, strings.Join(what, "; "))
	res := &ConfigResult{App: app, Set: set, Channel: opts.Channel, Changes: changes, Renamed: renamed}
	rebuild := []string{app}
	for n := range p.apps {
		if _, had := apps[n]; !had {
			rebuild = append(rebuild, n)
		}
	}
	write := func() error {
		if err := e.writeSecrets(ctx, app, s); err != nil {
			return err
		}
		for _, n := range slices.Sorted(maps.Keys(renamedSecrets)) {
			if n == app {
				continue
			}
			if err := e.writeSecrets(ctx, n, renamedSecrets[n]); err != nil {
				return err
			}
		}
		return e.writePlan(ctx, p, rebuild)
	}
	if opts.DryRun {
		res.Preview, err = e.preview(ctx, msg, e.allPaths(p, rebuild), write)
		return res, err
	}
	res.Committed, err = e.WS.ChangeCommitted(ctx, msg, e.allPaths(p, rebuild), write)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// flatten names nested values component.param.
func flatten(values map[string]any, prefix string) map[string]any {
	out := map[string]any{}
	for k, v := range values {
		if m, ok := v.(map[string]any); ok {
			maps.Copy(out, flatten(m, prefix+k+"."))
			continue
		}
		out[prefix+k] = v
	}
	return out
}

// UpgradeOptions configures Upgrade.
type UpgradeOptions struct {
	// Apps to upgrade; every app the user installed when empty.
	Apps []string
	// To is an exact version for the single app named; it is pinned there
	// (recorded in app.yaml as version "=To") until Unpin.
	To string
	// Unpin makes the single app named follow its channel again.
	Unpin bool
	// AllowBreaking lets versions cross a breaking boundary (a new major
	// version, or a version marked breaking by its package).
	AllowBreaking bool
	// DryRun computes the upgrade and returns it in Preview, committing nothing.
	DryRun bool
	// Reason, when set, is the body of the commit message: why the upgrade
	// was made (the upgrades controller says which policy and channel).
	Reason string
}

// VersionChange is one package instance moving between versions.
type VersionChange struct {
	Key     string `json:"key"`
	Package string `json:"package"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// UpgradeResult lists what moved; no changes means everything was up to date.
type UpgradeResult struct {
	Changes []VersionChange `json:"changes"`
	// Pinned and Unpinned name the app whose pin changed.
	Pinned   string `json:"pinned,omitempty"`
	Unpinned string `json:"unpinned,omitempty"`
	// Renamed are the settings carried over to a parameter's new name.
	Renamed   []Rename `json:"renamed,omitempty"`
	Committed bool     `json:"committed"`
	Preview   *Preview `json:"preview,omitempty"`
}

// Upgrade moves apps to the newest versions their channel or constraint allows
// (or to opts.To), moving their components and shared dependencies with them when
// they must, and commits the new lock and rendered objects. It never moves an
// app below its locked version unless told to (To), and refuses to cross a
// breaking boundary unless AllowBreaking. It changes nothing when everything
// is up to date.
func (e *Env) Upgrade(ctx context.Context, opts UpgradeOptions) (*UpgradeResult, error) {
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	names := opts.Apps
	if len(names) == 0 {
		for n, a := range apps {
			if !a.Shared {
				names = append(names, n)
			}
		}
		slices.Sort(names)
	}
	if (opts.To != "" || opts.Unpin) && len(names) != 1 {
		return nil, fmt.Errorf("--to and --unpin need exactly one app, got %d", len(names))
	}
	if opts.To != "" && opts.Unpin {
		return nil, errors.New("--to pins a version and --unpin removes the pin; give one")
	}
	upgrade := map[string]string{}
	res := &UpgradeResult{}
	pinChanged := map[string]bool{}
	for _, n := range names {
		a, ok := apps[n]
		if !ok {
			_, err := e.WS.App(n)
			return nil, err
		}
		upgrade[n] = opts.To
		switch {
		case opts.To != "":
			if a.Version != "="+opts.To {
				a.Version = "=" + opts.To
				res.Pinned, pinChanged[n] = n, true
			}
		case opts.Unpin:
			if a.Version != "" {
				a.Version = ""
				a.Channel = cmpOr(a.Channel, e.WS.Config.Defaults.Channel, "stable")
				res.Unpinned, pinChanged[n] = n, true
			}
		}
	}
	p, err := e.solve(ctx, apps, lock, upgrade)
	if err != nil {
		return nil, err
	}
	changes, touched := diffLock(lock, p.solution)
	res.Changes = changes
	if len(changes) == 0 && len(pinChanged) == 0 {
		return res, nil
	}
	if !opts.AllowBreaking {
		bad, err := e.breaking(ctx, changes)
		if err != nil {
			return nil, err
		}
		if len(bad) > 0 {
			return nil, &BreakingError{Op: "upgrade", Changes: bad}
		}
	}
	renamed, renamedSecrets, err := e.carryRenames(ctx, p, changes)
	if err != nil {
		return nil, err
	}
	res.Renamed = renamed
	for n := range pinChanged {
		touched[n] = true
	}
	// Apps added as shared dependencies are new; apps whose instances moved are rebuilt.
	for n := range p.apps {
		if _, had := apps[n]; !had {
			touched[n] = true
		}
	}
	rebuild := slices.Sorted(maps.Keys(touched))
	var parts []string
	for _, c := range changes {
		switch {
		case c.From == "":
			parts = append(parts, fmt.Sprintf("%s %s (new)", c.Package, c.To))
		case c.To == "":
			parts = append(parts, fmt.Sprintf("%s %s (removed)", c.Package, c.From))
		default:
			parts = append(parts, fmt.Sprintf("%s %s -> %s", c.Package, c.From, c.To))
		}
	}
	if res.Pinned != "" {
		parts = append(parts, "pin at "+opts.To)
	}
	if res.Unpinned != "" {
		parts = append(parts, "unpin")
	}
	msg := "upgrade " + strings.Join(names, ", ") + ": " + strings.Join(parts, ", ")
	if len(renamed) > 0 {
		msg += "\n\nCarried over renamed settings:\n"
		for _, r := range renamed {
			msg += "  " + r.String() + "\n"
		}
	}
	if opts.Reason != "" {
		msg += "\n\n" + strings.TrimSpace(opts.Reason) + "\n"
	}
	write := func() error {
		// Renders read the secrets from the workspace: write them first.
		for _, n := range slices.Sorted(maps.Keys(renamedSecrets)) {
			if err := e.writeSecrets(ctx, n, renamedSecrets[n]); err != nil {
				return err
			}
		}
		return e.writePlan(ctx, p, rebuild)
	}
	if opts.DryRun {
		res.Preview, err = e.preview(ctx, msg, e.allPaths(p, rebuild), write)
		return res, err
	}
	res.Committed, err = e.WS.ChangeCommitted(ctx, msg, e.allPaths(p, rebuild), write)
	return res, err
}

// diffLock compares a lock with a solution: which instances moved, and which
// apps own them.
func diffLock(lock *workspace.Lock, sol *resolve.Solution) ([]VersionChange, map[string]bool) {
	var changes []VersionChange
	touched := map[string]bool{}
	owner := func(key string) string {
		if strings.HasPrefix(key, "shared:") {
			return strings.TrimPrefix(key, "shared:")
		}
		o, _, _ := strings.Cut(strings.TrimPrefix(key, "app:"), "/")
		return o
	}
	seen := map[string]bool{}
	for _, in := range sol.Instances {
		seen[in.Key] = true
		old, ok := lock.Get(in.Key)
		if ok && old.Version == in.Version {
			continue
		}
		c := VersionChange{Key: in.Key, Package: in.Package, To: in.Version}
		if ok {
			c.From = old.Version
		}
		changes = append(changes, c)
		touched[owner(in.Key)] = true
	}
	for _, in := range lock.Instances {
		if !seen[in.Key] {
			changes = append(changes, VersionChange{Key: in.Key, Package: in.Package, From: in.Version})
			touched[owner(in.Key)] = true
		}
	}
	slices.SortFunc(changes, func(a, b VersionChange) int { return strings.Compare(a.Key, b.Key) })
	return changes, touched
}

// History lists the commits that changed an app, newest first.
func (e *Env) History(ctx context.Context, app string) ([]workspace.Revision, error) {
	if _, err := e.WS.App(app); err != nil {
		return nil, err
	}
	return e.WS.History(ctx, e.appPaths(app)...)
}

// RollbackResult says what Rollback restored.
type RollbackResult struct {
	App      string `json:"app"`
	Revision string `json:"revision"`
	Subject  string `json:"subject"`
	// Committed is false when the app already was as at Revision: a rollback
	// run again completes the first one instead of undoing it.
	Committed bool `json:"committed"`
}

// TrailerRollbackTo records a rollback's target revision in its commit
// message, so that running the rollback again completes it instead of
// toggling back.
const TrailerRollbackTo = "Berth-Rollback-To"

// RollbackOptions configures Rollback.
type RollbackOptions struct {
	App string
	// To is the revision to restore; see Rollback when empty.
	To string
	// AllowBreaking lets the rollback cross a breaking version boundary.
	AllowBreaking bool
	// Reason, when set, is recorded in the commit message: why the app was
	// rolled back (the upgrades controller says which health check failed).
	Reason string
}

// Rollback restores an app's files (its choices, secrets and rendered objects)
// and its entries in the lock as they were at revision opts.To, as a new
// commit whose message records it (TrailerRollbackTo). Without a revision it
// goes back to the app's previous revision; when the app's newest commit is
// itself a rollback, to that rollback's target, so a rerun (after a crash,
// say) completes it rather than undoing it. It refuses to move versions across
// a breaking boundary unless AllowBreaking.
func (e *Env) Rollback(ctx context.Context, opts RollbackOptions) (*RollbackResult, error) {
	app, rev := opts.App, opts.To
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	revs, err := e.History(ctx, app)
	if err != nil {
		return nil, err
	}
	if rev == "" && len(revs) > 0 {
		if rev, err = e.WS.Trailer(ctx, revs[0].Hash, TrailerRollbackTo); err != nil {
			return nil, err
		}
	}
	if rev == "" {
		if len(revs) < 2 {
			return nil, fmt.Errorf("app %s has no earlier revision to roll back to ('berth history %s' lists its revisions)", app, app)
		}
		rev = revs[1].Hash
	}
	hash, err := e.WS.ResolveRevision(ctx, rev)
	if err != nil {
		return nil, fmt.Errorf("%q is not a revision of app %s ('berth history %s' lists them)", rev, app, app)
	}
	var subject string
	for _, r := range revs {
		if r.Hash == hash {
			subject = r.Subject
		}
	}
	oldLockData, err := e.WS.FileAt(ctx, hash, workspace.LockFile)
	if err != nil {
		return nil, fmt.Errorf("%q is not a revision of app %s ('berth history %s' lists them)", rev, app, app)
	}
	oldLock, err := workspace.ParseLock(oldLockData)
	if err != nil {
		return nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	mine := func(key string) bool {
		return key == resolve.AppKey(app) || strings.HasPrefix(key, resolve.AppKey(app)+"/")
	}
	var merged []workspace.LockInstance
	for _, in := range lock.Instances {
		if !mine(in.Key) {
			merged = append(merged, in)
		}
	}
	for _, in := range oldLock.Instances {
		if mine(in.Key) {
			merged = append(merged, in)
		}
	}
	if !opts.AllowBreaking {
		var changes []VersionChange
		for _, in := range oldLock.Instances {
			if cur, ok := lock.Get(in.Key); ok && mine(in.Key) && cur.Version != in.Version {
				changes = append(changes, VersionChange{Key: in.Key, Package: in.Package, From: cur.Version, To: in.Version})
			}
		}
		bad, err := e.breaking(ctx, changes)
		if err != nil {
			return nil, err
		}
		if len(bad) > 0 {
			return nil, &BreakingError{Op: "rollback", Changes: bad}
		}
	}
	msg := fmt.Sprintf("rollback %s to %.8s", app, hash)
	if subject != "" {
		msg += " (" + subject + ")"
	}
	if opts.Reason != "" {
		msg += "\n\n" + strings.TrimSpace(opts.Reason)
	}
	msg += "\n\n" + TrailerRollbackTo + ": " + hash + "\n"
	committed, err := e.WS.ChangeCommitted(ctx, msg, append(e.appPaths(app), workspace.LockFile), func() error {
		if _, err := e.WS.RestoreFiles(ctx, hash, e.appPaths(app)...); err != nil {
			return err
		}
		if _, err := e.WS.App(app); err != nil {
			return fmt.Errorf("app %s did not exist at revision %.8s", app, hash)
		}
		return e.WS.WriteLock(&workspace.Lock{Instances: merged})
	})
	if err != nil {
		return nil, err
	}
	return &RollbackResult{App: app, Revision: hash, Subject: subject, Committed: committed}, nil
}
