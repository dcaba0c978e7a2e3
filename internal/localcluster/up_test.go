package localcluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

// newCluster returns options for a cluster of the test's own, stopped and purged
// when the test ends.
func newCluster(t *testing.T, binDir string) localcluster.UpOptions {
	t.Helper()
	opts := localcluster.UpOptions{Home: testcluster.Home(t), Name: testcluster.UniqueName(t, 30), Nodes: 1, BinDir: binDir}
	t.Cleanup(func() {
		_, err := localcluster.Down(context.Background(), localcluster.DownOptions{Home: opts.Home, Name: opts.Name, Purge: true})
		if err != nil && !errors.Is(err, localcluster.ErrNotFound) {
			t.Errorf("cleaning up cluster %s: %v", opts.Name, err)
		}
	})
	return opts
}

func clusterDir(opts localcluster.UpOptions) string {
	return filepath.Join(opts.Home, "clusters", opts.Name)
}

func TestUpFailsClearlyWhenAPortIsTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	opts := newCluster(t, testcluster.BinDir(t))
	opts.APIServerPort = port
	_, _, err = localcluster.Up(context.Background(), opts)
	var inUse *localcluster.PortInUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("got %v, want PortInUseError", err)
	}
	if inUse.Component != localcluster.BinAPIServer || inUse.Port != port {
		t.Errorf("error names %s port %d, want %s port %d", inUse.Component, inUse.Port, localcluster.BinAPIServer, port)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("127.0.0.1:%d", port)) || !strings.Contains(msg, opts.Name) {
		t.Errorf("error %q does not name the address and the cluster", msg)
	}
	// etcd had started before the API server's port was checked; it must be gone.
	if left := testcluster.ProcessesUnder(t, clusterDir(opts)); len(left) > 0 {
		t.Errorf("processes left running after the failed start: %v", left)
	}
}

func TestUpFailsClearlyWhenAProcessExitsDuringStart(t *testing.T) {
	real := testcluster.BinDir(t)
	bin := t.TempDir()
	for _, name := range localcluster.RequiredBinaries {
		if err := os.Symlink(filepath.Join(real, name), filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	// An API server that dies at start, as one with a bad flag or a broken etcd would.
	broken := "#!/bin/sh\necho 'starting'\necho 'error: simulated fatal start-up failure' >&2\nexit 1\n"
	apiserver := filepath.Join(bin, localcluster.BinAPIServer)
	if err := os.Remove(apiserver); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(apiserver, []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}

	opts := newCluster(t, bin)
	_, _, err := localcluster.Up(context.Background(), opts)
	var exited *localcluster.ProcessExitedError
	if !errors.As(err, &exited) {
		t.Fatalf("got %v, want ProcessExitedError", err)
	}
	if exited.Component != localcluster.BinAPIServer {
		t.Errorf("error blames %s, want %s", exited.Component, localcluster.BinAPIServer)
	}
	if !strings.Contains(err.Error(), "simulated fatal start-up failure") || !strings.Contains(err.Error(), exited.Log) {
		t.Errorf("error does not show the log tail and path:\n%v", err)
	}
	if left := testcluster.ProcessesUnder(t, clusterDir(opts)); len(left) > 0 {
		t.Errorf("processes left running after the failed start: %v", left)
	}
	st, err := localcluster.List(opts.Home)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Name == opts.Name && s.Phase != localcluster.PhaseStopped {
			t.Errorf("cluster after failed start is %s, want stopped", s.Phase)
		}
	}
}

func TestCorruptStateIsReportedAndCanBePurged(t *testing.T) {
	tests := map[string]string{
		"not json":             "{ this is not json",
		"unknown field":        `{"name":"%s","surprise":1}`,
		"wrong name":           `{"name":"someone-else"}`,
		"ports missing":        `{"name":"%s","versions":{"kubernetes":"v1.34.4","etcd":"v3.5.21","kwok":"v0.7.0"},"nodes":1}`,
		"version not a semver": `{"name":"%s","versions":{"kubernetes":"latest","etcd":"v3.5.21","kwok":"v0.7.0"},"nodes":1}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			opts := newCluster(t, "")
			dir := clusterDir(opts)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(content, "%s") {
				content = fmt.Sprintf(content, opts.Name)
			}
			statePath := filepath.Join(dir, "cluster.json")
			if err := os.WriteFile(statePath, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := localcluster.Up(context.Background(), opts)
			var corrupt *localcluster.CorruptStateError
			if !errors.As(err, &corrupt) || corrupt.Path != statePath {
				t.Fatalf("got %v, want CorruptStateError for %s", err, statePath)
			}
			if !strings.Contains(err.Error(), "berth down --name "+opts.Name+" --purge") {
				t.Errorf("error %q does not say how to recover", err)
			}
			if data, _ := os.ReadFile(statePath); string(data) != content {
				t.Error("the failed up changed the corrupt state file")
			}
			list, err := localcluster.List(opts.Home)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range list {
				if s.Name == opts.Name {
					found = true
					if s.Phase != localcluster.PhaseCorrupt || s.Error == "" {
						t.Errorf("list shows %+v, want phase corrupt with the error", s)
					}
				}
			}
			if !found {
				t.Fatalf("list does not show cluster %s", opts.Name)
			}
			if _, err := localcluster.Down(context.Background(), localcluster.DownOptions{Home: opts.Home, Name: opts.Name, Purge: true}); err != nil {
				t.Fatalf("down --purge of a corrupt cluster: %v", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state directory still exists after purge: %v", err)
			}
		})
	}
}

func TestUpRejectsBadOptions(t *testing.T) {
	home := t.TempDir()
	tests := map[string]struct {
		opts    localcluster.UpOptions
		wantErr string
	}{
		"upper-case name":  {localcluster.UpOptions{Home: home, Name: "Dev"}, `cluster name "Dev" is invalid`},
		"path in name":     {localcluster.UpOptions{Home: home, Name: "../x"}, `cluster name "../x" is invalid`},
		"too many nodes":   {localcluster.UpOptions{Home: home, Name: "n", Nodes: 1000}, "--nodes 1000 is out of range"},
		"bad version":      {localcluster.UpOptions{Home: home, Name: "v", Versions: localcluster.Versions{Kubernetes: "v1.34", Etcd: "v3.5.21", Kwok: "v0.7.0"}}, `kubernetes version "v1.34"`},
		"missing binaries": {localcluster.UpOptions{Home: home, Name: "b", BinDir: t.TempDir()}, "lacks etcd, kube-apiserver"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _, err := localcluster.Up(ctx, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	// Bad input leaves no trace: no cluster directory was created.
	if entries, err := os.ReadDir(filepath.Join(home, "clusters")); err == nil && len(entries) > 0 {
		t.Errorf("rejected options left %d entries in %s", len(entries), filepath.Join(home, "clusters"))
	}
}
