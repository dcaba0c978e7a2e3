package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/workspace"
)

// upgradeRow is a newer version an app may move to, and where it stands.
type upgradeRow struct {
	berthv1.AvailableUpgrade
	// BreakingReason and Notes are known when the console computed the
	// list itself; the controller's status carries them on proposals.
	BreakingReason, Notes string
	// Diff is what the version's proposal branch changes, when the console
	// computed the list itself (the controller's list shows it on its
	// proposals).
	Diff *branchDiff
}

// proposalRow is a controller's proposal and what its branch changes.
type proposalRow struct {
	berthv1.UpgradeProposal
	Diff *branchDiff
}

// upgradesView is what 'berth upgrades' lists: the controller's view when
// one manages the workspace, else computed from the workspace's catalogs.
type upgradesView struct {
	Source     string // "controller" or "workspace"
	Workspace  string
	Available  []upgradeRow
	Proposals  []proposalRow
	InFlight   []berthv1.UpgradeInFlight
	Conditions []metav1.Condition // those not True
	Problems   []string
}

func (s *Server) upgradesView(ctx context.Context) (*upgradesView, error) {
	if ws := s.controllerWorkspace(); ws != nil {
		v := &upgradesView{Source: "controller", Workspace: ws.Namespace + "/" + ws.Name}
		if u := ws.Status.Upgrades; u != nil {
			for _, a := range u.Available {
				v.Available = append(v.Available, upgradeRow{AvailableUpgrade: a})
			}
			var refs *proposalRefs
			if len(u.Proposals) > 0 {
				refs = s.proposalRefs(ctx)
			}
			for _, p := range u.Proposals {
				v.Proposals = append(v.Proposals, proposalRow{UpgradeProposal: p, Diff: s.proposalDiff(ctx, refs, p.App, p.To)})
			}
			v.InFlight = u.InFlight
			for _, c := range u.Conditions {
				if c.Status != metav1.ConditionTrue {
					v.Conditions = append(v.Conditions, c)
				}
			}
		}
		return v, nil
	}
	v := &upgradesView{Source: "workspace"}
	// Without a controller polling them, read the catalogs afresh.
	for _, r := range s.env.WS.Config.Catalogs {
		if err := s.env.Catalogs.Update(ctx, r.Name); err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("%v; its last copy is used", err))
		}
	}
	snap, err := workspace.Load(os.DirFS(s.env.WS.Root))
	if err != nil {
		return nil, err
	}
	records, err := upgrades.ReadRecords(os.DirFS(s.env.WS.Root))
	if err != nil {
		return nil, err
	}
	cands, problems := upgrades.Check(ctx, s.env, snap, records, time.Now())
	var refs *proposalRefs
	if len(cands) > 0 {
		refs = s.proposalRefs(ctx)
	}
	for _, p := range problems {
		v.Problems = append(v.Problems, p.Error())
	}
	v.Problems = append(v.Problems, snap.UnmatchedRules()...)
	for _, c := range cands {
		a := berthv1.AvailableUpgrade{App: c.App, Package: c.Package, From: c.From, To: c.To, Channel: c.Channel,
			Policy: c.Policy.Policy.String(), Breaking: c.Breaking != "", State: c.State.String(), Message: c.Message}
		if !c.NextWindow.IsZero() {
			t := metav1.NewTime(c.NextWindow)
			a.NextWindow = &t
		}
		v.Available = append(v.Available, upgradeRow{AvailableUpgrade: a, BreakingReason: c.Breaking, Notes: c.Notes, Diff: s.proposalDiff(ctx, refs, c.App, c.To)})
	}
	return v, nil
}

func (s *Server) serveUpgrades(w http.ResponseWriter, r *request) {
	data := map[string]any{"Title": "Upgrades", "Nav": "upgrades"}
	v, err := s.upgradesView(r.Context())
	if err != nil {
		data["Error"] = err.Error()
	} else {
		data["View"] = v
	}
	if m := r.URL.Query().Get("done"); m != "" {
		data["Flash"] = m
	}
	s.render(w, r, "upgrades", data)
}

func (s *Server) upgradesDone(w http.ResponseWriter, r *request, msg string) {
	_ = s.reload(r.Context())
	http.Redirect(w, r.Request, "/upgrades?done="+url.QueryEscape(msg), http.StatusSeeOther)
}

