package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// ConfigResult says what Config changed.
type ConfigResult struct {
	App       string   `json:"app"`
	Set       []string `json:"set"`
	Committed bool     `json:"committed"`
}

// Config changes an app's configuration: the new values are merged over the
// current ones, checked against the package's schema and rules, split into
// plain and secret, rendered and committed. Nothing is written when they fail.
func (e *Env) Config(ctx context.Context, app string, values map[string]any) (*ConfigResult, error) {
	release, err := e.writing(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	a, err := e.WS.App(app)
	if err != nil {
		return nil, err
	}
	apps, err := e.workspaceApps()
	if err != nil {
		return nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	p, err := e.solve(ctx, apps, lock, nil)
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
	s, err := e.readSecrets(app)
	if err != nil {
		return nil, err
	}
	merged := map[string]any{}
	mergeValues(merged, a.Values)
	mergeValues(merged, s.Values)
	mergeValues(merged, values)
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
	set := slices.Sorted(maps.Keys(flatten(values, "")))
	// Names only: a value may be secret.
	msg := fmt.Sprintf("configure %s: set %s", app, strings.Join(set, ", "))
	committed, err := e.WS.ChangeCommitted(ctx, msg, e.allPaths(p, []string{app}), func() error {
		if err := e.writeSecrets(ctx, app, s); err != nil {
			return err
		}
		return e.writePlan(ctx, p, []string{app})
	})
	if err != nil {
		return nil, err
	}
	return &ConfigResult{App: app, Set: set, Committed: committed}, nil
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
	// To is an exact version for the single app named.
	To string
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
	Changes   []VersionChange `json:"changes"`
	Committed bool            `json:"committed"`
}

// Upgrade moves apps to the newest versions their channel or constraint allows
// (or to opts.To), moving their components and shared dependencies with them when
// they must, and commits the new lock and rendered objects. It changes nothing
// when everything is up to date.
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
	}
	if opts.To != "" && len(names) != 1 {
		return nil, fmt.Errorf("--to needs exactly one app, got %d", len(names))
	}
	upgrade := map[string]string{}
	for _, n := range names {
		if _, ok := apps[n]; !ok {
			_, err := e.WS.App(n)
			return nil, err
		}
		upgrade[n] = opts.To
	}
	p, err := e.solve(ctx, apps, lock, upgrade)
	if err != nil {
		return nil, err
	}
	changes, touched := diffLock(lock, p.solution)
	res := &UpgradeResult{Changes: changes}
	if len(changes) == 0 {
		return res, nil
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
	msg := "upgrade " + strings.Join(names, ", ") + ": " + strings.Join(parts, ", ")
	res.Committed, err = e.WS.ChangeCommitted(ctx, msg, e.allPaths(p, rebuild), func() error {
		return e.writePlan(ctx, p, rebuild)
	})
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
	return e.WS.History(ctx, appPaths(app)...)
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

// Rollback restores an app's files (its choices, secrets and rendered objects)
// and its entries in the lock as they were at revision rev, as a new commit
// whose message records rev (TrailerRollbackTo). Without rev it goes back to
// the app's previous revision; when the app's newest commit is itself a
// rollback, to that rollback's target, so a rerun (after a crash, say)
// completes it rather than undoing it.
func (e *Env) Rollback(ctx context.Context, app, rev string) (*RollbackResult, error) {
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
	msg := fmt.Sprintf("rollback %s to %.8s", app, hash)
	if subject != "" {
		msg += " (" + subject + ")"
	}
	msg += "\n\n" + TrailerRollbackTo + ": " + hash + "\n"
	committed, err := e.WS.ChangeCommitted(ctx, msg, append(appPaths(app), workspace.LockFile), func() error {
		if _, err := e.WS.RestoreFiles(ctx, hash, appPaths(app)...); err != nil {
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
