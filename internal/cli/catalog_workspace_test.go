package cli

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const helloPackage = `apiVersion: berth.dev/v1alpha1
kind: Package
name: hello
version: 1.0.0
description: A greeting in a ConfigMap, from a team's own catalog.
manifests: [greeting.yaml]
config:
  - name: greeting
    type: string
    description: What to say.
    default: hi
`

const helloManifest = `apiVersion: v1
kind: ConfigMap
metadata:
  name: hello
data:
  greeting: hi
`

// TestWorkspaceCatalogsTravelWithTheClone: a catalog added inside a workspace
// is recorded in berth.yaml, so a teammate's clone under another berth home
// builds and configures the app that came from it (it used to fail with
// "hello is not a package in any catalog"); the catalog cannot be removed
// while the app uses it.
func TestWorkspaceCatalogsTravelWithTheClone(t *testing.T) {
	cryptoEnv(t)
	home, mateHome := t.TempDir(), t.TempDir()
	cat := t.TempDir()
	write(t, cat, "hello/1.0.0/package.yaml", helloPackage)
	write(t, cat, "hello/1.0.0/greeting.yaml", helloManifest)
	write(t, cat, "hello/channels.yaml", "stable: 1.0.0\n")
	ws := filepath.Join(t.TempDir(), "ws")
	mustBerth(t, home, "init", ws)
	mustBerth(t, home, "catalog", "add", "team", cat, "-C", ws)
	if cfg := read(t, ws, "berth.yaml"); !strings.Contains(cfg, "name: team") || !strings.Contains(cfg, cat) {
		t.Fatalf("berth.yaml does not record the catalog:\n%s", cfg)
	}
	if st := git(t, ws, "status", "--porcelain"); st != "" {
		t.Fatalf("catalog add left uncommitted changes:\n%s", st)
	}
	// Not in berth's home: outside the workspace it is unknown.
	if out := mustBerth(t, home, "catalog", "list", "-C", t.TempDir()); strings.Contains(out, "team") {
		t.Errorf("a workspace catalog leaked into berth's home:\n%s", out)
	}
	mustBerth(t, home, "install", "hello", "-C", ws, "--yes", "--no-deploy")

	r := berth(t, home, "catalog", "remove", "team", "-C", ws)
	if r.code == 0 || !strings.Contains(r.err, "in use by hello") {
		t.Errorf("catalog remove while hello uses it: exit %d\n%s", r.code, r.err)
	}

	// A teammate: another berth home, a clone, the key shared with them.
	mustBerth(t, home, "crypto", "-C", ws, "add-recipient", strings.TrimSpace(mustBerth(t, mateHome, "crypto", "identity")))
	clone := filepath.Join(t.TempDir(), "mate")
	if out, err := exec.Command("git", "clone", "-q", ws, clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	mustBerth(t, mateHome, "crypto", "-C", clone, "unlock")
	if out := mustBerth(t, mateHome, "build", "-C", clone); !strings.Contains(out, "nothing changed") {
		t.Errorf("the clone's build changed what the original built:\n%s", out)
	}
	mustBerth(t, mateHome, "config", "hello", "--set", "greeting=hello", "-C", clone, "--no-deploy")
	if got := git(t, clone, "log", "-1", "--format=%s"); !strings.Contains(got, "configure hello") {
		t.Errorf("the clone's last commit is %q, want the configuration", got)
	}

	// A workspace whose berth.yaml lost the catalog says which is missing.
	cfg := read(t, ws, "berth.yaml")
	write(t, ws, "berth.yaml", strings.Replace(cfg, "name: team", "name: other", 1))
	if r := berth(t, home, "build", "-C", ws); r.code == 0 || !strings.Contains(r.err, "hello (from catalog team)") {
		t.Errorf("build with the catalog gone from berth.yaml: exit %d\n%s", r.code, r.err)
	}
	write(t, ws, "berth.yaml", cfg)

	// A catalog nothing uses can go.
	mustBerth(t, home, "catalog", "add", "spare", cat, "-C", ws)
	mustBerth(t, home, "catalog", "remove", "spare", "-C", ws)
	if cfg := read(t, ws, "berth.yaml"); strings.Contains(cfg, "spare") || !strings.Contains(cfg, "team") {
		t.Errorf("berth.yaml after removing spare:\n%s", cfg)
	}
}
