package upgrades

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// Options configure an Upgrader.
type Options struct {
	// CacheDir holds the working clones and the catalogs' caches.
	CacheDir string
	// Executable is the berth binary git runs as the secrets filter in the
	// clones (os.Executable in the controller).
	Executable string
	// Clock tells the time: maintenance windows and health deadlines.
	Clock Clock
	// HTTPClient polls HTTP catalogs and posts notifications.
	HTTPClient *http.Client
	// ChartCache keeps the charts packages pin in chart repositories.
	ChartCache string
	// AuthorName and AuthorEmail sign the commits.
	AuthorName, AuthorEmail string
}

// DefaultOptions returns the options of the controller as deployed.
func DefaultOptions() Options {
	return Options{
		CacheDir:    filepath.Join(os.TempDir(), "berth-upgrades"),
		Clock:       SystemClock{},
		AuthorName:  "berth controller",
		AuthorEmail: "berth-controller@berth.dev",
	}
}

// Target is the workspace an Upgrader works on, as a Workspace names it.
type Target struct {
	// Key names the workspace ("namespace/name"): it keys its clone.
	Key    string
	URL    string
	Branch string
	Path   string
	Auth   GitAuth
	// Decryption unlocks the secrets in the clone.
	Decryption *secrets.Key
	// Suspend lists and decides, but commits, proposes and rolls back nothing.
	Suspend bool
	// Cluster is the fleet cluster whose controller runs the cycle (the
	// Workspace's spec.cluster); empty outside a fleet. A cluster of a later
	// stage lists upgrades but leaves them to the first stage's controllers:
	// upgrades enter the first stage and move on by promotion.
	Cluster string
}

// Observed is what the controller knows of the workspace: the upgrades
// status it last wrote and its apps' state.
type Observed struct {
	Status *berthv1.UpgradesStatus
	Apps   []berthv1.AppStatus
}

// EventType is what happened to an upgrade.
type EventType string

// Event types; notifications are sent for these.
const (
	EventProposed   EventType = "proposed"
	EventApplied    EventType = "applied"
	EventFailed     EventType = "failed"
	EventRolledBack EventType = "rolledBack"
)

func (t EventType) String() string { return string(t) }

