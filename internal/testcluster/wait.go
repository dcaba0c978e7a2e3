package testcluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// WaitFor polls cond every 100ms until it reports done, failing the test after
// timeout with the last state cond described.
func WaitFor(t testing.TB, timeout time.Duration, cond func(ctx context.Context) (done bool, state string, err error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		done, state, err := cond(ctx)
		last = state
		return done, err
	})
	if err != nil {
		t.Fatalf("condition not met within %s: %v; last seen: %s", timeout, err, last)
	}
}

// ProcessesUnder returns the pids of running processes whose command line
// mentions a path inside dir: the processes of a local cluster whose state lives
// there.
func ProcessesUnder(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir+string(os.PathSeparator))) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
