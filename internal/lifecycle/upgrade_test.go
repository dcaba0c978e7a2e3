package lifecycle

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func lockedAt(t *testing.T, env *Env, app string) string {
	t.Helper()
	lock, err := env.WS.Lock()
	if err != nil {
		t.Fatal(err)
	}
	return lockedVersion(lock, app)
}

// TestUpgradeNeverGoesBackwards: after --to above the channel, a plain upgrade
// keeps the version (it used to commit 7.4.2 -> 7.4.1), the pin is recorded in
// app.yaml, and --unpin follows the channel again without going down.
func TestUpgradeNeverGoesBackwards(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	if _, err := env.Install(ctx, InstallOptions{Package: "redis", Name: "cache"}); err != nil {
		t.Fatal(err)
	}
	if v := lockedAt(t, env, "cache"); v != "7.4.1" {
		t.Fatalf("installed redis %s, want stable's 7.4.1", v)
	}
	res, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{"cache"}, To: "7.4.2"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pinned != "cache" || !res.Committed {
		t.Errorf("upgrade --to = %+v, want cache pinned and committed", res)
	}
	a, err := env.WS.App("cache")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != "=7.4.2" {
		t.Errorf("app.yaml version %q, want the pin =7.4.2", a.Version)
	}
	head := git(t, env.WS.Root, "rev-parse", "HEAD")
	for _, opts := range []UpgradeOptions{{}, {Apps: []string{"cache"}}} {
		res, err = env.Upgrade(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changes) > 0 || res.Committed {
			t.Errorf("plain upgrade %+v of a pinned app changed %+v", opts, res.Changes)
		}
	}
	res, err = env.Upgrade(ctx, UpgradeOptions{Apps: []string{"cache"}, Unpin: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Unpinned != "cache" || len(res.Changes) > 0 {
		t.Errorf("upgrade --unpin = %+v, want unpinned and no version change (7.4.2 stays above stable's 7.4.1)", res)
	}
	if v := lockedAt(t, env, "cache"); v != "7.4.2" {
		t.Errorf("after --unpin redis is at %s, want 7.4.2 kept", v)
	}
	if a, _ := env.WS.App("cache"); a.Version != "" || a.Channel != "stable" {
		t.Errorf("after --unpin app.yaml has version %q channel %q", a.Version, a.Channel)
	}
	// Unpinned and following stable: a plain upgrade still never goes down.
	res, err = env.Upgrade(ctx, UpgradeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) > 0 {
		t.Errorf("plain upgrade after --unpin changed %+v; berth never downgrades", res.Changes)
	}
	if git(t, env.WS.Root, "rev-list", "--count", head+"..HEAD") != "1" {
		t.Error("want exactly one commit (the unpin) after the pin")
	}
}

// TestUpgradeRefusesABreakingBoundary: postgresql 16 -> 17 is a new major
// version; upgrade and the rollback back are refused with the package's note
// unless allowed; a dry run commits nothing and shows the change.
func TestUpgradeRefusesABreakingBoundary(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	root := env.WS.Root
	if _, err := env.Install(ctx, InstallOptions{Package: "postgresql", Name: "db"}); err != nil {
		t.Fatal(err)
	}
	head := git(t, root, "rev-parse", "HEAD")
	_, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{"db"}, To: "17.2.0"})
	var be *BreakingError
	if !errors.As(err, &be) {
		t.Fatalf("upgrade to 17.2.0: %v, want a BreakingError", err)
	}
	for _, want := range []string{"postgresql 16.4.0 -> 17.2.0", "major version 16 -> 17", "pg_dumpall"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if git(t, root, "rev-parse", "HEAD") != head || git(t, root, "status", "--porcelain") != "" {
		t.Error("a refused upgrade changed the workspace")
	}
	// config --channel latest is the same move.
	if _, err := env.Config(ctx, ConfigOptions{App: "db", Channel: "latest"}); !errors.As(err, &be) {
		t.Errorf("config --channel latest: %v, want a BreakingError", err)
	}

	// A dry run shows it and commits nothing.
	res, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{"db"}, To: "17.2.0", AllowBreaking: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed || len(res.Changes) != 1 || res.Changes[0].To != "17.2.0" || res.Preview == nil {
		t.Fatalf("dry run = %+v", res)
	}
	if !strings.Contains(res.Preview.Diff, "17.2.0") || !strings.Contains(res.Preview.Diff, "berth.lock") {
		t.Errorf("dry-run diff does not show the new version in berth.lock:\n%s", res.Preview.Diff)
	}
	if strings.Contains(res.Preview.Diff, "seed:") || strings.Contains(res.Preview.Diff, "password:") {
		t.Errorf("dry-run diff shows secret content:\n%s", res.Preview.Diff)
	}
	if git(t, root, "rev-parse", "HEAD") != head || git(t, root, "status", "--porcelain", "--untracked-files=all") != "" {
		t.Error("a dry run changed the workspace")
	}

	if _, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{"db"}, To: "17.2.0", AllowBreaking: true}); err != nil {
		t.Fatal(err)
	}
	if v := lockedAt(t, env, "db"); v != "17.2.0" {
		t.Fatalf("db at %s after the allowed upgrade", v)
	}
	if _, err := env.Rollback(ctx, RollbackOptions{App: "db"}); !errors.As(err, &be) || !strings.Contains(err.Error(), "17.2.0 -> 16.4.0") {
		t.Errorf("rollback across the boundary: %v, want a BreakingError", err)
	}
	if _, err := env.Rollback(ctx, RollbackOptions{App: "db", AllowBreaking: true}); err != nil {
		t.Fatal(err)
	}
	if v := lockedAt(t, env, "db"); v != "16.4.0" {
		t.Errorf("db at %s after the allowed rollback", v)
	}
}

