package workspace

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// Head returns the commit HEAD points at, and the branch checked out ("" when
// detached).
func (w *Workspace) Head(ctx context.Context) (rev, branch string, err error) {
	out, err := w.git.run(ctx, nil, "rev-parse", "HEAD")
	if err != nil {
		return "", "", err
	}
	rev = strings.TrimSpace(out)
	if b, err := w.git.run(ctx, nil, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil {
		branch = strings.TrimSpace(b)
	}
	return rev, branch, nil
}

// Location says where the workspace lives in its repository: the repository's
// top directory, the workspace's path in it ("" at the top), and the URLs of
// its remotes by name.
type Location struct {
	Top     string
	Path    string
	Remotes map[string]string
}

// Locate returns the workspace's Location.
func (w *Workspace) Locate(ctx context.Context) (*Location, error) {
	top, err := w.git.run(ctx, nil, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	loc := &Location{Top: strings.TrimSpace(top), Remotes: map[string]string{}}
	root, err := filepath.EvalSymlinks(w.Root)
	if err != nil {
		return nil, err
	}
	topAbs, err := filepath.EvalSymlinks(loc.Top)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(topAbs, root)
	if err != nil {
		return nil, err
	}
	if rel != "." {
		loc.Path = filepath.ToSlash(rel)
	}
	out, err := w.git.run(ctx, nil, "remote")
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Fields(out) {
		u, err := w.git.run(ctx, nil, "remote", "get-url", name)
		if err == nil {
			loc.Remotes[name] = strings.TrimSpace(u)
		}
	}
	return loc, nil
}

// Upstream returns the remote the branch is pushed to, "" when it has none.
func (w *Workspace) Upstream(ctx context.Context, branch string) string {
	if branch == "" {
		return ""
	}
	for _, key := range []string{"branch." + branch + ".pushRemote", "remote.pushDefault", "branch." + branch + ".remote"} {
		if out, err := w.git.run(ctx, nil, "config", "--get", key); err == nil && strings.TrimSpace(out) != "" {
			return strings.TrimSpace(out)
		}
	}
	return ""
}

// Push pushes branch to remote (a fast-forward; never forced).
func (w *Workspace) Push(ctx context.Context, remote, branch string) error {
	if _, err := w.git.run(ctx, nil, "push", "--quiet", remote, "HEAD:refs/heads/"+branch); err != nil {
		return fmt.Errorf("pushing %s to %s: %w", branch, remote, err)
	}
	return nil
}
