package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/upgrades/upgradestest"
)

// TestUpgradesApproveRejectCommandLines: berth upgrades lists what the
// catalog offers, reject records a version away and approve lands the
// controller's proposal and allows the version again.
func TestUpgradesApproveRejectCommandLines(t *testing.T) {
	cryptoEnv(t)
	// The test cluster, where no controller follows this workspace: approve
	// deploys by itself.
	t.Setenv("KUBECONFIG", testcluster.Kubeconfig(t))
	home := t.TempDir()
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "")
	app := testcluster.UniqueName(t, 30)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), app, metav1.DeleteOptions{})
	})
	w.Install(t, app, "")
	root := w.WS.Root
	cat.Publish(t, "1.1.0", "1.1.0")

	view := func() UpgradesView {
		t.Helper()
		var v UpgradesView
		if err := json.Unmarshal([]byte(mustBerth(t, home, "upgrades", "-o", "json", "-C", root)), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := view()
	if v.Source != "workspace" || len(v.Available) != 1 || v.Available[0].App != app || v.Available[0].To != "1.1.0" || v.Available[0].State != "proposed" || v.Available[0].Policy != "approve" {
		t.Fatalf("berth upgrades = %+v", v)
	}
	if out := mustBerth(t, home, "upgrades", "-C", root); !strings.Contains(out, app+"  upfixture  1.0.0  1.1.0  stable   approve  proposed") || !strings.Contains(out, "No berth controller manages this workspace") {
		t.Errorf("berth upgrades:\n%s", out)
	}

	// The controller proposes it (the workspace is its own remote).
	u := upgrades.New(upgrades.Options{CacheDir: t.TempDir(), Executable: testcluster.BerthBinary(t)})
	res, err := u.Cycle(context.Background(), upgrades.Target{Key: "t/ws", URL: root, Decryption: w.Key}, upgrades.Observed{})
	if err != nil || len(res.Status.Proposals) != 1 {
		t.Fatalf("cycle = %+v, %v", res, err)
	}

	out := mustBerth(t, home, "reject", app, "1.1.0", "--reason", "not this one", "-C", root)
	if !strings.Contains(out, "Rejected "+app+" 1.1.0") || !strings.Contains(read(t, root, "upgrades.yaml"), "reason: not this one") {
		t.Errorf("reject:\n%s\n%s", out, read(t, root, "upgrades.yaml"))
	}
	if v := view(); v.Available[0].State != "rejected" {
		t.Errorf("after reject: %+v", v.Available)
	}
	if r := berth(t, home, "reject", app, "9.9", "-C", root); r.code != 1 || !strings.Contains(r.err, `"9.9" is not a version of the catalog`) {
		t.Errorf("reject of a bad version: exit %d, %s", r.code, r.err)
	}

	out = mustBerth(t, home, "approve", app, "1.1.0", "-C", root)
	for _, want := range []string{"Approved " + app + " 1.1.0: berth/upgrade/" + app + "/1.1.0 landed (merge commit)", app + " 1.1.0 is allowed again"} {
		if !strings.Contains(out, want) {
			t.Errorf("approve does not say %q:\n%s", want, out)
		}
	}
	if cm, err := testcluster.Clientset(t).CoreV1().ConfigMaps(app).Get(context.Background(), "hello-extra", metav1.GetOptions{}); err != nil || cm.Data["added"] != "1.1.0" {
		t.Errorf("approve did not deploy 1.1.0: %v", err)
	}
	if !strings.Contains(read(t, root, "berth.lock"), "version: 1.1.0") || strings.Contains(read(t, root, "upgrades.yaml"), app) {
		t.Errorf("after approve the lock or the holds are wrong:\n%s\n%s", read(t, root, "berth.lock"), read(t, root, "upgrades.yaml"))
	}
	if st := git(t, root, "status", "--porcelain"); st != "" {
		t.Errorf("approve left the workspace dirty:\n%s", st)
	}
	r := berth(t, home, "approve", app, "--no-deploy", "-C", root)
	if r.code != 1 || !strings.Contains(r.err, "no upgrade of "+app+" is proposed") || !strings.Contains(r.err, "'berth upgrades' lists what is proposed") {
		t.Errorf("approve with nothing proposed: exit %d\n%s", r.code, r.err)
	}
}
