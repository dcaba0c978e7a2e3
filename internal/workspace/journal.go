package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"berth.dev/berth/internal/atomicfile"
)

// A change is one transaction: before its first file write, Change records in
// the journal (.git/berth-journal.json) which paths it writes and the HEAD it
// starts from; once every file is written it marks the journal "committing";
// after the commit it removes the journal. A command killed in between leaves
// the journal behind, and the next one that takes the workspace lock finishes
// the change from it: a change whose files were all written is committed, any
// other is discarded (its paths put back as at HEAD). Either way the
// workspace is clean and at a commit again.

// journalState is how far a change got.
type journalState string

const (
	// stateWriting: files are being written; a crash now leaves a partial change.
	stateWriting journalState = "writing"
	// stateCommitting: every file is written; the change only lacks its commit.
	stateCommitting journalState = "committing"
)

type journal struct {
	PID     int          `json:"pid"`
	Command string       `json:"command"`
	Started time.Time    `json:"started"`
	Head    string       `json:"head"`
	Message string       `json:"message"`
	Paths   []string     `json:"paths"`
	State   journalState `json:"state"`
}

// RecoveryAction is what was done with an unfinished change.
type RecoveryAction string

const (
	// RecoveryCompleted: the change was whole and is now committed.
	RecoveryCompleted RecoveryAction = "completed"
	// RecoveryDiscarded: the change was partial; its paths are as at HEAD.
	RecoveryDiscarded RecoveryAction = "discarded"
)

func (a RecoveryAction) String() string { return string(a) }

// Recovery reports a change that an earlier command left unfinished, and what
// was done with it.
type Recovery struct {
	Action  RecoveryAction `json:"action"`
	PID     int            `json:"pid"`
	Command string         `json:"command"`
	Message string         `json:"message"`
	Paths   []string       `json:"paths"`
	// Commit is the commit that holds a completed change.
	Commit string `json:"commit,omitempty"`
	// Reason says why a change whose files were written was discarded.
	Reason string `json:"reason,omitempty"`
}

func (r Recovery) String() string {
	subject, _, _ := strings.Cut(r.Message, "\n")
	who := fmt.Sprintf("an earlier berth command (pid %d, `%s`)", r.PID, r.Command)
	if r.Action == RecoveryCompleted {
		return fmt.Sprintf("%s stopped before finishing %q; its files were all written, so berth committed them (%.8s)", who, subject, r.Commit)
	}
	s := fmt.Sprintf("%s stopped while writing %q; berth discarded the partial change, putting %s back as at HEAD", who, subject, strings.Join(r.Paths, ", "))
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	return s
}

func (w *Workspace) journalPath(ctx context.Context) (string, error) {
	gitDir, err := w.git.gitDir(ctx)
	if err != nil {
		return "", err
	}
	return filepath.Join(gitDir, journalName), nil
}

func writeJournal(file string, j *journal) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(file, append(b, '\n'), 0o644)
}