func (s *Server) upgradesFailed(w http.ResponseWriter, r *request, err error) {
	_ = s.reload(r.Context())
	data := map[string]any{"Title": "Upgrades", "Nav": "upgrades", "Error": err.Error()}
	if v, verr := s.upgradesView(r.Context()); verr == nil {
		data["View"] = v
	}
	w.WriteHeader(http.StatusUnprocessableEntity)
	s.render(w, r, "upgrades", data)
}

// postApprove lands a proposal (or allows a rejected or rolled back version
// again) and deploys, as 'berth approve APP VERSION' does.
func (s *Server) postApprove(w http.ResponseWriter, r *request) {
	app, version := r.PostFormValue("app"), r.PostFormValue("version")
	if app == "" {
		http.Error(w, "the form names no app", http.StatusBadRequest)
		return
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	opts := upgrades.ApproveOptions{App: app, Version: version}
	_, branch, err := s.env.WS.Head(r.Context())
	if err != nil {
		s.upgradesFailed(w, r, err)
		return
	}
	opts.Remote = s.env.WS.Upstream(r.Context(), branch)
	if f := s.env.Follow; f != nil && f.Fetch != nil {
		// The controller's checkout: the proposals come with the
		// Workspace's credential, into its own branches.
		pattern := strings.TrimSuffix(upgrades.ProposalBranch("", ""), "/") + "*"
		if err := f.Fetch(r.Context(), "+refs/heads/"+pattern+":refs/heads/"+pattern); err != nil {
			s.upgradesFailed(w, r, fmt.Errorf("fetching the upgrade proposals: %w", err))
			return
		}
		opts.Remote = ""
	}
	res, err := upgrades.Approve(r.asAuthor(), s.env.WS, opts)
	if err != nil {
		s.upgradesFailed(w, r, err)
		return
	}
	slog.Info("console: approved an upgrade", "app", res.App, "version", res.Version, "user", r.user.Name)
	var msg []string
	if res.Branch != "" {
		if err := s.deploy(r.Context(), app); err != nil {
			s.upgradesFailed(w, r, fmt.Errorf("approved %s %s, but the deploy failed: %w", res.App, res.Version, err))
			return
		}
		msg = append(msg, fmt.Sprintf("Approved %s %s: %s landed (%s) and deployed.", res.App, res.Version, res.Branch, res.Merge))
	}
	if res.Released {
		if res.Branch == "" {
			// The hold's commit reaches the controller as any commit does.
			if err := s.push(r.Context()); err != nil {
				s.upgradesFailed(w, r, err)
				return
			}
		}
		msg = append(msg, fmt.Sprintf("%s %s is allowed again: the controller brings it at its next check.", res.App, res.Version))
	}
	s.upgradesDone(w, r, strings.Join(msg, " "))
}

// postReject records that a version is not wanted, as 'berth reject APP
// VERSION --reason' does.
func (s *Server) postReject(w http.ResponseWriter, r *request) {
	app, version := r.PostFormValue("app"), r.PostFormValue("version")
	if app == "" || version == "" {
		http.Error(w, "the form names no app or version", http.StatusBadRequest)
		return
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	committed, err := upgrades.Reject(r.asAuthor(), s.env.WS, app, version, strings.TrimSpace(r.PostFormValue("reason")), time.Now())
	if err != nil {
		s.upgradesFailed(w, r, err)
		return
	}
	if !committed {
		s.upgradesDone(w, r, fmt.Sprintf("%s %s was already rejected.", app, version))
		return
	}
	slog.Info("console: rejected an upgrade", "app", app, "version", version, "user", r.user.Name)
	if err := s.push(r.Context()); err != nil {
		s.upgradesFailed(w, r, err)
		return
	}
	s.upgradesDone(w, r, fmt.Sprintf("Rejected %s %s: it is not proposed again.", app, version))
}

// push pushes the checked-out branch to its upstream, when it has one, as
// the CLI does after a commit that needs no deploy.
func (s *Server) push(ctx context.Context) error {
	if f := s.env.Follow; f != nil && f.Push != nil {
		// The controller's checkout: with the Workspace's write credential.
		return f.Push(ctx)
	}
	_, branch, err := s.env.WS.Head(ctx)
	if err != nil {
		return err
	}
	if remote := s.env.WS.Upstream(ctx, branch); remote != "" {
		if err := s.env.WS.Push(ctx, remote, branch); err != nil {
			return fmt.Errorf("committed, but the push to %s failed: %w", remote, err)
		}
	}
	return nil
}
