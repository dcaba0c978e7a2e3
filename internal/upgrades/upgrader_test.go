package upgrades_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/upgrades/upgradestest"
)

// monday3am is inside the "nightly" window of the tests, in Paris.
var paris, _ = time.LoadLocation("Europe/Paris")
var monday3am = time.Date(2026, 12, 7, 3, 0, 0, 0, paris)

const nightly = `windows:
- {name: nightly, days: [mon, tue, wed, thu, fri], start: "02:00", duration: 3h, timeZone: Europe/Paris}
`

// cycler runs the check cycles of one workspace, as the controller does,
// carrying the status from one to the next.
type cycler struct {
	w      *upgradestest.Workspace
	u      *upgrades.Upgrader
	clock  *upgradestest.Clock
	target upgrades.Target
	status *berthv1.UpgradesStatus
}

func newCycler(t *testing.T, w *upgradestest.Workspace) *cycler {
	t.Helper()
	clock := upgradestest.NewClock(monday3am)
	u := upgrades.New(upgrades.Options{CacheDir: t.TempDir(), Executable: testcluster.BerthBinary(t), Clock: clock})
	// The workspace repository itself is the remote, as after quickstart.
	return &cycler{w: w, u: u, clock: clock, target: upgrades.Target{Key: "test/ws", URL: w.WS.Root, Branch: "main", Decryption: w.Key}}
}

func (c *cycler) cycle(t *testing.T, apps ...berthv1.AppStatus) *upgrades.Result {
	t.Helper()
	res, err := c.u.Cycle(context.Background(), c.target, upgrades.Observed{Status: c.status, Apps: apps})
	if err != nil {
		t.Fatal(err)
	}
	c.status = &res.Status
	return res
}

func available(t *testing.T, res *upgrades.Result, app string) berthv1.AvailableUpgrade {
	t.Helper()
	for _, a := range res.Status.Available {
		if a.App == app {
			return a
		}
	}
	t.Fatalf("no upgrade of %s available; status %+v", app, res.Status)
	return berthv1.AvailableUpgrade{}
}

func events(res *upgrades.Result) []string {
	var out []string
	for _, ev := range res.Events {
		out = append(out, string(ev.Type)+" "+ev.App+" "+ev.To)
	}
	return out
}

