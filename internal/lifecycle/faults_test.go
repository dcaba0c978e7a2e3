package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// cliWorkspace is a workspace made by the real berth binary, for tests that
// run several berth processes against it.
type cliWorkspace struct {
	t    *testing.T
	bin  string
	home string
	root string
	// checked are the commits checkConsistent has looked at.
	checked map[string]bool
}

func newCLIWorkspace(t *testing.T, initArgs ...string) *cliWorkspace {
	t.Helper()
	c := &cliWorkspace{t: t, bin: testcluster.BerthBinary(t), home: t.TempDir(), checked: map[string]bool{}}
	c.root = filepath.Join(t.TempDir(), "ws")
	if out, err := c.command(nil, append([]string{"init", c.root}, initArgs...)...).CombinedOutput(); err != nil {
		t.Fatalf("berth init: %v\n%s", err, out)
	}
	return c
}

func (c *cliWorkspace) command(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOME="+c.home)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// run runs berth in the workspace; killed reports a SIGKILL.
func (c *cliWorkspace) run(env []string, args ...string) (out string, killed bool, err error) {
	cmd := c.command(env, append(args, "-C", c.root)...)
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return string(b), true, err
		}
	}
	return string(b), false, err
}

// ownerOf returns the app a lock key belongs to.
func ownerOf(key string) string {
	if s, ok := strings.CutPrefix(key, "shared:"); ok {
		return s
	}
	o, _, _ := strings.Cut(strings.TrimPrefix(key, "app:"), "/")
	return o
}

// checkConsistent asserts that the workspace is clean and at a commit with no
// unfinished change, and that every commit holds exactly its own apps' files
// and lock entries: a commit never carries the lock entry of an app whose
// files it does not hold.
func (c *cliWorkspace) checkConsistent(label string) {
	t := c.t
	t.Helper()
	if st := git(t, c.root, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Fatalf("%s: the workspace is not clean:\n%s", label, st)
	}
	if _, err := os.Stat(filepath.Join(c.root, ".git", "berth-journal.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: a journal is left: %v", label, err)
	}
	for _, commit := range strings.Fields(git(t, c.root, "rev-list", "HEAD")) {
		if c.checked[commit] {
			continue
		}
		c.checked[commit] = true
		parents := strings.Fields(git(t, c.root, "log", "-1", "--format=%P", commit))
		if len(parents) != 1 {
			continue
		}
		fileApps := map[string]bool{}
		for _, f := range strings.Fields(git(t, c.root, "show", "--name-only", "--format=", commit)) {
			parts := strings.Split(f, "/")
			if len(parts) > 2 && (parts[0] == workspace.AppsDir || parts[0] == workspace.RenderedDir) {
				fileApps[parts[1]] = true
			}
		}
		lockAt := func(rev string) map[string]string {
			out, err := exec.Command("git", "-C", c.root, "show", rev+":"+workspace.LockFile).Output()
			if err != nil {
				return nil
			}
			l, err := workspace.ParseLock(out)
			if err != nil {
				t.Fatalf("%s: %s of %s: %v", label, workspace.LockFile, rev, err)
			}
			m := map[string]string{}
			for _, in := range l.Instances {
				m[in.Key] = in.Version + " " + in.Digest
			}
			return m
		}
		before, after := lockAt(parents[0]), lockAt(commit)
		for k := range mergeKeys(before, after) {
			if before[k] != after[k] && !fileApps[ownerOf(k)] {
				t.Fatalf("%s: commit %.8s (%s) changes the lock entry %s but holds no file of app %s",
					label, commit, git(t, c.root, "log", "-1", "--format=%s", commit), k, ownerOf(k))
			}
		}
	}
}

func mergeKeys(ms ...map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

func (c *cliWorkspace) appValue(app, key string) any {
	c.t.Helper()
	ws, err := workspace.Open(c.root)
	if err != nil {
		c.t.Fatal(err)
	}
	a, err := ws.App(app)
	if err != nil {
		c.t.Fatalf("app %s: %v", app, err)
	}
	return a.Values[key]
}

func (c *cliWorkspace) lockVersion(key string) string {
	c.t.Helper()
	ws, err := workspace.Open(c.root)
	if err != nil {
		c.t.Fatal(err)
	}
	l, err := ws.Lock()
	if err != nil {
		c.t.Fatal(err)
	}
	in, _ := l.Get(key)
	return in.Version
}

// started is a berth process whose progress is read as it runs.
type started struct {
	cmd     *exec.Cmd
	out     bytes.Buffer
	mu      sync.Mutex
	waiting chan struct{}
	done    chan struct{}
}

func (c *cliWorkspace) start(args ...string) *started {
	c.t.Helper()
	s := &started{cmd: c.command(nil, append(args, "-C", c.root)...), waiting: make(chan struct{}), done: make(chan struct{})}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	s.cmd.Stdout = &lockedWriter{s: s}
	if err := s.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.out.WriteString(line + "\n")
			s.mu.Unlock()
			if strings.Contains(line, "waiting for another berth command") {
				once.Do(func() { close(s.waiting) })
			}
		}
	}()
	return s
}

type lockedWriter struct{ s *started }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.out.Write(b)
}

func (s *started) wait() (string, error) {
	<-s.done
	err := s.cmd.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String(), err
}

