package workspace

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAcquireWaitsForAnotherWriterAndNamesIt(t *testing.T) {
	ctx := context.Background()
	a := newWorkspace(t)
	b, err := Open(a.Root)
	if err != nil {
		t.Fatal(err)
	}
	releaseA, err := a.Acquire(ctx, LockOptions{Command: "berth install web"})
	if err != nil {
		t.Fatal(err)
	}
	// Re-entrant for the holder: Change inside a held lock does not deadlock.
	if err := a.Change(ctx, "web", []string{"apps/web"}, func() error { return a.WriteFile("apps/web/app.yaml", []byte("a: 1\n")) }); err != nil {
		t.Fatal(err)
	}

	// Another writer that cannot wait long fails and names the holder.
	_, err = b.Acquire(ctx, LockOptions{Timeout: time.Millisecond})
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Acquire while held = %v, want a *LockedError", err)
	}
	if le.Holder.PID != os.Getpid() || le.Holder.Command != "berth install web" {
		t.Errorf("holder = %+v", le.Holder)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d, `berth install web`", os.Getpid())) {
		t.Errorf("error does not name the holder: %v", err)
	}

	// A writer that waits is told who it waits for, and gets the lock once released.
	waiting := make(chan Holder, 1)
	got := make(chan error, 1)
	go func() {
		release, err := b.Acquire(ctx, LockOptions{Waiting: func(h Holder) {
			select {
			case waiting <- h:
			default:
			}
		}})
		if err == nil {
			release()
		}
		got <- err
	}()
	h := <-waiting
	if h.Command != "berth install web" {
		t.Errorf("waiting for %+v", h)
	}
	select {
	case err := <-got:
		t.Fatalf("the second writer got the lock while it was held: %v", err)
	default:
	}
	releaseA()
	if err := <-got; err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}

	// A cancelled wait says what it waited for.
	releaseB, err := b.Acquire(ctx, LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer releaseB()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := a.Acquire(cctx, LockOptions{Waiting: func(Holder) { cancel() }}); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for another berth command") {
		t.Errorf("cancelled wait = %v", err)
	}
}

// crashHelperEnv names the workspace the re-executed test binary changes.
const crashHelperEnv = "BERTH_TEST_CRASH_WORKSPACE"

