package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

// TestFailedConfigIsUndoneInOneStep: a configuration the API server accepts
// but the cluster cannot run (a memory limit over the namespace's quota, so
// the new pod is refused and the StatefulSet never becomes ready) leaves the
// commit and names the undo; with --atomic berth reverts it with a new commit
// and deploys the previous state again. (A change the API server itself
// refuses is never committed: see the preflight tests.)
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
	quota(t, name, "300Mi")

	r := berth(t, home, "config", name, "--set", "maxMemory=512Mi", "-C", ws, "--timeout", "15s")
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
	if strings.Contains(read(t, ws, "apps/"+name+"/app.yaml"), "512Mi") {
		t.Error("rollback left the refused configuration")
	}

	// The timeout bounds the revert's deploy too: the StatefulSet
	// controller, refused pods by the quota for a while, backs off before it
	// creates the previous state's pod again, which on a loaded machine took
	// longer than 15 s.
	before := strings.TrimSpace(git(t, ws, "rev-parse", "HEAD"))
	r = berth(t, home, "config", name, "--set", "maxMemory=512Mi", "--atomic", "-C", ws, "--timeout", "45s")
	if r.code == 0 || !strings.Contains(r.err, "--atomic reverted the change") || !strings.Contains(r.err, "deployed the previous state again") {
		t.Fatalf("config --atomic: exit %d\n%s", r.code, r.err)
	}
	log := strings.Split(strings.TrimSpace(git(t, ws, "log", "--format=%s", before+"..HEAD")), "\n")
	if len(log) != 2 || !strings.HasPrefix(log[0], "Revert \"configure "+name) || !strings.HasPrefix(log[1], "configure "+name) {
		t.Errorf("commits after --atomic: %q, want the change and its revert", log)
	}
	if strings.Contains(read(t, ws, "apps/"+name+"/app.yaml"), "512Mi") {
		t.Error("--atomic left the refused configuration in app.yaml")
	}
	git(t, ws, "merge-base", "--is-ancestor", installed, "HEAD") // fails the test when history was rewritten
	if st := git(t, ws, "status", "--porcelain"); st != "" {
		t.Errorf("the workspace is dirty after --atomic:\n%s", st)
	}
}

// quota limits the memory of the pods of namespace ns, and waits until the
// quota controller has computed its use (admission refuses every pod before).
func quota(t *testing.T, ns, memory string) {
	t.Helper()
	cs := testcluster.Clientset(t)
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "memory"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceLimitsMemory: resource.MustParse(memory)}}}
	if _, err := cs.CoreV1().ResourceQuotas(ns).Create(context.Background(), q, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		got, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "memory", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		_, ok := got.Status.Hard[corev1.ResourceLimitsMemory]
		return ok, "quota status not computed yet", nil
	})
}