func TestApproveProposesABranchAndNothingMoreUntilAVersionIsNew(t *testing.T) {
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "")
	w.Install(t, "web", "")
	c := newCycler(t, w)
	main := w.Git(t, "rev-parse", "main")
	if res := c.cycle(t); len(res.Status.Available) != 0 || len(res.Events) != 0 {
		t.Fatalf("nothing is new, yet the cycle says %+v", res)
	}
	cat.Publish(t, "1.1.0", "1.1.0")
	res := c.cycle(t)
	if diff := cmp.Diff([]string{"proposed web 1.1.0"}, events(res)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if a := available(t, res, "web"); a.State != "proposed" || a.Policy != "approve" || a.From != "1.0.0" || a.To != "1.1.0" || a.Breaking {
		t.Errorf("available = %+v", a)
	}
	if len(res.Status.Proposals) != 1 {
		t.Fatalf("proposals = %+v", res.Status.Proposals)
	}
	p := res.Status.Proposals[0]
	want := berthv1.UpgradeProposal{App: "web", Package: upgradestest.Package, From: "1.0.0", To: "1.1.0", Channel: "stable",
		ReleaseNotes: "1.1.0: Upfixture 1.1.0, a fixture of the upgrades tests.", Branch: "berth/upgrade/web/1.1.0",
		Commit: p.Commit, Base: main, Plan: berthv1.UpgradePlan{Created: 1, Changed: 1}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("proposal (-want +got):\n%s", diff)
	}
	// One commit on the branch, by the controller, with the re-rendered app
	// and the lock; the followed branch is untouched.
	if got := w.Git(t, "rev-parse", "main"); got != main {
		t.Errorf("main moved to %s; a proposal must not touch it", got)
	}
	if got := w.Git(t, "rev-list", "--count", main+".."+p.Branch); got != "1" {
		t.Errorf("%s has %s commits over main, want 1", p.Branch, got)
	}
	files := w.Git(t, "diff", "--name-status", main, p.Branch)
	for _, f := range []string{"M\tberth.lock", "A\trendered/web/configmap_web_hello-extra.yaml", "M\trendered/web/configmap_web_hello.yaml"} {
		if !strings.Contains(files, f) {
			t.Errorf("the proposal's diff lacks %q:\n%s", f, files)
		}
	}
	if author := w.Git(t, "log", "-1", "--format=%an <%ae>%n%B", p.Branch); !strings.Contains(author, "berth controller <berth-controller@berth.dev>") || !strings.Contains(author, "Proposed by the berth controller: upfixture 1.1.0 is the newest version stable allows (was 1.0.0); policy approve") {
		t.Errorf("the proposal's commit:\n%s", author)
	}
	// The next cycle finds nothing new: no event, no write, the same status,
	// and the catalog answered 304.
	before := c.status.DeepCopy()
	notModified := cat.NotModified.Load()
	branch := w.Git(t, "rev-parse", p.Branch)
	res = c.cycle(t)
	if len(res.Events) != 0 || !equalIgnoringTimes(before, &res.Status) {
		t.Errorf("a cycle with nothing new: events %v, status diff:\n%s", events(res), cmp.Diff(before, &res.Status))
	}
	if w.Git(t, "rev-parse", p.Branch) != branch || w.Git(t, "rev-parse", "main") != main {
		t.Error("a cycle with nothing new wrote to git")
	}
	if cat.NotModified.Load() != notModified+1 {
		t.Errorf("the catalog was not asked conditionally (304s: %d -> %d)", notModified, cat.NotModified.Load())
	}

	// A newer version replaces the stale proposal.
	cat.Publish(t, "1.2.0", "1.2.0")
	res = c.cycle(t)
	if len(res.Status.Proposals) != 1 || res.Status.Proposals[0].To != "1.2.0" {
		t.Fatalf("proposals after 1.2.0 = %+v", res.Status.Proposals)
	}
	if out := w.Git(t, "branch", "--list", "berth/upgrade/web/*"); strings.TrimSpace(out) != "berth/upgrade/web/1.2.0" {
		t.Errorf("proposal branches = %q, want only the 1.2.0 one", out)
	}

	// Approve lands it on main (a fast-forward) and the proposal goes.
	ar, err := upgrades.Approve(context.Background(), w.WS, upgrades.ApproveOptions{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if ar.Version != "1.2.0" || ar.Merge != "fast-forward" || ar.Head != res.Status.Proposals[0].Commit {
		t.Errorf("approve = %+v", ar)
	}
	if lock, _ := w.WS.Lock(); lock != nil {
		if in, _ := lock.Get("app:web"); in.Version != "1.2.0" {
			t.Errorf("after approve web is locked at %s", in.Version)
		}
	}
	res = c.cycle(t)
	if len(res.Status.Available) != 0 || len(res.Status.Proposals) != 0 || len(res.Events) != 0 {
		t.Errorf("after approve: %+v", res.Status)
	}
}

// equalIgnoringTimes compares statuses without the conditions' transition
// times, which the API server's clock sets.
func equalIgnoringTimes(a, b *berthv1.UpgradesStatus) bool {
	return cmp.Equal(a, b, cmp.Comparer(func(x, y metav1.Time) bool { return true }))
}

func TestRejectKeepsAVersionAway(t *testing.T) {
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "")
	w.Install(t, "web", "")
	c := newCycler(t, w)
	cat.Publish(t, "1.1.0", "1.1.0")
	if res := c.cycle(t); len(res.Status.Proposals) != 1 {
		t.Fatalf("proposals = %+v", res.Status.Proposals)
	}
	ok, err := upgrades.Reject(context.Background(), w.WS, "web", "1.1.0", "we wait for 1.2", c.clock.Now())
	if err != nil || !ok {
		t.Fatalf("reject = %v, %v", ok, err)
	}
	if msg := w.Git(t, "log", "-1", "--format=%B"); !strings.Contains(msg, "reject web 1.1.0") || !strings.Contains(msg, "we wait for 1.2") {
		t.Errorf("the rejection's commit: %s", msg)
	}
	res := c.cycle(t)
	if len(res.Status.Proposals) != 0 || len(res.Events) != 0 {
		t.Errorf("after reject: proposals %+v, events %v", res.Status.Proposals, events(res))
	}
	if a := available(t, res, "web"); a.State != "rejected" || !strings.Contains(a.Message, "we wait for 1.2") {
		t.Errorf("available = %+v", a)
	}
	if out := w.Git(t, "branch", "--list", "berth/upgrade/*"); out != "" {
		t.Errorf("the rejected proposal's branch is still there: %q", out)
	}
	// Again: nothing comes back.
	if res := c.cycle(t); len(res.Status.Proposals) != 0 || len(res.Events) != 0 {
		t.Errorf("the rejected version came back: %+v", res.Status.Proposals)
	}
	if ok, err := upgrades.Reject(context.Background(), w.WS, "web", "1.1.0", "", c.clock.Now()); ok || err != nil {
		t.Errorf("rejecting twice = %v, %v; want no second commit", ok, err)
	}
}

func TestIgnoreOnlyLists(t *testing.T) {
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "rules:\n- {apps: \"w*\", policy: ignore}\n")
	w.Install(t, "web", "")
	c := newCycler(t, w)
	main := w.Git(t, "rev-parse", "main")
	cat.Publish(t, "1.1.0", "1.1.0")
	res := c.cycle(t)
	if a := available(t, res, "web"); a.State != "ignored" || a.Policy != "ignore" || a.To != "1.1.0" {
		t.Errorf("available = %+v", a)
	}
	if len(res.Status.Proposals) != 0 || len(res.Events) != 0 || w.Git(t, "rev-parse", "main") != main || w.Git(t, "branch", "--list", "berth/*") != "" {
		t.Errorf("ignore did something: %+v, events %v", res.Status, events(res))
	}
}

