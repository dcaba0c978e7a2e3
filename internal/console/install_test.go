package console

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

// TestBrowserInstallReviewCommitsOnlyOnInstall: the install form first
// shows the plan (the component it resolves, the objects by kind, the files)
// and commits nothing; Back keeps the form's values; a commit landing
// between the review and Install gets the plan reviewed again; Install
// commits as the signed-in admin and deploys.
func TestBrowserInstallReviewCommitsOnlyOnInstall(t *testing.T) {
	f := newFixture(t)
	ctx := browser(t)
	f.signInAs(t, ctx, adminUser)
	app := f.app + "-board"
	ns := testcluster.Namespace(t)
	head := f.git("rev-parse", "HEAD")

	var deps, kinds, files string
	run(t, ctx, "review",
		chromedp.Navigate(f.url+"/catalog/board"),
		chromedp.WaitVisible("#install-form", chromedp.ByQuery),
		chromedp.SendKeys("#app-name", app, chromedp.ByQuery),
		chromedp.SendKeys("#app-ns", ns, chromedp.ByQuery),
		chromedp.SetValue("#p-heading", "Week 49", chromedp.ByQuery),
		chromedp.Click("#install", chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-install", chromedp.ByQuery),
		chromedp.Text(`tr[data-dependency="notes"]`, &deps, chromedp.ByQuery),
		chromedp.Text(`li[data-kind="`+app+`/ConfigMap"]`, &kinds, chromedp.ByQuery),
		chromedp.Text(".review-files", &files, chromedp.ByQuery),
	)
	shot(t, ctx, "install-review")
	for _, want := range []string{"notes", "0.1.0", "a component of the app, installed with it"} {
		if !strings.Contains(deps, want) {
			t.Errorf("the review's dependency row %q lacks %q", deps, want)
		}
	}
	if !strings.Contains(kinds, "ConfigMap") || !strings.Contains(kinds, ns+"/"+app) {
		t.Errorf("the review's ConfigMaps %q lack the app's %s/%s", kinds, ns, app)
	}
	for _, want := range []string{"added apps/" + app + "/app.yaml", "berth.lock", "apps/" + app + "/secrets.yaml (encrypted in git; not shown)"} {
		if !strings.Contains(files, want) {
			t.Errorf("the review's files %q lack %q", files, want)
		}
	}
	if got := f.git("rev-parse", "HEAD"); got != head {
		t.Fatalf("the review committed: HEAD moved from %s to %s", head, got)
	}
	if st := f.git("status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Fatalf("the review left the work tree changed:\n%s", st)
	}

	// Back: the form again, with what was typed.
	var name, heading string
	run(t, ctx, "back",
		chromedp.Click("#install-back", chromedp.ByQuery),
		chromedp.WaitVisible("#install-form", chromedp.ByQuery),
		chromedp.Value("#app-name", &name, chromedp.ByQuery),
		chromedp.Value("#p-heading", &heading, chromedp.ByQuery),
	)
	if name != app || heading != "Week 49" {
		t.Errorf("back to the form: name %q, heading %q; want %q and Week 49", name, heading, app)
	}

	// A commit between the review and Install: the plan is shown again.
	run(t, ctx, "review again",
		chromedp.Click("#install", chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-install", chromedp.ByQuery),
	)
	f.git("-c", "user.name=Someone", "-c", "user.email=someone@example.com", "commit", "--allow-empty", "-qm", "meanwhile")
	moved := f.git("rev-parse", "HEAD")
	run(t, ctx, "moved",
		chromedp.Click("#confirm-install", chromedp.ByQuery),
		chromedp.WaitVisible("#review-moved", chromedp.ByQuery),
	)
	if got := f.git("rev-parse", "HEAD"); got != moved {
		t.Fatalf("Install after the workspace moved committed without a new review")
	}

	var msg string
	run(t, ctx, "install",
		chromedp.Click("#confirm-install", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text(".flash.ok", &msg, chromedp.ByQuery),
	)
	want := "install " + app + " (board 0.1.0) (+ notes 0.1.0)"
	if author, subject := f.lastCommit(); author != "Ada Tester <ada@example.com>" || subject != want {
		t.Errorf("install commit = %q by %q, want %q by Ada", subject, author, want)
	}
	if f.git("rev-parse", "HEAD~1") != moved {
		t.Errorf("the install is not one commit on the reviewed state")
	}
	cm, err := testcluster.Clientset(t).CoreV1().ConfigMaps(ns).Get(context.Background(), app, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the installed app's ConfigMap: %v (the page said %q)", err, msg)
	}
	if cm.Data["heading"] != "Week 49" {
		t.Errorf("installed ConfigMap heading = %q, want Week 49", cm.Data["heading"])
	}
}
