package console

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

// browser starts headless Chromium (Debian's package; 'make deps' installs
// it) for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: run 'make deps' (Debian: apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 8*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// stepTimeout bounds one step of a browser flow. It is longer than the
// fixture's deploy timeout, so that a slow deploy ends as the page's own
// error message rather than as the browser giving up first.
const stepTimeout = 3 * time.Minute

func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Run(sctx, actions...); err != nil {
		var html string
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = chromedp.Run(hctx, chromedp.Evaluate(`location.href + "\n" + (document.body ? document.body.innerText.slice(0, 4000) : "(no body)")`, &html))
		name := "failed-" + strings.ReplaceAll(step, " ", "-")
		shot(t, ctx, name)
		t.Fatalf("%s: %v\npage:\n%s\nthe console's requests in flight:\n%s", step, err, html, consoleGoroutines(t, name))
	}
}

// consoleGoroutines returns the stacks of the goroutines serving the
// console's requests (the console runs in the test's process), so that a
// step that timed out says where the server was; the whole dump is saved
// beside the screenshots.
func consoleGoroutines(t *testing.T, name string) string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	all := b.String()
	file := filepath.Join(screenshotDir(t), name+".goroutines.txt")
	if err := os.WriteFile(file, []byte(all), 0o644); err == nil {
		t.Logf("goroutines: %s", file)
	}
	var out []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "net/http.(*conn).serve") && strings.Contains(g, "berth/internal/console.") {
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return "(none: the request never reached the console)"
	}
	return strings.Join(out, "\n\n")
}

// shot saves a screenshot of the page as a test artifact.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(screenshotDir(t), name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", file)
}

// clearFlash removes the page's messages, so that waiting for one waits for
// the answer to the next action.
var clearFlash = chromedp.Evaluate(`document.querySelectorAll(".flash").forEach(e => e.remove())`, nil)

