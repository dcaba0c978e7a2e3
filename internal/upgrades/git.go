package upgrades

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth.dev/berth/internal/gitcmd"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// GitAuth are the credentials the controller fetches and pushes with: a
// token (Password) over HTTPS, or an SSH key checked against known hosts.
type GitAuth struct {
	Username   string
	Password   string
	Identity   []byte
	KnownHosts []byte
}

// ReadOnlyError means the remote refused a push: the credential may read but
// not write (or there is none).
type ReadOnlyError struct {
	URL string
	Err error
}

func (e *ReadOnlyError) Error() string {
	return fmt.Sprintf("pushing to %s was refused: the git credential can read but not write; give the controller one with push rights (spec.upgrades.writeSecretRef): %v", e.URL, e.Err)
}
func (e *ReadOnlyError) Unwrap() error { return e.Err }

// clone is the controller's working clone of a workspace's repository, in
// which upgrades are made through lifecycle's code path.
type clone struct {
	dir    string
	url    string
	branch string
	path   string
	auth   GitAuth
	author [2]string
}

// root is the workspace's directory in the clone.
func (c *clone) root() string { return filepath.Join(c.dir, filepath.FromSlash(c.path)) }

// git runs git in the clone with the credentials, given to git through its
// environment only: never on a command line, in a file of the clone, or in
// an error.
func (c *clone) git(ctx context.Context, args ...string) (string, error) {
	cmd, err := gitcmd.Command(ctx, c.dir, args...)
	if err != nil {
		return "", err
	}
	env, cleanup, err := c.auth.env()
	if err != nil {
		return "", err
	}
	defer cleanup()
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &gitcmd.Error{Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}

// env returns the environment that authenticates git, and what removes the
// key files it wrote.
func (a GitAuth) env() ([]string, func(), error) {
	switch {
	case len(a.Identity) > 0:
		dir, err := os.MkdirTemp("", "berth-ssh-")
		if err != nil {
			return nil, nil, err
		}
		cleanup := func() { _ = os.RemoveAll(dir) }
		id, kh := filepath.Join(dir, "identity"), filepath.Join(dir, "known_hosts")
		if err := os.WriteFile(id, a.Identity, 0o600); err != nil {
			cleanup()
			return nil, nil, err
		}
		if err := os.WriteFile(kh, a.KnownHosts, 0o600); err != nil {
			cleanup()
			return nil, nil, err
		}
		ssh := fmt.Sprintf("ssh -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes", id, kh)
		return []string{"GIT_SSH_COMMAND=" + ssh}, cleanup, nil
	case a.Password != "":
		user := a.Username
		if user == "" {
			user = "git"
		}
		header := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+a.Password))
		return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=" + header}, func() {}, nil
	}
	return nil, func() {}, nil
}

// sync clones the repository (unlocking its secrets with key) or fetches
// every branch, and checks the followed branch out as the remote has it.
func (c *clone) sync(ctx context.Context, key *secrets.Key, opts *Options) error {
	if _, err := os.Stat(filepath.Join(c.dir, ".git")); err != nil {
		if err := os.MkdirAll(filepath.Dir(c.dir), 0o700); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(c.dir), ".clone-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		cmd := &clone{dir: filepath.Dir(c.dir), auth: c.auth}
		if _, err := cmd.git(ctx, "clone", "--quiet", "--branch", c.branch, "--", c.url, tmp); err != nil {
			return fmt.Errorf("cloning %s: %w", c.url, err)
		}
		tc := &clone{dir: tmp}
		for _, kv := range [][2]string{{"user.name", c.author[0]}, {"user.email", c.author[1]}} {
			if _, err := tc.git(ctx, "config", "--local", kv[0], kv[1]); err != nil {
				return err
			}
		}
		if key != nil {
			if _, err := secrets.Unlock(ctx, tmp, key, secrets.UnlockOptions{Home: filepath.Join(opts.CacheDir, "home"), Executable: opts.Executable}); err != nil {
				return fmt.Errorf("unlocking the secrets of the clone of %s with the key of spec.decryptionRef: %w", c.url, err)
			}
		}
		_ = os.RemoveAll(c.dir)
		if err := os.Rename(tmp, c.dir); err != nil {
			return err
		}
	} else {
		if _, err := c.git(ctx, "fetch", "--quiet", "--prune", "origin", "+refs/heads/*:refs/remotes/origin/*"); err != nil {
			return fmt.Errorf("fetching %s: %w", c.url, err)
		}
		// Every change resets the clone when it ends: on the branch as
		// fetched, the clone is as the remote has it.
		out, err := c.git(ctx, "rev-parse", "HEAD", "refs/remotes/origin/"+c.branch)
		if f := strings.Fields(out); err == nil && len(f) == 2 && f[0] == f[1] {
			if _, err := os.Stat(filepath.Join(c.dir, ".git", "berth-journal.json")); err != nil {
				return nil
			}
		}
	}
	return c.reset(ctx)
}

