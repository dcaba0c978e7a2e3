package console

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
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

// A live refresh of the overview that answers while a search is on its way
// must not undo the search. CI once saw the page at ?q=no-such-app with every
// app listed: the refresh (an SSE event, then a GET of #rows) swapped in a
// new #rows while the search's request was out, and the search's answer then
// went to the #rows it had been sent for, no longer on the page. The test
// makes that order: the refresh is answered once the search has reached the
// server, and the search once the page has dealt with the refresh.
func TestBrowserALiveRefreshDoesNotUndoASearch(t *testing.T) {
	f := newFixture(t)
	ctx := browser(t)
	f.signInAs(t, ctx, adminUser)
	row := `tr[data-app="` + f.app + `"]`

	liveArrived, searchArrived, releaseSearch := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var liveOnce, searchOnce sync.Once
	hold := func(r *http.Request) {
		if r.URL.Path != "/" || r.Header.Get("HX-Request") == "" {
			return
		}
		if r.URL.Query().Get("q") != "" {
			searchOnce.Do(func() { close(searchArrived) })
			select {
			case <-releaseSearch:
			case <-r.Context().Done():
			}
			return
		}
		liveOnce.Do(func() { close(liveArrived) })
		select {
		case <-searchArrived:
		case <-r.Context().Done():
		}
	}
	f.hold.Store(&hold)
	t.Cleanup(func() { f.hold.Store(nil) })

	run(t, ctx, "a live refresh",
		// On the elements themselves: an answered refresh replaces #rows,
		// and the events that follow no longer reach the document.
		chromedp.Evaluate(`window.__live = ""; window.__search = false;
			const rows = document.querySelector("#rows");
			rows.addEventListener("htmx:xhr:abort", () => { if (!window.__live) window.__live = "aborted" });
			rows.addEventListener("htmx:afterRequest", e => { if (!window.__live) window.__live = e.detail.successful ? "answered" : "failed" });
			document.querySelector("#filters").addEventListener("htmx:afterRequest", () => { window.__search = true });
			htmx.trigger(rows, "live");`, nil),
	)
	waitChan(t, liveArrived, "the live refresh's request")
	run(t, ctx, "a search", chromedp.SendKeys("#q", "no-such-app", chromedp.ByQuery))
	waitChan(t, searchArrived, "the search's request")
	var live string
	run(t, ctx, "the live refresh's end",
		chromedp.Poll(`window.__live`, &live, chromedp.WithPollingTimeout(time.Minute)))
	close(releaseSearch)
	var searched bool
	run(t, ctx, "the search's end",
		chromedp.Poll(`window.__search`, &searched, chromedp.WithPollingTimeout(time.Minute)))
	var shown bool
	run(t, ctx, "the rows", chromedp.Evaluate(`document.querySelector('`+row+`') !== null`, &shown))
	shot(t, ctx, "search-after-live-refresh")
	if shown {
		t.Errorf("after the search for no-such-app the page still lists %s: the live refresh (%s) undid the search", f.app, live)
	}
	if live != "aborted" {
		t.Errorf("the live refresh in flight when the search began was %s, want aborted", live)
	}
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("%s never reached the console", what)
	}
}
