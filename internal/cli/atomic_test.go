package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

// TestFailedConfigIsUndoneInOneStep: a configuration the cluster refuses (the
// storage class of a StatefulSet's claim template cannot change) leaves the
// commit and names the undo; with --atomic berth reverts it with a new commit
// and deploys the previous state again.
func TestFailedConfigIsUndoneInOneStep(t *testing.T) {
	cryptoEnv(t)
	kc := kubeconfig(t)
	home := t.TempDir()
	name := testcluster.UniqueName(t, 20)
	ws := filepath.Join(t.TempDir(), "ws")
	mustBerth(t, home, "init", ws, "--kubeconfig", kc)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	mustBerth(t, home, "install", "redis", "--name", name, "-n", name, "--yes", "-C", ws, "--timeout", "2m")
	installed := strings.TrimSpace(git(t, ws, "rev-parse", "HEAD"))

	r := berth(t, home, "config", name, "--set", "storageClass=nope", "-C", ws, "--timeout", "2m")
	if r.code == 0 {
		t.Fatalf("a configuration the cluster refuses deployed:\n%s", r.out)
	}
	failed := strings.TrimSpace(git(t, ws, "rev-parse", "HEAD"))
	for _, want := range []string{"committed as " + failed[:8], "berth rollback " + name, "git revert " + failed[:8], "--atomic"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r.err)
		}
	}
	// The named undo works in one step.
	mustBerth(t, home, "rollback", name, "-C", ws, "--timeout", "2m")
	if strings.Contains(read(t, ws, "apps/"+name+"/app.yaml"), "nope") {
		t.Error("rollback left the refused configuration")
	}

	before := strings.TrimSpace(git(t, ws, "rev-parse", "HEAD"))
	r = berth(t, home, "config", name, "--set", "storageClass=nope", "--atomic", "-C", ws, "--timeout", "2m")
	if r.code == 0 || !strings.Contains(r.err, "--atomic reverted the change") || !strings.Contains(r.err, "deployed the previous state again") {
		t.Fatalf("config --atomic: exit %d\n%s", r.code, r.err)
	}
	log := strings.Split(strings.TrimSpace(git(t, ws, "log", "--format=%s", before+"..HEAD")), "\n")
	if len(log) != 2 || !strings.HasPrefix(log[0], "Revert \"configure "+name) || !strings.HasPrefix(log[1], "configure "+name) {
		t.Errorf("commits after --atomic: %q, want the change and its revert", log)
	}
	if strings.Contains(read(t, ws, "apps/"+name+"/app.yaml"), "nope") {
		t.Error("--atomic left the refused configuration in app.yaml")
	}
	git(t, ws, "merge-base", "--is-ancestor", installed, "HEAD") // fails the test when history was rewritten
	if st := git(t, ws, "status", "--porcelain"); st != "" {
		t.Errorf("the workspace is dirty after --atomic:\n%s", st)
	}
}