func TestBreakingIsOnlyProposedEvenWithAuto(t *testing.T) {
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "default: {policy: auto}\n")
	w.Install(t, "web", "")
	c := newCycler(t, w)
	main := w.Git(t, "rev-parse", "main")
	cat.Publish(t, "2.0.0", "2.0.0")
	res := c.cycle(t)
	a := available(t, res, "web")
	if a.State != "proposed" || !a.Breaking || a.Policy != "auto" {
		t.Errorf("available = %+v", a)
	}
	if len(res.Status.Proposals) != 1 || !strings.Contains(res.Status.Proposals[0].BreakingReason, "2.0.0 is marked breaking: 2.0 renames the data key") {
		t.Fatalf("proposals = %+v", res.Status.Proposals)
	}
	if got := w.Git(t, "rev-parse", "main"); got != main {
		t.Error("a breaking version was committed to main")
	}
}

func TestAutoWaitsForTheWindowThenLands(t *testing.T) {
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, nightly+"rules:\n- {apps: web, policy: auto, windows: [nightly]}\n")
	w.Install(t, "web", "")
	c := newCycler(t, w)
	c.clock.Set(time.Date(2026, 12, 11, 18, 0, 0, 0, paris)) // a Friday evening
	main := w.Git(t, "rev-parse", "main")
	cat.Publish(t, "1.1.0", "1.1.0")
	res := c.cycle(t)
	a := available(t, res, "web")
	next := time.Date(2026, 12, 14, 2, 0, 0, 0, paris)
	if a.State != "waiting" || a.NextWindow == nil || !a.NextWindow.Equal(&metav1.Time{Time: next}) {
		t.Errorf("available = %+v, want waiting for %s", a, next)
	}
	if w.Git(t, "rev-parse", "main") != main || len(res.Events) != 0 {
		t.Fatal("an auto upgrade landed outside its window")
	}
	c.clock.Set(next.Add(time.Minute))
	res = c.cycle(t)
	if diff := cmp.Diff([]string{"applied web 1.1.0"}, events(res)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	head := w.Git(t, "rev-parse", "main")
	if head == main || w.Git(t, "rev-parse", head+"^") != main {
		t.Fatalf("main %s -> %s: want one commit on top", main, head)
	}
	if msg := w.Git(t, "log", "-1", "--format=%an%n%B", "main"); !strings.Contains(msg, "upgrade web: upfixture 1.0.0 -> 1.1.0") || !strings.Contains(msg, "inside a maintenance window") {
		t.Errorf("the upgrade's commit:\n%s", msg)
	}
	// The workspace (the remote itself) has the upgrade checked out.
	if lock, err := w.WS.Lock(); err != nil {
		t.Fatal(err)
	} else if in, _ := lock.Get("app:web"); in.Version != "1.1.0" {
		t.Errorf("the workspace's lock has web at %s", in.Version)
	}
	if st := w.Git(t, "status", "--porcelain"); st != "" {
		t.Errorf("the workspace is not clean after the push:\n%s", st)
	}
	if len(res.Status.InFlight) != 1 || res.Status.InFlight[0].Commit != head || !res.Status.InFlight[0].Deadline.Time.Equal(next.Add(time.Minute+upgrades.DefaultTimeout)) {
		t.Errorf("in flight = %+v", res.Status.InFlight)
	}
	// Healthy at the commit: done, nothing rolled back.
	ready := berthv1.AppStatus{Name: "web", AppliedRevision: head, Conditions: []metav1.Condition{{Type: berthv1.ConditionReady, Status: metav1.ConditionTrue}}}
	c.clock.Add(time.Hour)
	res = c.cycle(t, ready)
	if len(res.Status.InFlight) != 0 || len(res.Events) != 0 || w.Git(t, "rev-parse", "main") != head {
		t.Errorf("after healthy: %+v, events %v", res.Status, events(res))
	}
}