// TestConcurrentWritersWaitAndNeverCorruptTheWorkspace runs pairs of writing
// commands at once through the real binary. The test holds the workspace
// lock until both say they wait, so they really overlap; then both must
// finish, one after the other, each commit holding only its own app.
func TestConcurrentWritersWaitAndNeverCorruptTheWorkspace(t *testing.T) {
	ctx := context.Background()
	c := newCLIWorkspace(t)
	for round := range 3 {
		pairs := [][2][]string{
			{{"install", "redis", "--name", fmt.Sprintf("a%d", round), "--yes", "--no-deploy"}, {"install", "postgresql", "--name", fmt.Sprintf("b%d", round), "--yes", "--no-deploy"}},
			{{"install", "redis", "--name", fmt.Sprintf("c%d", round), "--yes", "--no-deploy"}, {"config", fmt.Sprintf("a%d", round), "--set", "maxMemory=" + strconv.Itoa(100+round) + "Mi", "--no-deploy"}},
		}
		for _, pair := range pairs {
			ws, err := workspace.Open(c.root)
			if err != nil {
				t.Fatal(err)
			}
			release, err := ws.Acquire(ctx, workspace.LockOptions{Command: "the test"})
			if err != nil {
				t.Fatal(err)
			}
			a, b := c.start(pair[0]...), c.start(pair[1]...)
			for _, s := range []*started{a, b} {
				select {
				case <-s.waiting:
				case <-s.done:
					out, err := s.wait()
					t.Fatalf("berth %s did not wait for the lock: %v\n%s", strings.Join(s.cmd.Args[1:], " "), err, out)
				}
			}
			release()
			for _, s := range []*started{a, b} {
				out, err := s.wait()
				if err != nil {
					t.Fatalf("berth %s: %v\n%s", strings.Join(s.cmd.Args[1:], " "), err, out)
				}
				if !strings.Contains(out, "`the test`") {
					t.Errorf("berth %s did not say what it waited for:\n%s", strings.Join(s.cmd.Args[1:], " "), out)
				}
			}
			c.checkConsistent(fmt.Sprintf("round %d: %s + %s", round, pair[0][0], pair[1][0]))
		}
		if got := c.appValue(fmt.Sprintf("a%d", round), "maxMemory"); got != strconv.Itoa(100+round)+"Mi" {
			t.Errorf("round %d: maxMemory of a%d = %v", round, round, got)
		}
		for _, app := range []string{"a", "b", "c"} {
			c.appValue(fmt.Sprintf("%s%d", app, round), "unused") // exists
		}
	}
}

// TestKilledWritersAreRecoveredByTheNextCommand kills berth (SIGKILL, at a
// seeded random step of its workspace transaction) during install, upgrade,
// config and rollback, reruns the command, and asserts the workspace is clean, at a
// commit, consistent, and holds what the command meant.
func TestKilledWritersAreRecoveredByTheNextCommand(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("BERTH_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (rerun with BERTH_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	c := newCLIWorkspace(t)
	var kills, recoveries int
	// step runs args killed at a random step, then again, and returns the
	// rerun's output; accept says which rerun failures are fine.
	step := func(label string, accept string, args ...string) {
		t.Helper()
		at := 1 + rng.IntN(16)
		out, killed, err := c.run([]string{workspace.EnvCrashAt + "=" + strconv.Itoa(at)}, args...)
		if err != nil && !killed {
			t.Fatalf("%s (crash at %d): %v\n%s", label, at, err, out)
		}
		_, journal := os.Stat(filepath.Join(c.root, ".git", "berth-journal.json"))
		if killed {
			kills++
		}
		out, _, err = c.run(nil, args...)
		if err != nil && (accept == "" || !strings.Contains(out, accept)) {
			t.Fatalf("%s rerun after a crash at step %d: %v\n%s", label, at, err, out)
		}
		if journal == nil {
			recoveries++
			if !strings.Contains(out, "an earlier berth command") {
				t.Errorf("%s rerun recovered an unfinished change without saying so:\n%s", label, out)
			}
		}
		c.checkConsistent(fmt.Sprintf("%s (crash at step %d)", label, at))
	}
	for trial := range 6 {
		app := fmt.Sprintf("r%d", trial)
		step(app+": install", "is already installed", "install", "redis", "--name", app, "--yes", "--no-deploy")
		if got := c.appValue(app, "maxMemory"); got != nil {
			t.Fatalf("%s: maxMemory after install = %v", app, got)
		}
		// (-o json: without it, upgrade prints a plan, which needs a cluster.)
		step(app+": upgrade", "", "upgrade", app, "--to", "7.4.2", "--no-deploy", "-o", "json")
		if got := c.lockVersion("app:" + app); got != "7.4.2" {
			t.Fatalf("%s: version after upgrade = %s, want 7.4.2", app, got)
		}
		mem := strconv.Itoa(100+trial) + "Mi"
		step(app+": config", "", "config", app, "--set", "maxMemory="+mem, "--no-deploy")
		if got := c.appValue(app, "maxMemory"); got != mem {
			t.Fatalf("%s: maxMemory after config = %v, want %s", app, got, mem)
		}
		step(app+": rollback", "", "rollback", app, "--no-deploy")
		if got := c.appValue(app, "maxMemory"); got != nil {
			t.Fatalf("%s: maxMemory after rollback (run twice) = %v, want the upgrade's (unset)", app, got)
		}
		if got := c.lockVersion("app:" + app); got != "7.4.2" {
			t.Fatalf("%s: version after rollback (run twice) = %s, want the upgrade's 7.4.2", app, got)
		}
	}
	t.Logf("%d kills, %d unfinished changes recovered", kills, recoveries)
	if kills == 0 {
		t.Error("no run was killed: the crash points are not reached")
	}
}
