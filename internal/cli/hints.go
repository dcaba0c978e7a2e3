package cli

import (
	"errors"
	"strings"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/workspace"
)

// hints returns what to do about err in terms of berth's flags, one line each:
// libraries describe problems, only the command line knows its flags.
func hints(err error) string {
	var lines []string
	var ce *apply.ConflictError
	if errors.As(err, &ce) {
		lines = append(lines, "rerun with --force-conflicts to take these fields over, or remove them from the manifest")
	}
	if errors.Is(err, apply.ErrNoApp) {
		lines = append(lines, "pass --app NAME")
	}
	if errors.Is(err, lifecycle.ErrLocked) {
		lines = append(lines, "run 'berth crypto unlock' (or 'berth crypto init' in a new workspace)")
	}
	if errors.Is(err, workspace.ErrAppNotFound) {
		lines = append(lines, "'berth status' lists the installed apps")
	}
	if len(lines) == 0 {
		return ""
	}
	return "\n" + strings.Join(lines, "\n")
}

// hintedError replaces a message the output already shows, keeping its cause
// for hints.
type hintedError struct {
	msg   string
	cause error
}

func (e *hintedError) Error() string { return e.msg }
func (e *hintedError) Unwrap() error { return e.cause }
