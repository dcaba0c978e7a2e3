package lifecycle

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/secrets"
)

func TestInitInstallsTheLeakGuardForPlainGitCommits(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	root := env.WS.Root
	if err := secrets.Lock(ctx, root); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "apps", "web", "secrets.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("password: Kx9-plain-leak\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	git(t, root, "add", "apps/web/secrets.yaml")
	before := git(t, root, "rev-parse", "HEAD")
	cmd := exec.Command("git", "-C", root, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "--quiet", "-m", "add a secret")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("git commit of a plaintext secret succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "apps/web/secrets.yaml") {
		t.Errorf("the hook's message does not name the file:\n%s", out)
	}
	if strings.Contains(string(out), "Kx9-plain-leak") {
		t.Errorf("the hook's message holds the secret:\n%s", out)
	}
	if after := git(t, root, "rev-parse", "HEAD"); after != before {
		t.Errorf("HEAD moved from %s to %s", before, after)
	}
}

func TestRollbackRunAgainCompletesInsteadOfToggling(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	if _, err := env.Install(ctx, InstallOptions{Package: "redis"}); err != nil {
		t.Fatal(err)
	}
	for _, mem := range []string{"100Mi", "200Mi"} {
		if _, err := env.Config(ctx, ConfigOptions{App: "redis", Values: map[string]any{"maxMemory": mem}}); err != nil {
			t.Fatal(err)
		}
	}
	maxMemory := func() any {
		t.Helper()
		a, err := env.WS.App("redis")
		if err != nil {
			t.Fatal(err)
		}
		return a.Values["maxMemory"]
	}
	first, err := env.Rollback(ctx, RollbackOptions{App: "redis"})
	if err != nil {
		t.Fatal(err)
	}
	if got := maxMemory(); got != "100Mi" || !first.Committed {
		t.Fatalf("after rollback maxMemory = %v (committed %v), want 100Mi", got, first.Committed)
	}
	if got := git(t, env.WS.Root, "log", "-1", "--format=%(trailers:key="+TrailerRollbackTo+",valueonly)"); got != first.Revision {
		t.Errorf("rollback commit's %s trailer = %q, want %s", TrailerRollbackTo, got, first.Revision)
	}
	head := git(t, env.WS.Root, "rev-parse", "HEAD")
	// Run again (as after a crash before the deploy): it completes the same
	// rollback, with nothing to commit, instead of undoing it.
	again, err := env.Rollback(ctx, RollbackOptions{App: "redis"})
	if err != nil {
		t.Fatal(err)
	}
	if got := maxMemory(); got != "100Mi" {
		t.Errorf("rollback run again: maxMemory = %v, want 100Mi still", got)
	}
	if again.Revision != first.Revision || again.Committed {
		t.Errorf("rollback run again = %+v, want revision %s and no commit", again, first.Revision)
	}
	if got := git(t, env.WS.Root, "rev-parse", "HEAD"); got != head {
		t.Errorf("rollback run again made a commit")
	}
	// An explicit revision still goes anywhere.
	if _, err := env.Rollback(ctx, RollbackOptions{App: "redis", To: "HEAD~1"}); err != nil {
		t.Fatal(err)
	}
	if got := maxMemory(); got != "200Mi" {
		t.Errorf("rollback --to HEAD~1: maxMemory = %v, want 200Mi", got)
	}
}
