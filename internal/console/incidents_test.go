package console

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/incident"
	"berth.dev/berth/internal/testcluster"
)

func TestBrowserIncidentsAcknowledgeAndResolve(t *testing.T) {
	var rec *incident.Recorder
	var cause incident.Cause
	f := newFixtureWith(t, func(f *fixture) {
		installWorkspaceCRD(t)
		c, err := crclient.New(f.cfg, crclient.Options{Scheme: kubeScheme()})
		if err != nil {
			t.Fatal(err)
		}
		rec = &incident.Recorder{Client: c}
		cause = incident.DeployFailed(f.app, testcluster.Namespace(t), "abc123", "deployment/"+f.app+" <b>not</b> available in time")
		if _, err := rec.Observe(context.Background(), cause); err != nil {
			t.Fatal(err)
		}
	})
	ctx := browser(t)
	f.signInAs(t, ctx, operatorUser)
	row := `tr[data-app="` + f.app + `"]`
	name := cause.Name()

	// The overview counts the open incident; it leads to the incident.
	var count, msg string
	run(t, ctx, "overview count",
		chromedp.Text(row+" td.incidents", &count, chromedp.ByQuery),
	)
	if count != "1 open" {
		t.Errorf("overview incidents of %s = %q, want 1 open", f.app, count)
	}
	// Both pages refresh their rows live: a row found by one call may be
	// replaced before the next clicks it, so the page clicks it.
	run(t, ctx, "incident",
		chromedp.Evaluate(`document.querySelector('`+row+` td.incidents a').click()`, nil),
		chromedp.WaitVisible(`tr[data-incident="`+name+`"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('tr[data-incident="`+name+`"] a').click()`, nil),
		chromedp.WaitVisible("#ack", chromedp.ByQuery),
		chromedp.Text("main dl.facts", &msg, chromedp.ByQuery),
	)
	if !strings.Contains(msg, "<b>not</b> available in time") {
		t.Errorf("the incident's facts = %q, want its message as text", msg)
	}

	// Acknowledge with a note, then resolve: the timeline says who.
	var state, timeline string
	run(t, ctx, "acknowledge",
		chromedp.SendKeys("#ack-note", "looking at it", chromedp.ByQuery),
		chromedp.Click("#ack", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text("#incident-state", &state, chromedp.ByQuery),
		chromedp.Text("ol.timeline", &timeline, chromedp.ByQuery),
	)
	if state != "Acknowledged" || !strings.Contains(timeline, "Acknowledged by Olga Tester <olga@example.com> · looking at it") {
		t.Errorf("after acknowledge: state %q, timeline:\n%s", state, timeline)
	}
	shot(t, ctx, "incident")
	run(t, ctx, "resolve",
		clearFlash,
		chromedp.Click("#resolve", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
		chromedp.Text("#incident-state", &state, chromedp.ByQuery),
	)
	if state != "Resolved" {
		t.Errorf("after resolve: state %q", state)
	}
	incs, err := rec.List(context.Background(), cause.Namespace, f.app)
	if err != nil || len(incs) != 1 || incs[0].Status.State != berthv1.IncidentResolved {
		t.Fatalf("incidents in the cluster after resolve: %+v, %v", incs, err)
	}
	// The overview learns it from its watch.
	run(t, ctx, "overview after resolve",
		chromedp.Click(`header nav a[href="/"]`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector('`+row+` td.incidents')?.textContent.trim() === "none"`, nil, chromedp.WithPollingTimeout(30*time.Second)),
	)
}
