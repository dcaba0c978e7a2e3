package workspace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"berth.dev/berth/internal/secrets"

	"berth.dev/berth/internal/gitcmd"
)

// git runs the git binary in the workspace. berth acts on the user's own
// repository with the user's own git, so hooks, filters (git-crypt) and
// configuration apply as they would to the user's commands.
type git struct {
	dir string
}

// GitError reports a failed git command with what it printed.
type GitError = gitcmd.Error

// ErrNoGit means the git binary is not installed.
var ErrNoGit = gitcmd.ErrNotInstalled

func (g git) run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	out, err := gitcmd.Run(ctx, g.dir, in, args...)
	return string(out), err
}

func (g git) isRepo(ctx context.Context) bool {
	out, err := g.run(ctx, nil, "rev-parse", "--show-toplevel")
	return err == nil && strings.TrimSpace(out) != ""
}

// gitDir returns the absolute path of the repository's git directory.
func (g git) gitDir(ctx context.Context) (string, error) {
	out, err := g.run(ctx, nil, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// head returns HEAD's hash, or "" before the first commit.
func (g git) head(ctx context.Context) string {
	out, err := g.run(ctx, nil, "rev-parse", "--verify", "--quiet", "HEAD")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// isCommitOf reports whether commit is a change made on parent ("" for a root
// commit) with message.
func (g git) isCommitOf(ctx context.Context, commit, parent, message string) bool {
	if commit == "" {
		return false
	}
	out, err := g.run(ctx, nil, "log", "-1", "--format=%P%x00%B", commit)
	if err != nil {
		return false
	}
	parents, body, _ := strings.Cut(out, "\x00")
	return strings.TrimSpace(parents) == parent && strings.TrimSpace(body) == strings.TrimSpace(message)
}

// trailer returns the value of a trailer (such as Berth-Rollback-To) in the
// message of rev, or "".
func (g git) trailer(ctx context.Context, rev, key string) (string, error) {
	out, err := g.run(ctx, nil, "log", "-1", "--format=%(trailers:key="+key+",valueonly,separator=%x00)", rev)
	if err != nil {
		return "", err
	}
	v, _, _ := strings.Cut(strings.TrimSpace(out), "\x00")
	return strings.TrimSpace(v), nil
}

func (g git) hasCommits(ctx context.Context) bool {
	_, err := g.run(ctx, nil, "rev-parse", "--verify", "--quiet", "HEAD")
	return err == nil
}

// dirty returns the paths under the given pathspecs that differ from HEAD in the
// work tree or the index, including untracked files.
func (g git) dirty(ctx context.Context, pathspecs ...string) ([]string, error) {
	args := append([]string{"status", "--porcelain=v1", "-z", "--untracked-files=all", "--"}, pathspecs...)
	out, err := g.run(ctx, nil, args...)
	if err != nil {
		return nil, err
	}
	var paths []string
	entries := strings.Split(out, "\x00")
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if len(e) < 4 {
			continue
		}
		paths = append(paths, e[3:])
		if e[0] == 'R' || e[0] == 'C' {
			i++ // a rename's source path follows
		}
	}
	return paths, nil
}

// commitPaths stages the given pathspecs (additions, changes and deletions) and
// commits them alone. It reports false, and commits nothing, when they hold no change.
func (g git) commitPaths(ctx context.Context, message string, pathspecs ...string) (bool, error) {
	if _, err := g.run(ctx, nil, append([]string{"add", "--all", "--"}, pathspecs...)...); err != nil {
		return false, err
	}
	crashPoint()
	if _, err := g.run(ctx, nil, append([]string{"diff", "--cached", "--quiet", "--"}, pathspecs...)...); err == nil {
		return false, nil
	}
	// The leak guard: never commit a secret path that git did not encrypt
	// (filter missing, repository locked).
	if err := secrets.CheckStaged(ctx, g.dir); err != nil {
		_, _ = g.run(ctx, nil, append([]string{"reset", "--quiet", "--"}, pathspecs...)...)
		return false, err
	}
	args := []string{"-c", "user.useConfigOnly=false"}
	if !g.hasIdentity(ctx) {
		args = append(args, "-c", "user.name=berth", "-c", "user.email=berth@localhost")
	}
	args = append(args, "commit", "--quiet", "--no-verify", "-F", "-")
	if author := authorFrom(ctx); author != "" {
		args = append(args, "--author", author)
	}
	args = append(args, "--")
	args = append(args, pathspecs...)
	if _, err := g.run(ctx, []byte(message), args...); err != nil {
		return false, err
	}
	return true, nil
}

func (g git) hasIdentity(ctx context.Context) bool {
	name, _ := g.run(ctx, nil, "config", "user.name")
	email, _ := g.run(ctx, nil, "config", "user.email")
	return strings.TrimSpace(name) != "" && strings.TrimSpace(email) != ""
}

// restore puts the given pathspecs back to HEAD: tracked files as committed
// (secret files with secrets.FileMode), untracked files under them removed. It undoes a change that failed half-way.
func (g git) restore(ctx context.Context, pathspecs ...string) error {
	if g.hasCommits(ctx) {
		// Unstage, then bring back what HEAD has; files HEAD lacks go in clean below.
		if _, err := g.run(ctx, nil, append([]string{"reset", "--quiet", "HEAD", "--"}, pathspecs...)...); err != nil {
			return err
		}
		tracked, err := g.files(ctx, "HEAD", pathspecs...)
		if err != nil {
			return err
		}
		if len(tracked) > 0 {
			if _, err := g.run(ctx, nil, append([]string{"checkout", "HEAD", "--"}, tracked...)...); err != nil {
				return err
			}
		}
	}
	if _, err := g.run(ctx, nil, append([]string{"clean", "--quiet", "-d", "--force", "--"}, pathspecs...)...); err != nil {
		return err
	}
	return secrets.ProtectFiles(ctx, g.dir, pathspecs...)
}

// Revision is one commit of the workspace.
type Revision struct {
	Hash    string    `json:"hash"`
	Time    time.Time `json:"time"`
	Author  string    `json:"author"`
	Subject string    `json:"subject"`
}

// log lists the commits that touched the pathspecs, newest first.
func (g git) log(ctx context.Context, pathspecs ...string) ([]Revision, error) {
	if !g.hasCommits(ctx) {
		return nil, nil
	}
	out, err := g.run(ctx, nil, append([]string{"log", "--format=%H%x1f%cI%x1f%an%x1f%s%x1e", "--"}, pathspecs...)...)
	if err != nil {
		return nil, err
	}
	var revs []Revision
	for _, rec := range strings.Split(out, "\x1e") {
		f := strings.Split(strings.TrimSpace(rec), "\x1f")
		if len(f) != 4 {
			continue
		}
		t, _ := time.Parse(time.RFC3339, f[1])
		revs = append(revs, Revision{Hash: f[0], Time: t, Author: f[2], Subject: f[3]})
	}
	return revs, nil
}

// resolve turns a revision name (hash prefix, HEAD~2, a tag) into a full hash.
func (g git) resolve(ctx context.Context, rev string) (string, error) {
	out, err := g.run(ctx, nil, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("%q is not a revision of the workspace ('berth history APP' lists them)", rev)
	}
	return strings.TrimSpace(out), nil
}

// checkoutFrom makes the pathspecs exactly as they were at rev: files that
// existed then are restored (secret files with secrets.FileMode), files added
// since are removed.
func (g git) checkoutFrom(ctx context.Context, rev string, pathspecs ...string) error {
	if _, err := g.run(ctx, nil, append([]string{"rm", "-r", "--quiet", "--cached", "--ignore-unmatch", "--"}, pathspecs...)...); err != nil {
		return err
	}
	if _, err := g.run(ctx, nil, append([]string{"clean", "--quiet", "-d", "--force", "--"}, pathspecs...)...); err != nil {
		return err
	}
	files, err := g.files(ctx, rev, pathspecs...)
	if err != nil {
		return err
	}
	if len(files) > 0 {
		if _, err := g.run(ctx, nil, append([]string{"checkout", rev, "--"}, files...)...); err != nil {
			return err
		}
	}
	return secrets.ProtectFiles(ctx, g.dir, pathspecs...)
}

// files lists the files under the pathspecs in the tree of rev.
func (g git) files(ctx context.Context, rev string, pathspecs ...string) ([]string, error) {
	out, err := g.run(ctx, nil, append([]string{"ls-tree", "-r", "-z", "--name-only", rev, "--"}, pathspecs...)...)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range strings.Split(out, "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}

// show returns a file's content at rev.
func (g git) show(ctx context.Context, rev, path string) ([]byte, error) {
	out, err := g.run(ctx, nil, "show", rev+":"+path)
	return []byte(out), err
}
