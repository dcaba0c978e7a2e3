package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"berth.dev/berth/internal/catalog"
)

// publish makes version the catalog's stable version of webapp, and opens
// the catalogs afresh (a directory catalog is read once per process).
func (f *fixture) publish(t *testing.T, version string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.catalog, "webapp", "channels.yaml"), []byte("stable: "+version+"\nlatest: 1.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := catalog.OpenRefs(f.home, f.env.WS.Root, []catalog.Ref{{Name: "fixtures", Type: "dir", URL: f.catalog}})
	if err != nil {
		t.Fatal(err)
	}
	f.env.Catalogs = set
}

func TestBrowserUpgradesRejectAndApprove(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) { f.publish(t, "1.1.0") })
	ctx := browser(t)
	f.signInAs(t, ctx, operatorUser)
	const olga = "Olga Tester <olga@example.com>"
	row := `tr[data-upgrade="` + f.app + `/1.1.0"]`

	// The new stable version is listed, as 'berth upgrades' lists it.
	var state string
	run(t, ctx, "upgrades",
		chromedp.Click(`header nav a[href="/upgrades"]`, chromedp.ByQuery),
		chromedp.WaitVisible(row, chromedp.ByQuery),
		chromedp.Text(row+" .state", &state, chromedp.ByQuery),
	)
	if !strings.HasPrefix(state, "proposed") {
		t.Errorf("state of the upgrade = %q, want proposed (policy approve)", state)
	}
	// Without a controller no branch proposes it: the row says so.
	var missing string
	run(t, ctx, "no proposal branch", chromedp.Text(row+" .diff-missing", &missing, chromedp.ByQuery))
	if !strings.HasPrefix(missing, "There is no branch berth/upgrade/"+f.app+"/1.1.0 in this repository") {
		t.Errorf("the row's diff says %q, want that the branch does not exist", missing)
	}
	shot(t, ctx, "upgrades")

	// Reject it with a reason: a commit by Olga to upgrades.yaml.
	var msg string
	run(t, ctx, "reject",
		chromedp.SendKeys(row+` input[name="reason"]`, "waits for the provider fix", chromedp.ByQuery),
		chromedp.Click(row+" button.reject", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text(".flash.ok", &msg, chromedp.ByQuery),
		chromedp.Text(row+" .state", &state, chromedp.ByQuery),
	)
	if msg != "Rejected "+f.app+" 1.1.0: it is not proposed again." {
		t.Errorf("after reject the page says %q", msg)
	}
	if !strings.HasPrefix(state, "rejected") {
		t.Errorf("state after reject = %q, want rejected", state)
	}
	if author, _ := f.lastCommit(); author != olga {
		t.Errorf("the rejection's commit is by %q, want %s", author, olga)
	}
	records, err := os.ReadFile(filepath.Join(f.env.WS.Root, "upgrades.yaml"))
	if err != nil || !strings.Contains(string(records), "waits for the provider fix") {
		t.Errorf("upgrades.yaml after reject (%v):\n%s", err, records)
	}

	// Approve allows it again: the hold is lifted by a commit.
	run(t, ctx, "approve",
		clearFlash,
		chromedp.Click(row+" button.approve", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text(".flash.ok", &msg, chromedp.ByQuery),
		chromedp.Text(row+" .state", &state, chromedp.ByQuery),
	)
	if !strings.Contains(msg, f.app+" 1.1.0 is allowed again") || !strings.HasPrefix(state, "proposed") {
		t.Errorf("after approve the page says %q and the state is %q", msg, state)
	}
	if author, _ := f.lastCommit(); author != olga {
		t.Errorf("the approval's commit is by %q, want %s", author, olga)
	}
	records, _ = os.ReadFile(filepath.Join(f.env.WS.Root, "upgrades.yaml"))
	if strings.Contains(string(records), "waits for the provider fix") {
		t.Errorf("the hold is still in upgrades.yaml after approve:\n%s", records)
	}
	shot(t, ctx, "upgrades-approved")
}