// Event is one thing a cycle did.
type Event struct {
	Type    EventType `json:"event"`
	App     string    `json:"app"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Branch  string    `json:"branch,omitempty"`
	Message string    `json:"message"`
}

// Result is the outcome of a cycle.
type Result struct {
	// Status is the new status.upgrades; write it only when it differs.
	Status berthv1.UpgradesStatus
	Events []Event
	// Notifications are berth.yaml's, to send the events to.
	Notifications []workspace.Notification
	// Revision is the branch head the cycle read.
	Revision string
	// Interval is berth.yaml's upgrades.interval; zero when it has none.
	Interval time.Duration
}

// Upgrader runs check cycles over workspaces; one value serves many.
type Upgrader struct {
	opts     Options
	catalogs *Catalogs
	mu       sync.Mutex
	locks    map[string]*sync.Mutex
	memos    map[string]*memo
}

// memo returns the memo of a workspace.
func (u *Upgrader) memo(key string) *memo {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := u.memos[key]
	if m == nil {
		m = &memo{}
		u.memos[key] = m
	}
	return m
}

// New returns an Upgrader.
func New(opts Options) *Upgrader {
	def := DefaultOptions()
	if opts.CacheDir == "" {
		opts.CacheDir = def.CacheDir
	}
	if opts.Clock == nil {
		opts.Clock = def.Clock
	}
	if opts.AuthorName == "" {
		opts.AuthorName, opts.AuthorEmail = def.AuthorName, def.AuthorEmail
	}
	return &Upgrader{opts: opts, catalogs: &Catalogs{Cache: filepath.Join(opts.CacheDir, "catalogs"), Client: opts.HTTPClient}, locks: map[string]*sync.Mutex{}, memos: map[string]*memo{}}
}

func (u *Upgrader) lock(key string) func() {
	u.mu.Lock()
	l := u.locks[key]
	if l == nil {
		l = &sync.Mutex{}
		u.locks[key] = l
	}
	u.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// cycle is the state of one check cycle.
type cycle struct {
	u       *Upgrader
	t       Target
	cl      *clone
	env     *lifecycle.Env
	now     time.Time
	prev    berthv1.UpgradesStatus
	apps    map[string]berthv1.AppStatus
	res     *Result
	pushOK  bool
	pushErr error
	// later is the stage of the cycle's cluster when it is a fleet stage
	// after the first: it lands, proposes and rolls back nothing.
	later string
}

// Cycle runs one check: fetch the branch, poll the catalogs, decide per
// app, then make what is decided (proposal branches, automatic upgrades,
// rollbacks of those not healthy in time) and return the new status. When
// nothing is new it writes nothing to git.
func (u *Upgrader) Cycle(ctx context.Context, t Target, obs Observed) (*Result, error) {
	defer u.lock(t.Key)()
	if t.Branch == "" {
		t.Branch = "main"
	}
	c := &cycle{u: u, t: t, now: u.opts.Clock.Now(), apps: map[string]berthv1.AppStatus{}, res: &Result{}, pushOK: true}
	if obs.Status != nil {
		c.prev = *obs.Status.DeepCopy()
	}
	for _, a := range obs.Apps {
		c.apps[a.Name] = a
	}
	c.res.Status.Conditions = slices.Clone(c.prev.Conditions)
	c.cl = &clone{dir: filepath.Join(u.opts.CacheDir, "clones", filepath.FromSlash(t.Key)), url: t.URL, branch: t.Branch, path: t.Path, auth: t.Auth,
		author: [2]string{u.opts.AuthorName, u.opts.AuthorEmail}}
	if err := c.cl.sync(ctx, t.Decryption, &u.opts); err != nil {
		return nil, err
	}
	c.res.Revision = c.cl.rev(ctx, "HEAD")
	if err := c.run(ctx); err != nil {
		return nil, err
	}
	return c.res, nil
}

func (c *cycle) run(ctx context.Context) error {
	root := c.cl.root()
	snap, err := workspace.Load(os.DirFS(root))
	if err != nil {
		c.condition(berthv1.ConditionPoliciesValid, false, berthv1.ReasonInvalidPolicy, err.Error())
		c.res.Status.Available, c.res.Status.Proposals, c.res.Status.InFlight = c.prev.Available, c.prev.Proposals, c.prev.InFlight
		return nil
	}
	if u := snap.Config.Upgrades; u != nil {
		c.res.Notifications = u.Notifications
		if u.Interval != nil {
			c.res.Interval = u.Interval.Duration
		}
	}
	records, err := ReadRecords(os.DirFS(root))
	if err != nil {
		return err
	}
	poll := c.u.catalogs.Poll(ctx, root, snap.Config.Catalogs)
	if len(poll.Failed) > 0 {
		msgs := make([]string, len(poll.Failed))
		for i, e := range poll.Failed {
			msgs[i] = e.Error()
		}
		c.condition(berthv1.ConditionCatalogsReachable, false, berthv1.ReasonCatalogUnreachable, strings.Join(msgs, "; "))
	} else {
		c.condition(berthv1.ConditionCatalogsReachable, true, berthv1.ReasonSucceeded, "every catalog was polled")
	}
	ws, err := workspace.Open(root)
	if err != nil {
		return err
	}
	if c.later, err = laterStage(&snap.Config, c.t.Cluster); err != nil {
		c.condition(berthv1.ConditionPoliciesValid, false, berthv1.ReasonInvalidPolicy, err.Error())
		c.res.Status.Available, c.res.Status.Proposals, c.res.Status.InFlight = c.prev.Available, c.prev.Proposals, c.prev.InFlight
		return nil
	}
	c.env = &lifecycle.Env{WS: ws, Catalogs: poll.Set, ChartCache: c.u.opts.ChartCache, LockTimeout: time.Minute}
	// Roll back first: what is then available starts from the rolled back state.
	if rolledBack := c.watchInFlight(ctx, records); rolledBack {
		if snap, err = workspace.Load(os.DirFS(root)); err != nil {
			return err
		}
		if records, err = ReadRecords(os.DirFS(root)); err != nil {
			return err
		}
	}
	cands, problems := check(ctx, c.env, snap, records, c.now, &memoFor{m: c.u.memo(c.t.Key), fingerprint: poll.Fingerprint})
	for _, r := range snap.UnmatchedRules() {
		problems = append(problems, errors.New(r))
	}
	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, e := range problems {
			msgs[i] = e.Error()
		}
		c.condition(berthv1.ConditionPoliciesValid, false, berthv1.ReasonInvalidPolicy, strings.Join(msgs, "; "))
	} else {
		c.condition(berthv1.ConditionPoliciesValid, true, berthv1.ReasonSucceeded, "upgrade settings are valid")
	}
	for i := range cands {
		if err := c.act(ctx, &cands[i]); err != nil {
			return err
		}
	}
	c.dropProposals(ctx, cands)
	for _, cd := range cands {
		av := berthv1.AvailableUpgrade{App: cd.App, Package: cd.Package, From: cd.From, To: cd.To, Channel: cd.Channel,
			Policy: cd.Policy.Policy.String(), Breaking: cd.Breaking != "", State: cd.State.String(), Message: cd.Message}
		if !cd.NextWindow.IsZero() {
			t := metav1.NewTime(cd.NextWindow.UTC())
			av.NextWindow = &t
		}
		c.res.Status.Available = append(c.res.Status.Available, av)
	}
	if c.pushErr != nil {
		reason := berthv1.ReasonReadOnlyCredential
		var ro *ReadOnlyError
		if !errors.As(c.pushErr, &ro) {
			reason = berthv1.ReasonGitFetchFailed
		}
		c.condition(berthv1.ConditionGitWritable, false, reason, c.pushErr.Error())
	} else if c.pushOK {
		c.condition(berthv1.ConditionGitWritable, true, berthv1.ReasonSucceeded, "no push refused")
	}
	return nil
}

func (c *cycle) condition(typ string, ok bool, reason, msg string) {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	if len(msg) > 2048 {
		msg = msg[:2045] + "..."
	}
	apimeta.SetStatusCondition(&c.res.Status.Conditions, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg})
}

func (c *cycle) event(ev Event) { c.res.Events = append(c.res.Events, ev) }

// act makes what a candidate's state asks for.
func (c *cycle) act(ctx context.Context, cd *Candidate) error {
	if c.later != "" && (cd.State == StateProposed || cd.State == StateApplying) {
		cd.Message += fmt.Sprintf("; cluster %s is in stage %s, which takes new versions by promotion: the controllers of the first stage land them", c.t.Cluster, c.later)
		return nil
	}
	switch cd.State {
	case StateProposed:
		return c.propose(ctx, cd)
	case StateApplying:
		for _, f := range c.prev.InFlight {
			if f.App == cd.App && f.To == cd.To {
				return nil // committed already; watchInFlight follows it
			}
		}
		if c.t.Suspend {
			cd.Message += "; upgrades are suspended (spec.upgrades.suspend)"
			return nil
		}
		return c.land(ctx, cd)
	}
	return nil
}

// reason is the body of an upgrade commit: why it was made.
func reason(cd *Candidate, what string) string {
	return fmt.Sprintf("%s by the berth controller: %s %s is the newest version %s allows (was %s); %s.",
		what, cd.Package, cd.To, cd.Channel, cd.From, cd.Message)
}

// upgrade runs lifecycle's upgrade of one app in the clone and checks that
// it moved to the candidate's version.
func (c *cycle) upgrade(ctx context.Context, cd *Candidate, why string) error {
	res, err := c.env.Upgrade(ctx, lifecycle.UpgradeOptions{Apps: []string{cd.App}, AllowBreaking: cd.Breaking != "", Reason: why})
	if err != nil {
		return err
	}
	for _, ch := range res.Changes {
		if ch.Key == "app:"+cd.App && ch.To == cd.To && res.Committed {
			return nil
		}
	}
	return fmt.Errorf("upgrading %s resolved to other versions than %s %s: %+v", cd.App, cd.Package, cd.To, res.Changes)
}

// ProposalBranch is the branch of the proposal of app at version.
func ProposalBranch(app, version string) string { return "berth/upgrade/" + app + "/" + version }

// propose makes (or keeps) the proposal branch of a candidate.
func (c *cycle) propose(ctx context.Context, cd *Candidate) error {
	branch := ProposalBranch(cd.App, cd.To)
	for _, p := range c.prev.Proposals {
		if p.App == cd.App && p.To == cd.To && c.cl.rev(ctx, "refs/remotes/origin/"+branch) == p.Commit {
			c.res.Status.Proposals = append(c.res.Status.Proposals, p)
			return nil
		}
	}
	if c.t.Suspend {
		cd.Message += "; upgrades are suspended (spec.upgrades.suspend)"
		return nil
	}
	base := c.cl.rev(ctx, "HEAD")
	defer func() { _ = c.cl.reset(ctx) }()
	if _, err := c.cl.git(ctx, "checkout", "--quiet", "-B", branch, "origin/"+c.t.Branch); err != nil {
		return err
	}
	if err := c.upgrade(ctx, cd, reason(cd, "Proposed")); err != nil {
		cd.Message += "; the proposal could not be made: " + err.Error()
		c.event(Event{Type: EventFailed, App: cd.App, From: cd.From, To: cd.To, Message: "proposing failed: " + err.Error()})
		return nil
	}
	commit := c.cl.rev(ctx, "HEAD")
	plan, err := c.plan(ctx, base, commit)
	if err != nil {
		return err
	}
	if err := c.cl.push(ctx, branch, true); err != nil {
		c.pushErr = err
		cd.Message += "; the proposal could not be pushed"
		return nil
	}
	p := berthv1.UpgradeProposal{App: cd.App, Package: cd.Package, From: cd.From, To: cd.To, Channel: cd.Channel,
		Breaking: cd.Breaking != "", BreakingReason: cd.Breaking, ReleaseNotes: cd.Notes, Branch: branch, Commit: commit, Base: base, Plan: plan}
	c.res.Status.Proposals = append(c.res.Status.Proposals, p)
	c.event(Event{Type: EventProposed, App: cd.App, From: cd.From, To: cd.To, Commit: commit, Branch: branch,
		Message: fmt.Sprintf("%s %s -> %s proposed on branch %s (%d created, %d changed, %d deleted); 'berth approve %s %s' lands it", cd.Package, cd.From, cd.To, branch, plan.Created, plan.Changed, plan.Deleted, cd.App, cd.To)})
	return nil
}

// plan counts the rendered files a commit adds, changes and deletes: one
// file per object.
func (c *cycle) plan(ctx context.Context, base, commit string) (berthv1.UpgradePlan, error) {
	var p berthv1.UpgradePlan
	out, err := c.cl.git(ctx, "diff", "--name-status", "--no-renames", base, commit, "--", filepath.ToSlash(filepath.Join(c.t.Path, workspace.RenderedDir)))
	if err != nil {
		return p, err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasPrefix(line, "A"):
			p.Created++
		case strings.HasPrefix(line, "D"):
			p.Deleted++
		case line != "":
			p.Changed++
		}
	}
	return p, nil
}

// dropProposals deletes the proposal branches no candidate wants any more:
// replaced by a newer version, rejected, approved and landed, or of an app
// that is gone.
func (c *cycle) dropProposals(ctx context.Context, cands []Candidate) {
	want := map[string]bool{}
	for _, p := range c.res.Status.Proposals {
		want[p.Branch] = true
	}
	for _, p := range c.prev.Proposals {
		if want[p.Branch] || c.t.Suspend {
			if c.t.Suspend && !want[p.Branch] {
				c.res.Status.Proposals = append(c.res.Status.Proposals, p)
			}
			continue
		}
		if err := c.cl.deleteBranch(ctx, p.Branch); err != nil {
			c.pushErr = err
			c.res.Status.Proposals = append(c.res.Status.Proposals, p)
		}
	}
	slices.SortFunc(c.res.Status.Proposals, func(a, b berthv1.UpgradeProposal) int { return strings.Compare(a.Branch, b.Branch) })
}

// land commits an automatic upgrade to the followed branch and pushes it;
// the controller deploys it, and watchInFlight follows its health.
func (c *cycle) land(ctx context.Context, cd *Candidate) error {
	defer func() { _ = c.cl.reset(ctx) }()
	if err := c.upgrade(ctx, cd, reason(cd, "Upgraded")); err != nil {
		cd.Message += "; the upgrade could not be made: " + err.Error()
		c.event(Event{Type: EventFailed, App: cd.App, From: cd.From, To: cd.To, Message: "upgrading failed: " + err.Error()})
		return nil
	}
	commit := c.cl.rev(ctx, "HEAD")
	if err := c.cl.push(ctx, c.t.Branch, false); err != nil {
		var ro *ReadOnlyError
		if errors.As(err, &ro) {
			c.pushErr = err
		}
		// Someone pushed meanwhile: the next cycle starts from their commit.
		cd.Message += "; the upgrade could not be pushed: " + err.Error()
		return nil
	}
	_, _ = c.cl.git(ctx, "update-ref", "refs/remotes/origin/"+c.t.Branch, commit)
	c.res.Status.InFlight = append(c.res.Status.InFlight, berthv1.UpgradeInFlight{App: cd.App, From: cd.From, To: cd.To, Commit: commit,
		Since: metav1.NewTime(c.now.UTC()), Deadline: metav1.NewTime(c.now.Add(cd.Policy.Timeout).UTC()), Rollback: cd.Policy.Rollback.String()})
	c.event(Event{Type: EventApplied, App: cd.App, From: cd.From, To: cd.To, Commit: commit,
		Message: fmt.Sprintf("%s %s -> %s committed to %s as %.8s; the controller deploys it", cd.Package, cd.From, cd.To, c.t.Branch, commit)})
	return nil
}

// watchInFlight follows the automatic upgrades committed earlier: healthy
// ones are done; one not healthy by its deadline is rolled back by a commit
// (rollback auto) and its version held until a person approves it.
func (c *cycle) watchInFlight(ctx context.Context, records *Records) (rolledBack bool) {
	for _, f := range c.prev.InFlight {
		st, ok := c.apps[f.App]
		if ok && apimeta.IsStatusConditionTrue(st.Conditions, berthv1.ConditionReady) && st.AppliedRevision != "" && c.cl.isAncestor(ctx, f.Commit, st.AppliedRevision) {
			continue // healthy at the upgrade (or later): done
		}
		if c.now.Before(f.Deadline.Time) {
			c.res.Status.InFlight = append(c.res.Status.InFlight, f)
			continue
		}
		why := fmt.Sprintf("not healthy within %s of its commit %.8s", f.Deadline.Sub(f.Since.Time).Round(time.Second), f.Commit)
		if ok && st.LastError != "" {
			why += ": " + st.LastError
		}
		if f.Rollback != workspace.RollbackAuto.String() || c.t.Suspend {
			c.event(Event{Type: EventFailed, App: f.App, From: f.From, To: f.To, Commit: f.Commit, Message: fmt.Sprintf("upgrade of %s to %s failed: %s; roll it back with 'berth rollback %s'", f.App, f.To, why, f.App)})
			continue
		}
		if err := c.rollback(ctx, f, why, records); err != nil {
			c.res.Status.InFlight = append(c.res.Status.InFlight, f)
			c.event(Event{Type: EventFailed, App: f.App, From: f.From, To: f.To, Commit: f.Commit, Message: "rolling back failed: " + err.Error()})
			continue
		}
		rolledBack = true
	}
	return rolledBack
}

// rollback reverts an automatic upgrade through lifecycle's rollback, and
// holds the version back (upgrades.yaml) in the same push.
func (c *cycle) rollback(ctx context.Context, f berthv1.UpgradeInFlight, why string, records *Records) error {
	defer func() { _ = c.cl.reset(ctx) }()
	parent := c.cl.rev(ctx, f.Commit+"^")
	if parent == "" {
		return fmt.Errorf("commit %.8s of the upgrade of %s is not on %s", f.Commit, f.App, c.t.Branch)
	}
	res, err := c.env.Rollback(ctx, lifecycle.RollbackOptions{App: f.App, To: parent,
		Reason: fmt.Sprintf("Rolled back by the berth controller: the upgrade of %s from %s to %s was %s. %s is held back until 'berth approve %s %s'.", f.App, f.From, f.To, why, f.To, f.App, f.To)})
	if err != nil {
		return err
	}
	records.Add(Hold{App: f.App, Version: f.To, Kind: HoldRolledBack, Reason: why, At: c.now.UTC()})
	data, err := records.Marshal()
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("hold %s %s: rolled back\n\n%s %s was %s; the berth controller does not bring it again until 'berth approve %s %s'.\n", f.App, f.To, f.App, f.To, why, f.App, f.To)
	if err := c.env.WS.Change(ctx, msg, []string{RecordsFile}, func() error { return c.env.WS.WriteFile(RecordsFile, data) }); err != nil {
		return err
	}
	if err := c.cl.push(ctx, c.t.Branch, false); err != nil {
		c.pushErr = err
		return err
	}
	c.event(Event{Type: EventRolledBack, App: f.App, From: f.To, To: f.From, Commit: c.cl.rev(ctx, "HEAD"),
		Message: fmt.Sprintf("the upgrade of %s to %s was rolled back to %s (%.8s): %s", f.App, f.To, f.From, res.Revision, why)})
	return nil
}