// reset puts the clone back on the followed branch as fetched, dropping
// anything a failed change left behind.
func (c *clone) reset(ctx context.Context) error {
	_ = os.Remove(filepath.Join(c.dir, ".git", "berth-journal.json"))
	for _, args := range [][]string{
		{"checkout", "--quiet", "--force", "-B", c.branch, "origin/" + c.branch},
		{"clean", "--quiet", "-fd"},
	} {
		if _, err := c.git(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// rev resolves a revision in the clone; "" when it does not exist.
func (c *clone) rev(ctx context.Context, rev string) string {
	out, err := c.git(ctx, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// isAncestor reports whether commit a is b or one of its ancestors.
func (c *clone) isAncestor(ctx context.Context, a, b string) bool {
	_, err := c.git(ctx, "merge-base", "--is-ancestor", a, b)
	return err == nil
}

// push pushes HEAD to the remote's branch; force only for the controller's
// own proposal branches.
func (c *clone) push(ctx context.Context, branch string, force bool) error {
	release, err := c.prepareLocalRemote(ctx, branch)
	if err != nil {
		return err
	}
	defer release()
	spec := "HEAD:refs/heads/" + branch
	if force {
		spec = "+" + spec
	}
	if _, err := c.git(ctx, "push", "--quiet", "origin", spec); err != nil {
		return pushError(c.url, err)
	}
	return nil
}

// deleteBranch removes a branch from the remote; one already gone is fine.
func (c *clone) deleteBranch(ctx context.Context, branch string) error {
	if c.rev(ctx, "refs/remotes/origin/"+branch) == "" {
		return nil
	}
	if _, err := c.git(ctx, "push", "--quiet", "origin", ":refs/heads/"+branch); err != nil {
		return pushError(c.url, err)
	}
	_, _ = c.git(ctx, "update-ref", "-d", "refs/remotes/origin/"+branch)
	return nil
}

func pushError(url string, err error) error {
	var ge *gitcmd.Error
	if errors.As(err, &ge) {
		s := strings.ToLower(ge.Stderr)
		for _, m := range []string{"403", "401", "permission denied", "authentication failed", "access denied", "read-only", "read only", "not allowed", "could not read username", "write access"} {
			if strings.Contains(s, m) {
				return &ReadOnlyError{URL: url, Err: err}
			}
		}
	}
	return fmt.Errorf("pushing to %s: %w", url, err)
}

// prepareLocalRemote handles a remote that is a workspace on this machine
// (berth quickstart's): pushing to its checked-out branch updates its working
// tree (receive.denyCurrentBranch updateInstead), under its workspace lock so
// that no berth command runs meanwhile.
func (c *clone) prepareLocalRemote(ctx context.Context, branch string) (func(), error) {
	dir := strings.TrimPrefix(c.url, "file://")
	if !filepath.IsAbs(dir) {
		return func() {}, nil
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		return func() {}, nil // bare, or not local
	}
	local := &clone{dir: dir}
	if cur, _ := local.git(ctx, "symbolic-ref", "--quiet", "--short", "HEAD"); strings.TrimSpace(cur) != branch {
		return func() {}, nil
	}
	if _, err := local.git(ctx, "config", "--local", "receive.denyCurrentBranch", "updateInstead"); err != nil {
		return nil, err
	}
	ws, err := workspace.Open(filepath.Join(dir, filepath.FromSlash(c.path)))
	if err != nil {
		return func() {}, nil
	}
	return ws.Acquire(ctx, workspace.LockOptions{Command: "berth controller (upgrades)", Timeout: time.Minute})
}
