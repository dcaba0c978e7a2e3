package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lockedClone returns a clone of a berth-encrypted repository that was never
// unlocked: the state in which git-crypt users commit secrets in plaintext.
func lockedClone(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := newRepo(t)
	initRepo(t, dir)
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	if _, err := Commit(ctx, dir, "install", ".gitattributes", "apps"); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	run(t, "", "git", "clone", "-q", dir, clone)
	return clone
}

func TestCommitRefusesPlaintextWhenLocked(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		path string
		want error
	}{
		"changed secret":   {"apps/db/secrets.yaml", ErrFilterMissing},
		"new secret file":  {"apps/web/secrets/tls.key", ErrFilterMissing},
		"non-secret files": {"apps/db/app.yaml", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clone := lockedClone(t)
			before := commitCount(t, clone)
			writeFile(t, clone, tc.path, "new-password: Kx9-plain-leak\n")
			_, err := Commit(ctx, clone, "change", tc.path)
			if !isErr(err, tc.want) {
				t.Fatalf("Commit = %v, want %v", err, tc.want)
			}
			wantCommits := before + 1
			if tc.want != nil {
				wantCommits = before
				if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), "berth crypto unlock") {
					t.Errorf("the error does not name the file and the fix: %v", err)
				}
				if strings.Contains(err.Error(), "Kx9-plain-leak") {
					t.Error("the error contains the secret")
				}
				if out := run(t, clone, "git", "diff", "--cached", "--name-only"); out != "" {
					t.Errorf("a refused commit left files staged: %s", out)
				}
			}
			if got := commitCount(t, clone); got != wantCommits {
				t.Fatalf("commits = %d, want %d", got, wantCommits)
			}
		})
	}
}

func TestCheckStagedCatchesPlainGitAdd(t *testing.T) {
	ctx := context.Background()
	clone := lockedClone(t)
	if err := CheckStaged(ctx, clone); err != nil {
		t.Fatalf("a clean locked clone fails the guard: %v", err)
	}
	writeFile(t, clone, "apps/db/secrets.yaml", "leaked: yes\n")
	run(t, clone, "git", "add", "apps/db/secrets.yaml")
	err := CheckStaged(ctx, clone)
	var leak *LeakError
	if !isErr(err, ErrPlaintextStaged) || !asLeak(err, &leak) {
		t.Fatalf("CheckStaged = %v, want a *LeakError for ErrPlaintextStaged", err)
	}
	if diff := cmp.Diff([]string{"apps/db/secrets.yaml"}, leak.Paths); diff != "" {
		t.Fatalf("leaked paths (-want +got):\n%s", diff)
	}
}

func TestPreCommitHookStopsPlainGitCommit(t *testing.T) {
	ctx := context.Background()
	clone := lockedClone(t)
	ok, err := InstallHook(ctx, clone, testExecutable(t))
	if err != nil || !ok {
		t.Fatalf("InstallHook = %v, %v", ok, err)
	}
	// The hook runs "<exe> crypto guard"; this test binary answers that too.
	writeFile(t, clone, "apps/db/secrets.yaml", "leaked: yes\n")
	run(t, clone, "git", "add", "apps/db/secrets.yaml")
	before := commitCount(t, clone)
	out, err := runErr(clone, "git", "commit", "-q", "-m", "oops")
	if err == nil {
		t.Fatal("git commit of a plaintext secret succeeded despite the hook")
	}
	if !strings.Contains(out, "apps/db/secrets.yaml") {
		t.Errorf("the hook's message does not name the file:\n%s", out)
	}
	if commitCount(t, clone) != before {
		t.Fatal("a commit was made")
	}
	if again, err := InstallHook(ctx, clone, "/other/berth"); err != nil || again {
		t.Fatalf("InstallHook over an existing hook = %v, %v; want it left alone", again, err)
	}
}

func asLeak(err error, target **LeakError) bool {
	return errors.As(err, target)
}

func TestCommitWithoutChangesMakesNoCommit(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	initRepo(t, dir)
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	for i, want := range []bool{true, false} {
		committed, err := Commit(ctx, dir, "install", ".gitattributes", "apps")
		if err != nil {
			t.Fatal(err)
		}
		if committed != want {
			t.Fatalf("commit %d: committed = %v, want %v", i, committed, want)
		}
	}
	if n := commitCount(t, dir); n != 1 {
		t.Fatalf("%d commits, want 1", n)
	}
}

func TestWriteSecretFile(t *testing.T) {
	ctx := context.Background()
	unlocked := newRepo(t)
	initRepo(t, unlocked)
	tests := map[string]struct {
		dir  string
		path string
		want error
	}{
		"secret path, unlocked": {unlocked, "apps/db/secrets.yaml", nil},
		"plain path":            {unlocked, "apps/db/values.yaml", ErrNotSecretPath},
		"secret path, locked":   {lockedClone(t), "apps/web/secrets.yaml", ErrFilterMissing},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := WriteSecretFile(ctx, tc.dir, tc.path, []byte(secretYAML))
			if !isErr(err, tc.want) {
				t.Fatalf("WriteSecretFile = %v, want %v", err, tc.want)
			}
			fi, statErr := os.Stat(filepath.Join(tc.dir, tc.path))
			if tc.want != nil {
				if statErr == nil {
					t.Fatal("the file was written despite the refusal")
				}
				if strings.Contains(err.Error(), "Zr8-cobalt") {
					t.Fatal("the error holds the secret")
				}
				return
			}
			if statErr != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("written file: %v, %v; want mode 0600", fi, statErr)
			}
		})
	}
}
