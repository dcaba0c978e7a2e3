package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestUninstallDeleteDataNeedsConfirmation: without a terminal to ask on,
// --delete-data is refused unless --yes, and nothing changes.
func TestUninstallDeleteDataNeedsConfirmation(t *testing.T) {
	cryptoEnv(t)
	home := t.TempDir()
	ws := filepath.Join(t.TempDir(), "ws")
	mustBerth(t, home, "init", ws)
	mustBerth(t, home, "install", "redis", "--name", "cache", "--yes", "--no-deploy", "-C", ws)
	head := git(t, ws, "rev-parse", "HEAD")
	r := berth(t, home, "uninstall", "cache", "--delete-data", "-C", ws)
	if r.code == 0 || !strings.Contains(r.err, "rerun with --yes") {
		t.Errorf("uninstall --delete-data without a terminal: exit %d\n%s", r.code, r.err)
	}
	if git(t, ws, "rev-parse", "HEAD") != head || git(t, ws, "status", "--porcelain") != "" {
		t.Error("a refused uninstall changed the workspace")
	}
	if r := berth(t, home, "uninstall", "cache", "--delete-data", "--keep-data", "--yes", "-C", ws); r.code == 0 {
		t.Error("--delete-data with --keep-data was accepted")
	}
}
