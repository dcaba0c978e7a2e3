package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The workspace lock and the journal live in the repository's git directory:
// never committed, never seen by 'git status', and one per clone.
const (
	lockName    = "berth.lock"
	journalName = "berth-journal.json"
)

// DefaultLockTimeout is how long a command waits for another one that holds
// the workspace.
const DefaultLockTimeout = 10 * time.Minute

// Holder is the command that holds the workspace lock.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// LockOptions configures Acquire.
type LockOptions struct {
	// Command describes this command to the ones that wait for it; the
	// process's command line when empty.
	Command string
	// Timeout bounds the wait for another command; DefaultLockTimeout when zero.
	Timeout time.Duration
	// Waiting, when set, is called when another command holds the workspace
	// and this one starts to wait for it.
	Waiting func(Holder)
	// Recovered, when set, is told what was done with a change that an earlier
	// command left unfinished (it was killed between writing and committing).
	Recovered func(Recovery)
}

// LockedError means another command held the workspace for longer than the
// wait allowed.
type LockedError struct {
	Holder Holder
	Waited time.Duration
	Lock   string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("another berth command (pid %d, `%s`) has been changing the workspace since %s; waited %s for it to finish (lock %s)",
		e.Holder.PID, e.Holder.Command, e.Holder.Since.Format(time.RFC3339), e.Waited.Round(time.Second), e.Lock)
}

// held is the lock a Workspace holds; Acquire is re-entrant per Workspace, so
// a command holds it from its first read to its commit while Change, called
// inside, takes it again.
type held struct {
	mu    sync.Mutex
	f     *os.File
	depth int
}

// Acquire takes the workspace's exclusive lock (an flock on .git/berth.lock),
// waiting up to opts.Timeout while another command holds it. Having it, it
// first finishes or discards a change an earlier command left unfinished (see
// Recover). Every command that changes the workspace holds the lock from
// before it reads the workspace until after it commits; commands that only
// read do not take it. Call the returned function to release it.
func (w *Workspace) Acquire(ctx context.Context, opts LockOptions) (release func(), err error) {
	w.lock.mu.Lock()
	defer w.lock.mu.Unlock()
	if w.lock.depth > 0 {
		w.lock.depth++
		return w.releaser(), nil
	}
	gitDir, err := w.git.gitDir(ctx)
	if err != nil {
		return nil, err
	}
	f, err := lockFile(ctx, filepath.Join(gitDir, lockName), opts)
	if err != nil {
		return nil, err
	}
	w.lock.f, w.lock.depth = f, 1
	rec, err := w.recover(ctx, gitDir)
	if err != nil {
		w.lock.depth = 0
		w.lock.f = nil
		_ = f.Close()
		return nil, err
	}
	if rec != nil && opts.Recovered != nil {
		opts.Recovered(*rec)
	}
	return w.releaser(), nil
}

func (w *Workspace) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			w.lock.mu.Lock()
			defer w.lock.mu.Unlock()
			w.lock.depth--
			if w.lock.depth == 0 && w.lock.f != nil {
				// Closing the descriptor releases the flock.
				_ = w.lock.f.Close()
				w.lock.f = nil
			}
		})
	}
}

// lockFile opens and flocks path, polling while another process holds it.
// The kernel releases an flock when its process dies, so a killed command
// never leaves the workspace locked.
func lockFile(ctx context.Context, path string, opts LockOptions) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the workspace lock: %w", err)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultLockTimeout
	}
	start := time.Now()
	var told Holder
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking the workspace (%s): %w", path, err)
		}
		h := readHolder(path)
		if h != told && opts.Waiting != nil {
			opts.Waiting(h)
		}
		told = h
		if time.Since(start) >= timeout {
			f.Close()
			return nil, &LockedError{Holder: h, Waited: time.Since(start), Lock: path}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another berth command (pid %d, `%s`) to finish: %w", h.PID, h.Command, ctx.Err())
		case <-tick.C:
		}
	}
	cmd := opts.Command
	if cmd == "" {
		cmd = commandLine()
	}
	h := Holder{PID: os.Getpid(), Command: cmd, Since: time.Now().UTC().Truncate(time.Second)}
	b, _ := json.Marshal(h)
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(append(b, '\n'), 0)
	}
	return f, nil
}

// readHolder reads who holds the lock; best effort, for messages only.
func readHolder(path string) Holder {
	var h Holder
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &h)
	}
	if h.Command == "" {
		h.Command = "unknown"
	}
	return h
}

// commandLine is the process's command line as a user would type it.
func commandLine() string {
	if len(os.Args) == 0 {
		return "berth"
	}
	args := append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...)
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			args[i] = strconv.Quote(a)
		}
	}
	return strings.Join(args, " ")
}
