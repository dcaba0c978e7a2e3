package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/testcluster"
)

// auditLog collects the console's log lines for the test's length.
type auditLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (a *auditLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b.Write(p)
}

func (a *auditLog) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.b.String()
}

func captureLog(t *testing.T) *auditLog {
	a := &auditLog{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(a, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return a
}

func TestBrowserRevealASecretAndUninstall(t *testing.T) {
	const token = "tok-4f9a-very-secret"
	f := newFixtureWith(t, func(f *fixture) {
		if _, err := f.env.Config(context.Background(), lifecycle.ConfigOptions{App: f.app, Values: map[string]any{"apiToken": token}}); err != nil {
			t.Fatal(err)
		}
	})
	logged := captureLog(t)
	appPath := "/apps/" + f.app

	// An operator is offered no reveal, and is refused one.
	operator := newClient(t, f.url)
	operator.signInOIDC(f.issuer, operatorUser)
	_, page := operator.get(appPath)
	if strings.Contains(page, "reveal-apiToken") || strings.Contains(page, token) {
		t.Errorf("an operator's app page offers the reveal or holds the value")
	}
	if status, body := operator.post(appPath+"/secrets/apiToken/reveal", url.Values{"csrf": {operator.csrf(appPath)}}); status != http.StatusForbidden || strings.Contains(body, token) {
		t.Errorf("an operator's reveal = %d, want 403 without the value", status)
	}

	// An admin: the value is not in the page until asked.
	ctx := browser(t)
	f.signInAs(t, ctx, adminUser)
	var html, shown string
	run(t, ctx, "app page",
		chromedp.Navigate(f.url+appPath),
		chromedp.WaitVisible("#reveal-apiToken", chromedp.ByQuery),
		chromedp.OuterHTML("html", &html, chromedp.ByQuery),
	)
	if strings.Contains(html, token) {
		t.Fatalf("the secret value is in the page before it was asked for")
	}
	run(t, ctx, "reveal",
		chromedp.Click("#reveal-apiToken", chromedp.ByQuery),
		chromedp.WaitVisible("output.secret-value", chromedp.ByQuery),
		chromedp.Text("output.secret-value", &shown, chromedp.ByQuery),
	)
	if shown != token {
		t.Errorf("revealed %q, want the value set", shown)
	}
	log := logged.String()
	if !strings.Contains(log, "secret revealed") || !strings.Contains(log, "param=apiToken") || !strings.Contains(log, `user="Ada Tester"`) {
		t.Errorf("no audit line naming the parameter and the person:\n%s", log)
	}
	if strings.Contains(log, token) {
		t.Errorf("the log holds the secret value:\n%s", log)
	}

	// Uninstall: the name typed wrong changes nothing; the data choice needs
	// its own confirmation.
	head := f.git("rev-parse", "HEAD")
	var msg string
	run(t, ctx, "uninstall refused",
		chromedp.Click("#uninstall-box summary", chromedp.ByQuery),
		chromedp.SendKeys("#confirm", f.app+"x", chromedp.ByQuery),
		chromedp.Click("#uninstall", chromedp.ByQuery),
		chromedp.WaitVisible("#error", chromedp.ByQuery),
		chromedp.Text("#error", &msg, chromedp.ByQuery),
	)
	if !strings.Contains(msg, "type the app's name") {
		t.Errorf("a wrong name: the page says %q", msg)
	}
	run(t, ctx, "delete data unconfirmed",
		chromedp.WaitVisible("#confirm", chromedp.ByQuery),
		chromedp.SetValue("#confirm", f.app, chromedp.ByQuery),
		chromedp.Click("#delete-data", chromedp.ByQuery),
		chromedp.Click("#uninstall", chromedp.ByQuery),
		chromedp.WaitVisible("#error", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#error")?.textContent.includes("a second time")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
	)
	if got := f.git("rev-parse", "HEAD"); got != head {
		t.Fatalf("a refused uninstall committed")
	}
	if n := f.replicas(t); n != 1 {
		t.Fatalf("the app's Deployment after refused uninstalls: %d replicas", n)
	}
	shot(t, ctx, "uninstall-refused")
	run(t, ctx, "uninstall",
		chromedp.WaitVisible("#confirm", chromedp.ByQuery),
		chromedp.SetValue("#confirm", f.app, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#delete-data").checked = false`, nil),
		clearFlash,
		chromedp.Click("#uninstall", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text(".flash.ok", &msg, chromedp.ByQuery),
	)
	if !strings.HasPrefix(msg, "Uninstalled "+f.app) {
		t.Errorf("after uninstall the page says %q", msg)
	}
	if author, subject := f.lastCommit(); author != "Ada Tester <ada@example.com>" || !strings.Contains(subject, f.app) {
		t.Errorf("uninstall commit = %q by %q", subject, author)
	}
	if _, err := testcluster.Clientset(t).AppsV1().Deployments(f.appNS).Get(context.Background(), f.app, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the app's Deployment after uninstall: %v, want it gone", err)
	}
	if _, err := f.env.WS.App(f.app); err == nil {
		t.Errorf("the app is still in the workspace after uninstall")
	}
}
