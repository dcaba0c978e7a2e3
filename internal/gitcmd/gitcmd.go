// Package gitcmd runs the git binary: berth's one way to run git on the user's
// repositories and on catalogs, so that every caller gets the same environment
// (never a prompt, the C locale) and the same errors.
package gitcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// ErrNotInstalled means the git binary is not installed.
var ErrNotInstalled = errors.New("berth keeps the workspace in git, but the git command was not found; install git")

// Error is a git command that failed, with what it printed on standard error.
type Error struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.Args, " "), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode is git's exit code, or -1 when it did not exit on its own.
func (e *Error) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Command returns git with args, run in dir with berth's environment, for a
// caller that streams its input or output.
func Command(ctx context.Context, dir string, args ...string) (*exec.Cmd, error) {
	path, err := exec.LookPath("git")
	if err != nil {
		return nil, ErrNotInstalled
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	// Never prompt: berth may run without a terminal (CI, the controller).
	cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "LC_ALL=C")
	return cmd, nil
}

// Run runs git with args in dir, with stdin (nil for none), and returns its
// standard output. A failure is an *Error.
func Run(ctx context.Context, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd, err := Command(ctx, dir, args...)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &Error{Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}
