package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// gitCmd runs git in dir and returns its standard output. Errors carry git's
// standard error, which never holds file contents for the commands used here.
func gitCmd(ctx context.Context, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.Bytes(), &GitError{Args: args, Stderr: msg, Err: err}
	}
	return stdout.Bytes(), nil
}

// GitError is a git command that failed.
type GitError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *GitError) Error() string {
	return fmt.Sprintf("git %s: %s", strings.Join(e.Args, " "), e.Stderr)
}

func (e *GitError) Unwrap() error { return e.Err }

// exitCode returns the exit code of a failed git command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// repoPaths finds a working tree's top level and its git directory.
func repoPaths(ctx context.Context, dir string) (top, gitDir string, err error) {
	out, err := gitCmd(ctx, dir, nil, "rev-parse", "--show-toplevel", "--absolute-git-dir")
	if err != nil {
		return "", "", fmt.Errorf("%s is not inside a git working tree (run 'git init' first): %w", dir, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return "", "", fmt.Errorf("git rev-parse in %s: unexpected output", dir)
	}
	return lines[0], lines[1], nil
}

func gitConfigGet(ctx context.Context, dir, name string) (string, bool, error) {
	out, err := gitCmd(ctx, dir, nil, "config", "--local", "--get", name)
	if err != nil {
		if exitCode(err) == 1 {
			return "", false, nil
		}
		return "", false, err
	}
	return strings.TrimRight(string(out), "\n"), true, nil
}

// splitZ splits NUL-terminated git output.
func splitZ(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// writeFileAtomic writes data to a temporary file next to path and renames it
// over path, so a crash leaves either the old or the new file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// touch moves a file's modification time forward so that git re-reads it instead
// of trusting its index stat data; git-crypt does the same before re-checkout.
func touch(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	t := fi.ModTime().Add(time.Second)
	if now := time.Now(); now.After(t) {
		t = now
	}
	return os.Chtimes(path, t, t)
}

// shellQuote quotes s for the POSIX shell git runs filter commands with.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