func TestAnUpgradeNeverHealthyIsRolledBackAndNotRetried(t *testing.T) {
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "")
	w.Install(t, "web", "policy: auto\ntimeout: 2m\n")
	c := newCycler(t, w)
	cat.Publish(t, "1.2.0", "1.2.0")
	res := c.cycle(t)
	if len(res.Status.InFlight) != 1 {
		t.Fatalf("in flight = %+v, events %v", res.Status.InFlight, events(res))
	}
	upgraded := res.Status.InFlight[0].Commit
	failing := berthv1.AppStatus{Name: "web", AppliedRevision: "", LastError: "deployment.apps/hello-broken: 0 of 1 replicas available",
		Conditions: []metav1.Condition{{Type: berthv1.ConditionReady, Status: metav1.ConditionFalse}}}
	c.clock.Add(time.Minute)
	if res := c.cycle(t, failing); len(res.Status.InFlight) != 1 || len(res.Events) != 0 {
		t.Fatalf("before the deadline: %+v, events %v", res.Status.InFlight, events(res))
	}
	c.clock.Add(2 * time.Minute)
	res = c.cycle(t, failing)
	if diff := cmp.Diff([]string{"rolledBack web 1.0.0"}, events(res)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(res.Status.InFlight) != 0 {
		t.Errorf("in flight after the rollback = %+v", res.Status.InFlight)
	}
	if lock, _ := w.WS.Lock(); lock != nil {
		if in, _ := lock.Get("app:web"); in.Version != "1.0.0" {
			t.Errorf("after the rollback web is at %s", in.Version)
		}
	}
	log := w.Git(t, "log", "--format=%s", upgraded+"..main")
	if !strings.Contains(log, "hold web 1.2.0: rolled back") || !strings.Contains(log, "rollback web to") {
		t.Errorf("commits after the upgrade:\n%s", log)
	}
	if body := w.Git(t, "log", "--format=%B", "--grep=rollback web", "-1", "main"); !strings.Contains(body, "not healthy within 2m0s") || !strings.Contains(body, "0 of 1 replicas available") {
		t.Errorf("the rollback's message does not say why:\n%s", body)
	}
	if a := available(t, res, "web"); a.State != "held" {
		t.Errorf("available = %+v", a)
	}
	// Not retried, whatever the time.
	head := w.Git(t, "rev-parse", "main")
	c.clock.Add(24 * time.Hour)
	if res := c.cycle(t); len(res.Events) != 0 || w.Git(t, "rev-parse", "main") != head {
		t.Errorf("the rolled back version was retried: %v", events(res))
	}
	// Until a person approves it: the hold is lifted and the next cycle
	// brings it again.
	if ar, err := upgrades.Approve(context.Background(), w.WS, upgrades.ApproveOptions{App: "web", Version: "1.2.0"}); err != nil || !ar.Released {
		t.Fatalf("approve = %+v, %v", ar, err)
	}
	if res := c.cycle(t); cmp.Diff([]string{"applied web 1.2.0"}, events(res)) != "" {
		t.Errorf("after approve: events %v", events(res))
	}
}

func TestBadSettingsAreAConditionNamingTheField(t *testing.T) {
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "rules:\n- {apps: \"db-*\", policy: auto}\n")
	w.Install(t, "web", "windows: [nowhere]\n")
	c := newCycler(t, w)
	cat.Publish(t, "1.1.0", "1.1.0")
	res := c.cycle(t)
	var cond *metav1.Condition
	for i := range res.Status.Conditions {
		if res.Status.Conditions[i].Type == berthv1.ConditionPoliciesValid {
			cond = &res.Status.Conditions[i]
		}
	}
	if cond == nil || cond.Status != metav1.ConditionFalse ||
		!strings.Contains(cond.Message, `apps/web/app.yaml: upgrade.windows: no window is named "nowhere"`) ||
		!strings.Contains(cond.Message, `berth.yaml: upgrades.rules[0] (apps "db-*") matches no app`) {
		t.Errorf("PoliciesValid = %+v", cond)
	}
}
