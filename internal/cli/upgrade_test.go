package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpgradeCommandLines: a major upgrade is refused with the package's note
// and the flag that allows it; --dry-run shows the change and commits nothing;
// --to pins and --unpin releases.
func TestUpgradeCommandLines(t *testing.T) {
	cryptoEnv(t)
	home := t.TempDir()
	ws := filepath.Join(t.TempDir(), "ws")
	mustBerth(t, home, "init", ws)
	mustBerth(t, home, "install", "postgresql", "--name", "db", "--yes", "--no-deploy", "-C", ws)
	head := strings.TrimSpace(git(t, ws, "rev-parse", "HEAD"))

	r := berth(t, home, "upgrade", "db", "--to", "17.2.0", "--no-deploy", "-C", ws)
	for _, want := range []string{"postgresql 16.4.0 -> 17.2.0", "major version 16 -> 17", "pg_dumpall", "rerun with --allow-breaking"} {
		if r.code == 0 || !strings.Contains(r.err, want) {
			t.Errorf("major upgrade: exit %d, stderr does not say %q:\n%s", r.code, want, r.err)
		}
	}
	out := mustBerth(t, home, "upgrade", "db", "--to", "17.2.0", "--allow-breaking", "--dry-run", "-C", ws)
	for _, want := range []string{"app:db: 16.4.0 -> 17.2.0", "Dry run: would commit", "  M berth.lock", "+  version: 17.2.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run does not show %q:\n%s", want, out)
		}
	}
	var res struct {
		Committed bool `json:"committed"`
		Preview   struct {
			Files []struct{ Path string } `json:"files"`
		} `json:"preview"`
	}
	if err := json.Unmarshal([]byte(mustBerth(t, home, "upgrade", "db", "--to", "17.2.0", "--allow-breaking", "--dry-run", "-o", "json", "-C", ws)), &res); err != nil {
		t.Fatal(err)
	}
	if res.Committed || len(res.Preview.Files) == 0 {
		t.Errorf("dry run -o json = %+v", res)
	}
	if strings.TrimSpace(git(t, ws, "rev-parse", "HEAD")) != head || git(t, ws, "status", "--porcelain", "--untracked-files=all") != "" {
		t.Fatal("a refused upgrade or a dry run changed the workspace")
	}

	out = mustBerth(t, home, "upgrade", "db", "--to", "17.2.0", "--allow-breaking", "--no-deploy", "-C", ws)
	if !strings.Contains(out, "db is pinned at 17.2.0") || !strings.Contains(read(t, ws, "apps/db/app.yaml"), `version: =17.2.0`) {
		t.Errorf("upgrade --to did not pin:\n%s\n%s", out, read(t, ws, "apps/db/app.yaml"))
	}
	if out := mustBerth(t, home, "upgrade", "--no-deploy", "-C", ws); !strings.Contains(out, "Everything is up to date.") {
		t.Errorf("plain upgrade of a pinned app:\n%s", out)
	}
	out = mustBerth(t, home, "upgrade", "db", "--unpin", "--no-deploy", "-C", ws)
	if !strings.Contains(out, "db follows its channel again") || strings.Contains(read(t, ws, "apps/db/app.yaml"), "version:") {
		t.Errorf("upgrade --unpin:\n%s\n%s", out, read(t, ws, "apps/db/app.yaml"))
	}
	// Still 17: stable's 16.4.0 is lower, and berth never goes back by itself.
	if out := mustBerth(t, home, "upgrade", "--no-deploy", "-C", ws); !strings.Contains(out, "Everything is up to date.") {
		t.Errorf("plain upgrade after --unpin:\n%s", out)
	}
	r = berth(t, home, "rollback", "db", "--to", head, "--no-deploy", "-C", ws)
	if r.code == 0 || !strings.Contains(r.err, "rollback refused") || !strings.Contains(r.err, "--allow-breaking") {
		t.Errorf("rollback across the major version: exit %d\n%s", r.code, r.err)
	}
}

// TestUpgradeSaysWhatItCarriedOver: memcached 1.6.1 renames maxMemory to
// memory; the upgrade says it carried the value over.
func TestUpgradeSaysWhatItCarriedOver(t *testing.T) {
	cryptoEnv(t)
	home := t.TempDir()
	ws := filepath.Join(t.TempDir(), "ws")
	mustBerth(t, home, "init", ws)
	mustBerth(t, home, "install", "memcached", "--name", "cache", "--set", "maxMemory=128Mi", "--yes", "--no-deploy", "-C", ws)
	out := mustBerth(t, home, "upgrade", "cache", "--to", "1.6.1", "--no-deploy", "-C", ws)
	for _, want := range []string{"app:cache: 1.6.0 -> 1.6.1", "carried over cache: maxMemory -> memory (renamed in memcached 1.6.1)", "carried over cache: password -> authPassword"} {
		if !strings.Contains(out, want) {
			t.Errorf("upgrade output does not say %q:\n%s", want, out)
		}
	}
	if app := read(t, ws, "apps/cache/app.yaml"); !strings.Contains(app, "memory: 128Mi") || strings.Contains(app, "maxMemory") {
		t.Errorf("app.yaml after the upgrade:\n%s", app)
	}
}
