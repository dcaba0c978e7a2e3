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
