package console

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"berth.dev/berth/internal/testcluster"
)

// signInAs signs user in through the provider's login page and waits for
// the overview.
func (f *fixture) signInAs(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	run(t, ctx, "sign in as "+user,
		chromedp.Navigate(f.url+"/"),
		chromedp.WaitVisible("#oidc-signin", chromedp.ByQuery),
		chromedp.Click("#oidc-signin", chromedp.ByQuery),
		chromedp.WaitVisible("#username", chromedp.ByQuery),
		chromedp.SendKeys("#username", user, chromedp.ByQuery),
		chromedp.SendKeys("#password", password, chromedp.ByQuery),
		chromedp.Submit("#password", chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-app]`, chromedp.ByQuery),
	)
}

// waitStreams waits until n log streams are open in the console.
func (f *fixture) waitStreams(t *testing.T, n int64) {
	t.Helper()
	testcluster.WaitFor(t, time.Minute, func(context.Context) (bool, string, error) {
		got := f.srv.logStreams.Load()
		return got == n, "open log streams: " + strconv.FormatInt(got, 10), nil
	})
}

func TestBrowserFollowsAnAppsLogs(t *testing.T) {
	f := newFixture(t)
	ctx := browser(t)
	f.signInAs(t, ctx, viewerUser)

	// The app's pods' logs (kwok's simulated lines), as a viewer may.
	var src string
	run(t, ctx, "follow logs",
		chromedp.Navigate(f.url+"/apps/"+f.app),
		chromedp.WaitVisible("#logs-follow", chromedp.ByQuery),
		chromedp.Click("#logs-follow", chromedp.ByQuery),
		chromedp.WaitVisible(`#log-lines .log-line`, chromedp.ByQuery),
		chromedp.Poll(`[...document.querySelectorAll("#log-lines .log-line")].some(e => e.textContent.endsWith(" ready"))`, nil, chromedp.WithPollingTimeout(time.Minute)),
		chromedp.Text(`#log-lines .log-line .log-src`, &src, chromedp.ByQuery),
	)
	if !strings.HasPrefix(src, f.app+"-") || !strings.Contains(src, "/web") {
		t.Errorf("a log line's source = %q, want the app's pod and its container web", src)
	}
	f.waitStreams(t, 1)

	// A component filter: the stream starts again for that workload.
	run(t, ctx, "component",
		chromedp.SetValue("#logs-component", f.app, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#logs-component").dispatchEvent(new Event("change", {bubbles: true}))`, nil),
		chromedp.Poll(`document.querySelector("#logs-status").textContent === "Following `+f.app+`."`, nil, chromedp.WithPollingTimeout(time.Minute)),
		chromedp.Poll(`[...document.querySelectorAll("#log-lines .log-line")].some(e => e.textContent.endsWith(" ready"))`, nil, chromedp.WithPollingTimeout(time.Minute)),
	)
	f.waitStreams(t, 1)
	shot(t, ctx, "logs")

	// Leaving the page (a boosted navigation: the document stays) ends the stream.
	run(t, ctx, "leave",
		chromedp.Click(`header nav a[href="/"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-app]`, chromedp.ByQuery),
	)
	f.waitStreams(t, 0)
}
