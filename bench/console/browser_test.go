package console

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

func mustJar(t *testing.T) http.CookieJar {
	j, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// browserUsable gives a headless Chromium the session, then measures five loads of
// the overview until its first row is visible and htmx has loaded.
func browserUsable(t *testing.T, base string, session *http.Cookie) time.Duration {
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run 'make deps'")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelT()
	if err := chromedp.Run(ctx, network.Enable(),
		network.SetCookie(session.Name, session.Value).WithURL(base).WithHTTPOnly(true),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible("tr[data-app]", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	var times []time.Duration
	for range 5 {
		var ok bool
		t0 := time.Now()
		if err := chromedp.Run(ctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible("tr[data-app]", chromedp.ByQuery),
			chromedp.Poll(`!!window.htmx`, &ok),
		); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(t0))
	}
	slices.Sort(times)
	return times[len(times)/2]
}
