package upgrades

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"berth.dev/berth/internal/gitcmd"
	"berth.dev/berth/internal/workspace"
)

// ApproveOptions configure Approve.
type ApproveOptions struct {
	App string
	// Version to approve; the newest proposal of the app when empty.
	Version string
	// Remote the proposal branches are fetched from; "" when the controller
	// pushes them to this repository itself.
	Remote string
}

// ApproveResult says what Approve did.
type ApproveResult struct {
	App     string `json:"app"`
	Version string `json:"version"`
	Branch  string `json:"branch,omitempty"`
	// Merge is "fast-forward" or "merge commit"; "" when there was no
	// proposal branch (only a hold was released).
	Merge string `json:"merge,omitempty"`
	// Released says a hold (a rejection or a rollback) was lifted, so the
	// controller brings the version again.
	Released bool   `json:"released"`
	Head     string `json:"head"`
}

// NoProposalError means there is nothing to approve for an app.
type NoProposalError struct{ App, Version string }

func (e *NoProposalError) Error() string {
	if e.Version == "" {
		return fmt.Sprintf("no upgrade of %s is proposed (no branch %s)", e.App, ProposalBranch(e.App, "*"))
	}
	return fmt.Sprintf("no upgrade of %s to %s is proposed or held back (no branch %s, no hold in %s)", e.App, e.Version, ProposalBranch(e.App, e.Version), RecordsFile)
}

// Approve lands the proposal of app (its branch berth/upgrade/APP/VERSION) on
// the checked-out branch, by a fast-forward when it is based on it, else a
// merge commit, and lifts a hold of that version (a rejection, or the
// rollback of an automatic upgrade) by a commit to upgrades.yaml. It holds
// the workspace's lock; pushing and deploying are the caller's.
func Approve(ctx context.Context, ws *workspace.Workspace, opts ApproveOptions) (*ApproveResult, error) {
	release, err := ws.Acquire(ctx, workspace.LockOptions{})
	if err != nil {
		return nil, err
	}
	defer release()
	if err := ws.CheckClean(ctx, workspace.ConfigFile, workspace.LockFile, RecordsFile, workspace.AppsDir, workspace.RenderedDir); err != nil {
		return nil, err
	}
	git := func(args ...string) (string, error) {
		out, err := gitcmd.Run(ctx, ws.Root, nil, args...)
		return strings.TrimSpace(string(out)), err
	}
	prefix := "refs/heads/"
	if opts.Remote != "" {
		prefix = "refs/remotes/" + opts.Remote + "/"
		pattern := ProposalBranch(opts.App, "*")
		if _, err := git("fetch", "--quiet", "--prune", opts.Remote, "+refs/heads/"+pattern+":"+prefix+pattern); err != nil {
			return nil, fmt.Errorf("fetching the proposals of %s from %s: %w", opts.App, opts.Remote, err)
		}
	}
	version := opts.Version
	if version == "" {
		out, err := git("for-each-ref", "--format=%(refname)", prefix+ProposalBranch(opts.App, ""))
		if err != nil {
			return nil, err
		}
		var newest *semver.Version
		for _, ref := range strings.Fields(out) {
			v, err := semver.NewVersion(path.Base(ref))
			if err == nil && (newest == nil || v.GreaterThan(newest)) {
				newest = v
			}
		}
		if newest == nil {
			return nil, &NoProposalError{App: opts.App}
		}
		version = newest.Original()
	}
	res := &ApproveResult{App: opts.App, Version: version}
	records, err := ReadRecords(os.DirFS(ws.Root))
	if err != nil {
		return nil, err
	}
	ref := prefix + ProposalBranch(opts.App, version)
	if _, err := git("rev-parse", "--verify", "--quiet", ref+"^{commit}"); err == nil {
		res.Branch = ProposalBranch(opts.App, version)
		res.Merge = "merge commit"
		if _, err := git("merge-base", "--is-ancestor", "HEAD", ref); err == nil {
			res.Merge = "fast-forward"
		}
		msg := fmt.Sprintf("approve the upgrade of %s to %s\n\nMerged the proposal %s of the berth controller (berth approve).\n", opts.App, version, res.Branch)
		if _, err := git("-c", "user.useConfigOnly=false", "merge", "--quiet", "--no-edit", "-m", msg, ref); err != nil {
			_, _ = git("merge", "--abort")
			return nil, fmt.Errorf("the proposal %s does not merge cleanly into the checked-out branch (it was made on an older commit); the controller makes it again on the new head at its next check, or upgrade by hand with 'berth upgrade %s': %w", res.Branch, opts.App, err)
		}
		if opts.Remote == "" {
			_, _ = git("branch", "--quiet", "-D", res.Branch)
		}
	}
	if records.Release(opts.App, version) {
		data, err := records.Marshal()
		if err != nil {
			return nil, err
		}
		msg := fmt.Sprintf("release %s %s\n\nApproved by a person (berth approve): the berth controller may bring it again.\n", opts.App, version)
		if err := ws.Change(ctx, msg, []string{RecordsFile}, func() error { return ws.WriteFile(RecordsFile, data) }); err != nil {
			return nil, err
		}
		res.Released = true
	}
	if res.Branch == "" && !res.Released {
		return nil, &NoProposalError{App: opts.App, Version: version}
	}
	res.Head, _ = git("rev-parse", "HEAD")
	return res, nil
}

// Reject records in upgrades.yaml, as a commit, that the version of app is
// not wanted: the controller does not propose or apply it again, and drops
// its proposal. Rejecting again changes nothing.
func Reject(ctx context.Context, ws *workspace.Workspace, app, version, reason string, now time.Time) (bool, error) {
	if _, err := ws.App(app); err != nil {
		return false, err
	}
	if _, err := semver.StrictNewVersion(version); err != nil {
		return false, fmt.Errorf("%q is not a version of the catalog (such as 1.2.3)", version)
	}
	release, err := ws.Acquire(ctx, workspace.LockOptions{})
	if err != nil {
		return false, err
	}
	defer release()
	records, err := ReadRecords(os.DirFS(ws.Root))
	if err != nil {
		return false, err
	}
	if h, ok := records.Held(app, version); ok && h.Kind == HoldRejected {
		return false, nil
	}
	records.Add(Hold{App: app, Version: version, Kind: HoldRejected, Reason: reason, At: now.UTC().Truncate(time.Second)})
	data, err := records.Marshal()
	if err != nil {
		return false, err
	}
	msg := fmt.Sprintf("reject %s %s\n\nNot wanted (berth reject): the berth controller does not propose it again.", app, version)
	if reason != "" {
		msg += "\n\nReason: " + reason
	}
	return ws.ChangeCommitted(ctx, msg+"\n", []string{RecordsFile}, func() error { return ws.WriteFile(RecordsFile, data) })
}

// IsNoProposal reports whether err is a *NoProposalError.
func IsNoProposal(err error) bool {
	var np *NoProposalError
	return errors.As(err, &np)
}