// waitForIndexLock waits until git's index lock in gitDir is gone, for at
// most timeout.
func waitForIndexLock(ctx context.Context, gitDir string, timeout time.Duration) error {
	lock := filepath.Join(gitDir, "index.lock")
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(lock); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has existed for %s: another git command is running in the workspace, or one was killed; remove the file once no git command runs, then run berth again", lock, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// recover finishes or discards the change a journal in gitDir records. The
// caller holds the lock.
func (w *Workspace) recover(ctx context.Context, gitDir string) (*Recovery, error) {
	file := filepath.Join(gitDir, journalName)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the journal of an unfinished change: %w", err)
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil || len(j.Paths) == 0 {
		// A journal is written atomically; one that does not parse was not
		// written by berth. Nothing can be recovered from it.
		return nil, fmt.Errorf("%s is not a journal berth wrote; remove it after checking 'git status'", file)
	}
	rec := &Recovery{PID: j.PID, Command: j.Command, Message: j.Message, Paths: j.Paths}
	// A git command of the killed berth may still be running (it was not
	// killed with it) and hold git's index lock: let it finish first.
	if err := waitForIndexLock(ctx, gitDir, 15*time.Second); err != nil {
		return nil, err
	}
	head := w.git.head(ctx)
	switch {
	case head != j.Head && w.git.isCommitOf(ctx, head, j.Head, j.Message):
		// Killed between the commit and removing the journal.
		rec.Action, rec.Commit = RecoveryCompleted, head
	case head == j.Head && j.State == stateCommitting:
		committed, err := w.git.commitPaths(ctx, j.Message, j.Paths...)
		switch {
		case err != nil:
			rec.Action, rec.Reason = RecoveryDiscarded, "committing it failed: "+err.Error()
		case !committed:
			rec.Action, rec.Reason = RecoveryDiscarded, "it changed nothing"
		default:
			rec.Action, rec.Commit = RecoveryCompleted, w.git.head(ctx)
		}
	default:
		rec.Action = RecoveryDiscarded
		if head != j.Head {
			rec.Reason = "HEAD moved since it started"
		}
	}
	if rec.Action == RecoveryDiscarded {
		if err := w.git.restore(ctx, j.Paths...); err != nil {
			return nil, fmt.Errorf("discarding the unfinished change %q of pid %d: %w", j.Message, j.PID, err)
		}
	}
	if err := os.Remove(file); err != nil {
		return nil, err
	}
	return rec, nil
}

// Recover takes the workspace lock, finishes or discards a change an earlier
// command left unfinished (reporting it to opts.Recovered), and releases the
// lock. Commands that read the workspace to act on it, such as deploy, call it
// first, then CheckClean.
func (w *Workspace) Recover(ctx context.Context, opts LockOptions) error {
	release, err := w.Acquire(ctx, opts)
	if err != nil {
		return err
	}
	release()
	return nil
}

// UncommittedError lists paths that differ from HEAD where berth needs the
// committed state.
type UncommittedError struct {
	Paths []string
}

func (e *UncommittedError) Error() string {
	paths := e.Paths
	more := ""
	if len(paths) > 10 {
		paths, more = paths[:10], fmt.Sprintf(" and %d more", len(e.Paths)-10)
	}
	return fmt.Sprintf("the workspace has uncommitted changes in %s%s; berth deploys only what is committed: commit or discard them first (git -C <workspace> status)", strings.Join(paths, ", "), more)
}

// CheckClean fails with an *UncommittedError when any file under the given
// workspace paths (all of the workspace when none) differs from HEAD, in the
// work tree or the index, or is untracked; and when a change is unfinished.
// Deploy calls it (after Recover) so that it never applies a half-written tree.
func (w *Workspace) CheckClean(ctx context.Context, paths ...string) error {
	file, err := w.journalPath(ctx)
	if err != nil {
		return err
	}
	if _, err := os.Stat(file); err == nil {
		return fmt.Errorf("a change to the workspace is unfinished (%s exists): another berth command is writing it, or one was killed; the next command that changes the workspace finishes it", file)
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	dirty, err := w.git.dirty(ctx, paths...)
	if err != nil {
		return err
	}
	if len(dirty) > 0 {
		sort.Strings(dirty)
		return &UncommittedError{Paths: dirty}
	}
	return nil
}

// EnvCrashAt makes a test binary kill itself (SIGKILL) at the Nth step of its
// workspace transactions: after the journal is written, after each file,
// before and after the commit. Fault-injection tests set it; it is never
// set otherwise.
const EnvCrashAt = "BERTH_TEST_CRASH_AT"

var crash struct {
	once sync.Once
	at   int
	n    int
	mu   sync.Mutex
}

// crashPoint counts a step of a transaction and dies at the one EnvCrashAt names.
func crashPoint() {
	crash.once.Do(func() { crash.at, _ = strconv.Atoi(os.Getenv(EnvCrashAt)) })
	if crash.at <= 0 {
		return
	}
	crash.mu.Lock()
	defer crash.mu.Unlock()
	crash.n++
	if crash.n == crash.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal arrives
	}
}