// TestConfigSwitchesChannel: --channel is validated against the package and
// moves the app to the channel's version.
func TestConfigSwitchesChannel(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	if _, err := env.Install(ctx, InstallOptions{Package: "redis", Name: "cache"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Config(ctx, ConfigOptions{App: "cache", Channel: "nightly"}); err == nil || !strings.Contains(err.Error(), `no channel "nightly"`) {
		t.Errorf("unknown channel: %v", err)
	}
	head := git(t, env.WS.Root, "rev-parse", "HEAD")
	dry, err := env.Config(ctx, ConfigOptions{App: "cache", Values: map[string]any{"maxMemory": "512Mi"}, Channel: "warm", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Committed || dry.Preview == nil || !strings.Contains(dry.Preview.Diff, "maxMemory: 512Mi") || !strings.Contains(dry.Preview.Diff, "7.4.2") {
		t.Errorf("config --dry-run = %+v, want the new value and version in the diff", dry)
	}
	if git(t, env.WS.Root, "rev-parse", "HEAD") != head || git(t, env.WS.Root, "status", "--porcelain", "--untracked-files=all") != "" {
		t.Error("config --dry-run changed the workspace")
	}
	res, err := env.Config(ctx, ConfigOptions{App: "cache", Channel: "warm"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Committed || lockedAt(t, env, "cache") != "7.4.2" {
		t.Errorf("config --channel warm = %+v, locked %s", res, lockedAt(t, env, "cache"))
	}
	if a, _ := env.WS.App("cache"); a.Channel != "warm" {
		t.Errorf("app.yaml channel %q, want warm", a.Channel)
	}
}

// An app with a version constraint upgrades to the newest version the
// constraint allows (the constraint wins over the stable channel), across a
// breaking boundary only when allowed.
func TestUpgradeFollowsAConstraintNotTheChannel(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	if _, err := env.Install(ctx, InstallOptions{Package: "redis@>=7.4.0", Name: "cache"}); err != nil {
		t.Fatal(err)
	}
	res, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{"cache"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range res.Changes {
		got = append(got, c.Package+" "+c.From+" -> "+c.To)
	}
	if len(got) != 1 || got[0] != "redis 7.4.1 -> 7.4.2" {
		t.Errorf("upgrade of redis@>=7.4.0 from the stable 7.4.1: %v, want the newest the constraint allows, 7.4.2", got)
	}
}