func (f *fixture) replicas(t *testing.T) int32 {
	d, err := testcluster.Clientset(t).AppsV1().Deployments(f.appNS).Get(context.Background(), f.app, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

func (f *fixture) lastCommit() (author, subject string) {
	out := f.git("log", "-1", "--format=%an <%ae>%x00%s")
	author, subject, _ = strings.Cut(out, "\x00")
	return author, subject
}

func TestBrowserSignInOperateAndInstall(t *testing.T) {
	f := newFixture(t)
	ctx := browser(t)
	const ada = "Ada Tester <ada@example.com>"
	row := `tr[data-app="` + f.app + `"]`

	// Sign in through the provider's login page.
	run(t, ctx, "sign in",
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible("#oidc-signin", chromedp.ByQuery),
		chromedp.Click("#oidc-signin", chromedp.ByQuery),
		chromedp.WaitVisible("#username", chromedp.ByQuery),
		chromedp.SendKeys("#username", adminUser, chromedp.ByQuery),
		chromedp.SendKeys("#password", password, chromedp.ByQuery),
		chromedp.Submit("#password", chromedp.ByQuery),
		chromedp.WaitVisible(row, chromedp.ByQuery),
	)
	var who, health string
	run(t, ctx, "overview",
		chromedp.Text(".who", &who, chromedp.ByQuery),
		chromedp.Text(row+" .health", &health, chromedp.ByQuery),
	)
	if !strings.Contains(who, "Ada Tester") || !strings.Contains(who, "admin") {
		t.Errorf("signed in as %q, want Ada Tester, admin", who)
	}
	if health != "Healthy" {
		t.Errorf("overview health of %s = %q, want Healthy", f.app, health)
	}
	shot(t, ctx, "overview")

	// Search narrows the list (htmx, as one types).
	run(t, ctx, "search",
		chromedp.SendKeys("#q", "no-such-app", chromedp.ByQuery),
		chromedp.WaitNotPresent(row, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#q").value = ""`, nil),
		chromedp.SendKeys("#q", f.app[:6], chromedp.ByQuery),
		chromedp.WaitVisible(row, chromedp.ByQuery),
	)

	// The app's resource tree: its objects and the Deployment's pods.
	deployNode := `li[data-object="Deployment/` + f.app + `"]`
	run(t, ctx, "app tree",
		chromedp.Click(row+" a", chromedp.ByQuery),
		chromedp.WaitVisible(deployNode+" li.pod", chromedp.ByQuery),
		chromedp.Text(deployNode+" > .health", &health, chromedp.ByQuery),
	)
	if health != "Healthy" {
		t.Errorf("Deployment health in the tree = %q, want Healthy", health)
	}
	shot(t, ctx, "app")

	// A rule violated: its message shows at the fields, nothing is committed.
	head := f.git("rev-parse", "HEAD")
	var msg string
	run(t, ctx, "config violating a rule",
		chromedp.Click("#p-debug", chromedp.ByQuery),
		chromedp.SetValue("#p-replicas", "3", chromedp.ByQuery),
		chromedp.Click("#save-config", chromedp.ByQuery),
		chromedp.WaitVisible(`.field[data-param="replicas"] .error`, chromedp.ByQuery),
		chromedp.Text(`.field[data-param="replicas"] .error`, &msg, chromedp.ByQuery),
	)
	if !strings.Contains(msg, "debug mode runs at most 2 replicas") {
		t.Errorf("inline message = %q, want the rule's message", msg)
	}
	if got := f.git("rev-parse", "HEAD"); got != head {
		t.Errorf("a refused configuration was committed")
	}
	shot(t, ctx, "config-rule")

	// A valid change: committed as Ada, deployed.
	run(t, ctx, "config",
		chromedp.SetValue("#p-replicas", "2", chromedp.ByQuery),
		clearFlash,
		chromedp.Click("#save-config", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
	)
	if author, subject := f.lastCommit(); author != ada || subject != "configure "+f.app+": set debug, replicas" {
		t.Errorf("config commit = %q by %q, want 'configure %s: set debug, replicas' by %s", subject, author, f.app, ada)
	}
	if n := f.replicas(t); n != 2 {
		t.Errorf("deployment replicas after config = %d, want 2", n)
	}

	// Roll back to the install.
	run(t, ctx, "rollback",
		chromedp.WaitVisible("button.rollback", chromedp.ByQuery),
		clearFlash,
		chromedp.Click("button.rollback", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text(".flash.ok", &msg, chromedp.ByQuery),
	)
	if !strings.HasPrefix(msg, "Rolled back") {
		t.Errorf("after rollback the page says %q", msg)
	}
	if author, subject := f.lastCommit(); author != ada || !strings.HasPrefix(subject, "rollback "+f.app) {
		t.Errorf("rollback commit = %q by %q, want a rollback by %s", subject, author, ada)
	}
	if n := f.replicas(t); n != 1 {
		t.Errorf("deployment replicas after rollback = %d, want 1", n)
	}
	shot(t, ctx, "history")

	// Install a package from the catalog; a bound violated first.
	notes := f.app + "-notes"
	notesNS := testcluster.Namespace(t)
	run(t, ctx, "catalog",
		chromedp.Click(`a[href="/catalog"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`a[href="/catalog/notes"]`, chromedp.ByQuery),
		chromedp.Click(`a[href="/catalog/notes"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#install-form", chromedp.ByQuery),
		chromedp.SendKeys("#app-name", notes, chromedp.ByQuery),
		chromedp.SendKeys("#app-ns", notesNS, chromedp.ByQuery),
		chromedp.SendKeys("#p-title", "ab", chromedp.ByQuery),
		chromedp.Click("#install", chromedp.ByQuery),
		chromedp.WaitVisible(`.field[data-param="title"] .error`, chromedp.ByQuery),
	)
	shot(t, ctx, "install-invalid")
	run(t, ctx, "install",
		chromedp.SetValue("#p-title", "Operations notes", chromedp.ByQuery),
		clearFlash,
		chromedp.Click("#install", chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-install", chromedp.ByQuery),
		chromedp.Click("#confirm-install", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text(".flash.ok", &msg, chromedp.ByQuery),
	)
	if !strings.HasPrefix(msg, "Installed "+notes+" (notes 0.1.0)") {
		t.Errorf("after install the page says %q", msg)
	}
	if author, subject := f.lastCommit(); author != ada || subject != "install "+notes+" (notes 0.1.0)" {
		t.Errorf("install commit = %q by %q, want 'install %s (notes 0.1.0)' by %s", subject, author, notes, ada)
	}
	if a, err := f.env.WS.App(notes); err != nil || a.Channel != "stable" || a.Version != "" {
		t.Errorf("installed app = %+v, %v; want it to follow the stable channel, as 'berth install notes' does", a, err)
	}
	cm, err := testcluster.Clientset(t).CoreV1().ConfigMaps(notesNS).Get(context.Background(), notes, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the installed app's ConfigMap: %v", err)
	}
	if cm.Data["title"] != "Operations notes" {
		t.Errorf("installed ConfigMap title = %q", cm.Data["title"])
	}
	shot(t, ctx, "installed")

	// Phone width, dark scheme: the overview still reads.
	run(t, ctx, "phone",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible(row, chromedp.ByQuery),
	)
	shot(t, ctx, "overview-phone")
}
