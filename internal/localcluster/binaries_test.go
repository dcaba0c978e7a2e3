package localcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestVersionsValidate(t *testing.T) {
	tests := map[string]struct {
		v       Versions
		wantErr string
	}{
		"defaults":              {v: DefaultVersions()},
		"kubernetes not semver": {v: Versions{"1.34", "v3.5.21", "v0.7.0"}, wantErr: `kubernetes version "1.34"`},
		"etcd short":            {v: Versions{"v1.34.4", "v3.5", "v0.7.0"}, wantErr: `etcd version "v3.5"`},
		"kwok empty":            {v: Versions{"v1.34.4", "v3.5.21", ""}, wantErr: `kwok version ""`},
		"kubernetes v2":         {v: Versions{"v2.0.0", "v3.5.21", "v0.7.0"}, wantErr: "must be a v1.x.y release"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.v.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if got := DefaultVersions().stagingVersion(); got != "v0.34.4" {
		t.Errorf("staging version of v1.34.4 = %s, want v0.34.4", got)
	}
}

func TestCheckBinariesNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{BinEtcd, BinAPIServer, BinControllerManager, BinScheduler} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Present but not executable counts as missing.
	if err := os.WriteFile(filepath.Join(dir, BinKubectl), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var missing *MissingBinariesError
	if err := CheckBinaries(dir); !errors.As(err, &missing) {
		t.Fatalf("got %v, want MissingBinariesError", err)
	}
	if want := []string{BinKubectl, BinKwok}; !slices.Equal(missing.Missing, want) {
		t.Errorf("missing = %v, want %v", missing.Missing, want)
	}
	if err := os.Chmod(filepath.Join(dir, BinKubectl), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, BinKwok), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckBinaries(dir); err != nil {
		t.Fatalf("complete directory rejected: %v", err)
	}
}

func TestEnsureBinariesWithoutGoToolchain(t *testing.T) {
	opts := DefaultBuildOptions()
	opts.CacheDir = t.TempDir()
	opts.GoBinary = filepath.Join(t.TempDir(), "no-such-go")
	_, err := EnsureBinaries(context.Background(), opts)
	if !errors.Is(err, ErrNoGoToolchain) {
		t.Fatalf("got %v, want ErrNoGoToolchain", err)
	}
	if !strings.Contains(err.Error(), "--binaries") {
		t.Errorf("error %q does not mention the --binaries alternative", err)
	}
}

func TestEnsureBinariesReportsTheFailedStepAndItsLog(t *testing.T) {
	// A go command that fails the way a broken build does: output on stderr, exit 2.
	fakeGo := filepath.Join(t.TempDir(), "go")
	script := "#!/bin/sh\necho \"simulated failure of go $1\" >&2\nexit 2\n"
	if err := os.WriteFile(fakeGo, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	opts := DefaultBuildOptions()
	opts.CacheDir = t.TempDir()
	opts.GoBinary = fakeGo
	var events []Event
	opts.Progress = func(e Event) { events = append(events, e) }

	_, err := EnsureBinaries(context.Background(), opts)
	var buildErr *BuildError
	if !errors.As(err, &buildErr) {
		t.Fatalf("got %v, want BuildError", err)
	}
	if buildErr.Step != "go mod tidy" || buildErr.Component != "etcd "+opts.Versions.Etcd {
		t.Errorf("error names step %q of %q, want \"go mod tidy\" of etcd", buildErr.Step, buildErr.Component)
	}
	logData, readErr := os.ReadFile(buildErr.Log)
	if readErr != nil {
		t.Fatalf("the log named in the error cannot be read: %v", readErr)
	}
	if !strings.Contains(string(logData), "simulated failure of go mod") {
		t.Errorf("log %s lacks the command's output:\n%s", buildErr.Log, logData)
	}
	if !strings.Contains(err.Error(), buildErr.Log) || !strings.Contains(err.Error(), "simulated failure") {
		t.Errorf("error %q does not name the log and show its tail", err)
	}
	if len(events) != 2 || events[0].Done || !events[1].Done || events[1].Err == nil {
		t.Errorf("progress events = %+v, want a start and a failed end", events)
	}
	// Nothing half-built is left where a later run would take it for a binary.
	if err := CheckBinaries(filepath.Join(opts.CacheDir, opts.Versions.cacheKey(), "bin")); err == nil {
		t.Error("a failed build left a complete-looking binary directory")
	}
}
