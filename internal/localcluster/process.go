package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pidRecord identifies a process we started. The kernel start time guards against
// pid reuse: a pid file whose process is gone, or whose pid now belongs to another
// process, is stale.
type pidRecord struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"` // clock ticks since boot, /proc/<pid>/stat field 22
	Binary    string `json:"binary"`
}

// procStat reads the state and start time of a process from /proc.
func procStat(pid int) (state byte, startTime uint64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; fields after it
	// start at the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	startTime, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat: %w", pid, err)
	}
	return fields[0][0], startTime, nil
}

// alive reports whether the recorded process still runs (zombies count as gone).
func (r pidRecord) alive() bool {
	if r.PID <= 0 {
		return false
	}
	state, start, err := procStat(r.PID)
	return err == nil && start == r.StartTime && state != 'Z' && state != 'X'
}

func readPIDFile(path string) (pidRecord, error) {
	var r pidRecord
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("pid file %s is corrupt: %w", path, err)
	}
	return r, nil
}

// errExitedAtOnce means a process exited (and was reaped) before berth could
// record it.
var errExitedAtOnce = errors.New("exited before it could be recorded")

// startDetached starts a process in its own session, so that it outlives berth,
// with stdout and stderr appended to logPath, and records it in pidPath.
func startDetached(bin string, args []string, dir, logPath, pidPath string) (pidRecord, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return pidRecord{}, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s %s\n", startMarker, time.Now().Format(time.RFC3339))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return pidRecord{}, fmt.Errorf("starting %s: %w", bin, err)
	}
	// Reap the child if it exits while this process still runs; once berth exits,
	// init adopts it.
	go func() { _ = cmd.Wait() }()
	_, start, err := procStat(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		return pidRecord{}, fmt.Errorf("%s exited at once: %w: %w", bin, errExitedAtOnce, err)
	}
	rec := pidRecord{PID: cmd.Process.Pid, StartTime: start, Binary: bin}
	data, _ := json.Marshal(rec)
	if err := writeFileAtomic(pidPath, append(data, '\n'), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return pidRecord{}, err
	}
	return rec, nil
}

// startMarker begins each run's section of a component log, so that errors can
// show the output of the latest run only.
const startMarker = "=== berth: process started"

// lastRunTail returns the last n lines a component logged since it last started.
func lastRunTail(logPath string, n int) string {
	tail := tailFile(logPath, 400)
	if i := strings.LastIndex(tail, startMarker); i >= 0 {
		tail = tail[i:]
		if j := strings.IndexByte(tail, '\n'); j >= 0 {
			tail = tail[j+1:]
		} else {
			tail = ""
		}
	}
	return lastLines([]byte(tail), n)
}

// stopProcess sends SIGTERM, waits up to grace for the process to exit, then sends
// SIGKILL and waits again. Only the recorded process is signalled.
func stopProcess(ctx context.Context, r pidRecord, grace time.Duration) error {
	if !r.alive() {
		return nil
	}
	if err := syscall.Kill(r.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling pid %d: %w", r.PID, err)
	}
	if waitExit(ctx, r, grace) {
		return nil
	}
	if err := syscall.Kill(r.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing pid %d: %w", r.PID, err)
	}
	if waitExit(ctx, r, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("pid %d (%s) did not exit after SIGKILL", r.PID, r.Binary)
}

// waitExit polls until the process is gone or the timeout passes.
func waitExit(ctx context.Context, r pidRecord, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for r.alive() {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}
