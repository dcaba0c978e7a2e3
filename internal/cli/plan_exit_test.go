package cli

import (
	"strings"
	"testing"

	"berth.dev/berth/internal/testcluster"
)

func TestPlanExitCodeSaysWhetherAnythingWouldChange(t *testing.T) {
	ns := testcluster.Namespace(t)
	kc := kubeconfig(t)
	dir := t.TempDir()
	writeManifest(t, dir, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n")
	common := []string{"--app", "web", "-n", ns, "--kubeconfig", kc}
	plan := func(extra ...string) int {
		t.Helper()
		_, _, code := run(t, append(append([]string{"plan", "-f", dir}, common...), extra...)...)
		return code
	}

	if code := plan("--exit-code"); code != 2 {
		t.Errorf("plan --exit-code before the first apply exited %d, want 2 (changes)", code)
	}
	if code := plan(); code != 0 {
		t.Errorf("plan without --exit-code exited %d, want 0", code)
	}
	if out, errOut, code := run(t, append([]string{"apply", "-f", dir}, common...)...); code != 0 {
		t.Fatalf("apply exited %d: %s%s", code, out, errOut)
	}
	if code := plan("--exit-code"); code != 0 {
		t.Errorf("plan --exit-code of an applied set exited %d, want 0 (no changes)", code)
	}
	if code := plan("--exit-code", "-o", "json"); code != 0 {
		t.Errorf("plan --exit-code -o json of an applied set exited %d, want 0", code)
	}
	writeManifest(t, dir, "cm.yaml", strings.Replace(readFile(t, dir+"/cm.yaml"), "fast", "slow", 1))
	if code := plan("--exit-code"); code != 2 {
		t.Errorf("plan --exit-code of a changed ConfigMap exited %d, want 2", code)
	}
	if _, _, code := run(t, "plan", "-f", dir+"/missing.yaml", "--app", "web", "-n", ns, "--kubeconfig", kc, "--exit-code"); code != 1 {
		t.Errorf("plan --exit-code of a missing file exited %d, want 1", code)
	}
}
