package lifecycle

import (
	"context"
	"fmt"
	"strings"

	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/workspace"

	"berth.dev/berth/internal/gitcmd"
)

func (e *Env) git(ctx context.Context, args ...string) (string, error) {
	out, err := gitcmd.Run(ctx, e.WS.Root, nil, args...)
	return strings.TrimSpace(string(out)), err
}

// Head returns the workspace's current commit.
func (e *Env) Head(ctx context.Context) (string, error) {
	return e.git(ctx, "rev-parse", "--verify", "-q", "HEAD")
}

// Revert undoes commit with a new commit that reverses it (history is never
// rewritten), and returns the new commit. It refuses when commit is not the
// workspace's latest, so that nothing made after it is undone with it.
func (e *Env) Revert(ctx context.Context, commit string) (string, error) {
	head, err := e.Head(ctx)
	if err != nil {
		return "", err
	}
	if head != commit {
		return "", fmt.Errorf("commit %.8s is no longer the workspace's latest (%.8s); revert it by hand with 'git revert %.8s'", commit, head, commit)
	}
	if _, err := e.git(ctx, "revert", "--no-edit", commit); err != nil {
		_, _ = e.git(context.WithoutCancel(ctx), "revert", "--abort")
		return "", fmt.Errorf("reverting %.8s: %w", commit, err)
	}
	return e.Head(ctx)
}

// RemoveFromCluster deletes what was applied for an app that is no longer in
// the workspace (an install undone), keeping its volume claims as Uninstall
// does.
func (e *Env) RemoveFromCluster(ctx context.Context, a *workspace.App, opts UninstallOptions) (*UninstallResult, error) {
	res := &UninstallResult{Apps: []string{a.Name}}
	// The install was just reverted: its files are gone, and every claim
	// labelled as the app's was made by what it applied.
	cl, err := e.claimsOf(nil)
	if err != nil {
		return nil, err
	}
	d, err := e.deployer()
	if err != nil {
		return nil, err
	}
	if err := cl.keep(ctx, a, opts, res); err != nil {
		return nil, err
	}
	if err := d.Remove(ctx, &deploy.App{Name: a.Name, Namespace: a.Namespace}, deploy.Options{Timeout: opts.Timeout}).Err; err != nil {
		return res, err
	}
	return res, cl.delete(ctx, a, opts, res)
}