// TestCrashHelper is not a test: run by TestAKilledChangeIsCompletedOrDiscarded
// in a child process, it makes one change of three files (version N+1 of each)
// and is killed at the step BERTH_TEST_CRASH_AT names.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("run by TestAKilledChangeIsCompletedOrDiscarded")
	}
	ctx := context.Background()
	w, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	release, err := w.Acquire(ctx, LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	n := commitCountNoFail(dir)
	err = w.Change(ctx, fmt.Sprintf("change %d", n), []string{"apps/web", "rendered/web"}, func() error {
		for _, f := range []string{"apps/web/app.yaml", "rendered/web/a.yaml", "rendered/web/b.yaml"} {
			if err := w.WriteFile(f, []byte(fmt.Sprintf("v: %d\n", n))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func commitCountNoFail(dir string) int {
	out, _ := exec.Command("git", "-C", dir, "rev-list", "--count", "HEAD").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func TestAKilledChangeIsCompletedOrDiscarded(t *testing.T) {
	ctx := context.Background()
	seed := time.Now().UnixNano()
	if s := os.Getenv("BERTH_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (rerun with BERTH_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	w := newWorkspace(t)
	const steps = 9 // journal, 3 files, committing, staged, committed, journal removed, and past the end
	outcomes := map[RecoveryAction]int{}
	for round := range 24 {
		at := 1 + rng.IntN(steps)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+w.Root, EnvCrashAt+"="+strconv.Itoa(at))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled()
		if err != nil && !killed {
			t.Fatalf("round %d (crash at %d): helper failed: %v\n%s", round, at, err, out)
		}
		before := gitOut(t, w.Root, "rev-parse", "HEAD")
		var rec *Recovery
		if err := w.Recover(ctx, LockOptions{Recovered: func(r Recovery) { rec = &r }}); err != nil {
			t.Fatalf("round %d (crash at %d): Recover: %v", round, at, err)
		}
		if st := gitOut(t, w.Root, "status", "--porcelain", "--untracked-files=all"); st != "" {
			t.Fatalf("round %d (crash at %d): the workspace is not clean after recovery:\n%s", round, at, st)
		}
		if _, err := os.Stat(filepath.Join(w.Root, ".git", journalName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: the journal is still there: %v", round, err)
		}
		if err := w.CheckClean(ctx); err != nil {
			t.Fatalf("round %d: CheckClean: %v", round, err)
		}
		switch {
		case !killed:
			if rec != nil {
				t.Errorf("round %d: a change that finished was recovered: %+v", round, rec)
			}
		case rec == nil:
			// Killed before the journal was written, or after it was removed.
		default:
			outcomes[rec.Action]++
			if rec.PID == 0 || !strings.Contains(rec.String(), "change ") {
				t.Errorf("round %d: recovery report %q", round, rec)
			}
			if rec.Action == RecoveryCompleted && gitOut(t, w.Root, "rev-parse", "HEAD") == before && rec.Commit != before {
				t.Errorf("round %d: completed without a commit", round)
			}
		}
		// Every commit holds a whole change: the three files at one version.
		n := gitOut(t, w.Root, "log", "-1", "--format=%s")
		if n != "initialise berth workspace" {
			v := strings.TrimPrefix(n, "change ")
			want := map[string]string{"apps/web/app.yaml": "v: " + v, "rendered/web/a.yaml": "v: " + v, "rendered/web/b.yaml": "v: " + v}
			got := map[string]string{}
			for f := range want {
				got[f] = gitOut(t, w.Root, "show", "HEAD:"+f)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("round %d (crash at %d): HEAD %q holds a partial change (-want +got):\n%s", round, at, n, diff)
			}
		}
	}
	t.Logf("recoveries: %v", outcomes)
}

func TestCheckCleanRefusesAHalfWrittenTree(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	if err := w.Change(ctx, "web", []string{"rendered/web"}, func() error {
		return w.WriteFile("rendered/web/deployment.yaml", []byte("replicas: 3\n"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckClean(ctx, RenderedDir, AppsDir); err != nil {
		t.Fatalf("clean workspace: %v", err)
	}
	// Untracked files elsewhere do not matter to the paths asked about.
	if err := os.WriteFile(w.Abs("NOTES.md"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckClean(ctx, RenderedDir, AppsDir); err != nil {
		t.Fatalf("a file outside the paths: %v", err)
	}
	for name, write := range map[string]func(){
		"modified":  func() { _ = os.WriteFile(w.Abs("rendered/web/deployment.yaml"), []byte("replicas: 1\n"), 0o644) },
		"untracked": func() { _ = os.WriteFile(w.Abs("rendered/web/half.yaml"), []byte("kind: Service\n"), 0o644) },
		"staged": func() {
			_ = os.WriteFile(w.Abs("apps/web.yaml"), []byte("x\n"), 0o644)
			gitOut(t, w.Root, "add", "apps/web.yaml")
		},
	} {
		t.Run(name, func(t *testing.T) {
			write()
			err := w.CheckClean(ctx, RenderedDir, AppsDir)
			var ue *UncommittedError
			if !errors.As(err, &ue) || len(ue.Paths) != 1 || !strings.Contains(err.Error(), "berth deploys only what is committed") {
				t.Errorf("CheckClean = %v, want an *UncommittedError naming one path", err)
			}
			gitOut(t, w.Root, "reset", "--quiet")
			gitOut(t, w.Root, "checkout", "--quiet", "--", ".")
			gitOut(t, w.Root, "clean", "--quiet", "-fd", "--", RenderedDir, AppsDir)
		})
	}
	// An unfinished change is refused until a writer (or Recover) finishes it.
	if err := os.WriteFile(filepath.Join(w.Root, ".git", journalName), []byte(`{"pid":1,"command":"berth install web","message":"install web","paths":["rendered/web"],"head":"`+gitOut(t, w.Root, "rev-parse", "HEAD")+`","state":"writing"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.Abs("rendered/web/deployment.yaml"), []byte("replicas: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckClean(ctx, RenderedDir); err == nil || !strings.Contains(err.Error(), "unfinished") {
		t.Errorf("CheckClean with a journal = %v", err)
	}
	var rec Recovery
	if err := w.Recover(ctx, LockOptions{Recovered: func(r Recovery) { rec = r }}); err != nil {
		t.Fatal(err)
	}
	if rec.Action != RecoveryDiscarded || !strings.Contains(rec.String(), "`berth install web`") {
		t.Errorf("recovery = %+v (%s)", rec, rec)
	}
	if err := w.CheckClean(ctx, RenderedDir, AppsDir); err != nil {
		t.Errorf("after Recover: %v", err)
	}
	if b, _ := w.ReadFile("rendered/web/deployment.yaml"); string(b) != "replicas: 3\n" {
		t.Errorf("deployment.yaml after Recover = %q, want HEAD's", b)
	}
}

func TestInitRunAgainAfterAKilledInit(t *testing.T) {
	dir := t.TempDir()
	gitOut(t, dir, "init", "--quiet")
	// What an init killed after writing berth.yaml leaves: the file and the journal.
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("apiVersion: berth.dev/v1alpha1\nkind: Wor"), 0o644); err != nil {
		t.Fatal(err)
	}
	j := `{"pid":1,"command":"berth init","message":"initialise berth workspace","paths":["apps/.keep","berth.yaml","rendered/.keep"],"head":"","state":"writing"}`
	if err := os.WriteFile(filepath.Join(dir, ".git", journalName), []byte(j), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Init(context.Background(), dir, InitOptions{})
	if err != nil {
		t.Fatalf("init run again: %v", err)
	}
	if w.Config.Kind != "Workspace" {
		t.Errorf("config = %+v", w.Config)
	}
	if st := gitOut(t, dir, "status", "--porcelain"); st != "" {
		t.Errorf("status after init = %q", st)
	}
}
