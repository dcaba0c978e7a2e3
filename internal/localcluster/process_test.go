package localcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"testing"
	"time"
)

func startTestProcess(t *testing.T, script string) (pidRecord, string) {
	t.Helper()
	dir := t.TempDir()
	logPath, pidPath := filepath.Join(dir, "p.log"), filepath.Join(dir, "p.pid")
	rec, err := startDetached("/bin/sh", []string{"-c", script}, dir, logPath, pidPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(rec.PID, syscall.SIGKILL) })
	onDisk, err := readPIDFile(pidPath)
	if err != nil {
		t.Fatal(err)
	}
	if onDisk != rec {
		t.Fatalf("pid file holds %+v, want %+v", onDisk, rec)
	}
	return rec, logPath
}

func TestStartDetachedRunsInItsOwnSessionAndStops(t *testing.T) {
	rec, _ := startTestProcess(t, "exec sleep 60")
	if !rec.alive() {
		t.Fatal("process not alive after start")
	}
	sid, err := unix.Getsid(rec.PID)
	if err != nil {
		t.Fatal(err)
	}
	if sid != rec.PID {
		t.Errorf("process session is %d, want its own (%d), so that it outlives berth", sid, rec.PID)
	}
	if err := stopProcess(context.Background(), rec, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if rec.alive() {
		t.Fatal("process alive after stopProcess")
	}
}

func TestStopProcessKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	// An ignored signal stays ignored across exec, so sleep itself ignores TERM,
	// like a kube-apiserver hanging in graceful shutdown.
	rec, logPath := startTestProcess(t, "trap '' TERM; echo ignoring TERM; exec sleep 60")
	// Signal only once the trap is in place, or the shell dies of SIGTERM.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(lastRunTail(logPath, 1), "ignoring TERM"); {
		if time.Now().After(deadline) {
			t.Fatal("the test process never reported its trap")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := stopProcess(context.Background(), rec, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if rec.alive() {
		t.Fatal("process survived SIGKILL")
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("process stopped before the grace period ended, so SIGTERM was not ignored and SIGKILL not exercised")
	}
}

func TestStalePIDRecordsNeverNameAnotherProcess(t *testing.T) {
	_, self, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		rec  pidRecord
		want bool
	}{
		"this very process":                 {pidRecord{PID: os.Getpid(), StartTime: self}, true},
		"pid reused by a different process": {pidRecord{PID: os.Getpid(), StartTime: self + 1}, false},
		"pid of no process":                 {pidRecord{PID: 1 << 22, StartTime: 1}, false},
		"zero pid from an empty record":     {pidRecord{}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.rec.alive(); got != tc.want {
				t.Fatalf("alive() = %v, want %v", got, tc.want)
			}
		})
	}
	// Stopping a stale record must not signal the process that now owns the pid:
	// if it did, this test process would die of SIGTERM.
	if err := stopProcess(context.Background(), pidRecord{PID: os.Getpid(), StartTime: self + 1}, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestReapedZombieCountsAsGone(t *testing.T) {
	// It exits once it is recorded (its pid file written), so that a loaded
	// machine cannot reap it before berth records it.
	rec, logPath := startTestProcess(t, "while [ ! -s p.pid ]; do sleep 0.01; done; echo first run >&2; exit 3")
	if !waitExit(context.Background(), rec, 10*time.Second) {
		t.Fatal("exited process still counts as alive")
	}
	if got := lastRunTail(logPath, 5); got != "first run" {
		t.Errorf("log tail = %q, want the process's output", got)
	}
}

func TestLastRunTailShowsOnlyTheLatestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	content := startMarker + " t1\nold failure\n" + startMarker + " t2\nline 1\nline 2\nline 3\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := lastRunTail(path, 2), "line 2\nline 3"; got != want {
		t.Errorf("lastRunTail(2) = %q, want %q", got, want)
	}
	if got := lastRunTail(path, 10); strings.Contains(got, "old failure") {
		t.Errorf("lastRunTail shows an earlier run: %q", got)
	}
}
