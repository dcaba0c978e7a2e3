package gitcmd

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRunReturnsOutputAndTypedErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Run(ctx, dir, nil, "init", "--quiet"); err != nil {
		t.Fatal(err)
	}
	out, err := Run(ctx, dir, strings.NewReader("hello\n"), "hash-object", "--stdin")
	if err != nil || strings.TrimSpace(string(out)) != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Fatalf("hash-object: %q, %v", out, err)
	}
	_, err = Run(ctx, dir, nil, "rev-parse", "--verify", "no-such-branch")
	var ge *Error
	if !errors.As(err, &ge) || ge.ExitCode() == 0 || ge.ExitCode() == -1 {
		t.Fatalf("a failing command: %v, want an *Error with git's exit code", err)
	}
	if !strings.Contains(err.Error(), "git rev-parse --verify no-such-branch") || !strings.Contains(err.Error(), "fatal") {
		t.Errorf("error %q does not name the command and git's message", err)
	}
}

func TestRunWithoutGit(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Run(context.Background(), t.TempDir(), nil, "status"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("without git: %v, want ErrNotInstalled", err)
	}
}
