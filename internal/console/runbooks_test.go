package console

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestBrowserRunbooksPreviewAndRun(t *testing.T) {
	f := newFixture(t)
	ctx := browser(t)
	f.signInAs(t, ctx, operatorUser)
	const olga = "Olga Tester <olga@example.com>"
	head := f.git("rev-parse", "HEAD")

	// A documentation runbook is a page to read.
	var doc string
	run(t, ctx, "document runbook",
		chromedp.Navigate(f.url+"/apps/"+f.app),
		chromedp.WaitVisible(`li[data-runbook="connect"] a`, chromedp.ByQuery),
		chromedp.Click(`li[data-runbook="connect"] a`, chromedp.ByQuery),
		chromedp.WaitVisible("pre.document", chromedp.ByQuery),
		chromedp.Text("pre.document", &doc, chromedp.ByQuery),
	)
	if !strings.Contains(doc, "kubectl port-forward service/NAME 8080:80") {
		t.Errorf("the connect runbook's document = %q", doc)
	}

	// A bound violated: the message at the field, nothing ran.
	var msg string
	run(t, ctx, "runbook bound",
		chromedp.Navigate(f.url+"/apps/"+f.app+"/runbooks/scale"),
		chromedp.WaitVisible("#p-replicas", chromedp.ByQuery),
		chromedp.SetValue("#p-replicas", "9", chromedp.ByQuery),
		chromedp.Click("#run-runbook", chromedp.ByQuery),
		chromedp.WaitVisible(`.field[data-param="replicas"] .error`, chromedp.ByQuery),
		chromedp.Text(`.field[data-param="replicas"] .error`, &msg, chromedp.ByQuery),
	)
	if !strings.Contains(msg, "5") {
		t.Errorf("inline message for replicas 9 = %q, want the maximum named", msg)
	}

	// The dry run shows each step's plan and changes nothing.
	var plan string
	run(t, ctx, "dry run",
		chromedp.SetValue("#p-replicas", "2", chromedp.ByQuery),
		chromedp.Click("#dry-run", chromedp.ByQuery),
		chromedp.WaitVisible("#plan", chromedp.ByQuery),
		chromedp.Text("#plan", &plan, chromedp.ByQuery),
	)
	if !strings.Contains(plan, "set the replicas") || !strings.Contains(plan, "deploy") {
		t.Errorf("the dry run's plan = %q, want both steps", plan)
	}
	if got := f.git("rev-parse", "HEAD"); got != head {
		t.Errorf("a refused run or a dry run committed")
	}
	shot(t, ctx, "runbook-plan")

	// The run: the configuration commit by Olga, the deploy, the record.
	var who, status string
	run(t, ctx, "run",
		chromedp.SetValue("#p-replicas", "2", chromedp.ByQuery),
		clearFlash,
		chromedp.Click("#run-runbook", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text(".flash.ok", &msg, chromedp.ByQuery),
		chromedp.Text("table.runs tbody tr .who", &who, chromedp.ByQuery),
		chromedp.Text("table.runs tbody tr .status", &status, chromedp.ByQuery),
	)
	if !strings.HasPrefix(msg, "Runbook scale succeeded") || status != "Succeeded" {
		t.Errorf("after the run the page says %q, status %q", msg, status)
	}
	if who != olga {
		t.Errorf("the run is recorded as by %q, want %s", who, olga)
	}
	if n := f.replicas(t); n != 2 {
		t.Errorf("deployment replicas after the runbook = %d, want 2", n)
	}
	if log := f.git("log", "--format=%an <%ae>", head+"..HEAD"); strings.Trim(strings.ReplaceAll(log, olga, ""), "\n") != "" {
		t.Errorf("the run's commits are not all by %s:\n%s", olga, log)
	}
	shot(t, ctx, "runbook-run")
}
