package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/secrets"
)

// The crypto commands run in-process, but git runs berth itself as its filter,
// so the tests build the real binary once and point BERTH_FILTER_EXECUTABLE at it.
var berthBinary = struct {
	once sync.Once
	path string
	err  error
	out  []byte
}{}

func cryptoEnv(t *testing.T) {
	t.Helper()
	berthBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-cli-test")
		if err != nil {
			berthBinary.err = err
			return
		}
		berthBinary.path = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", berthBinary.path, "berth.dev/berth/cmd/berth")
		berthBinary.out, berthBinary.err = cmd.CombinedOutput()
	})
	if berthBinary.err != nil {
		t.Fatalf("building berth for git to run as its filter: %v\n%s", berthBinary.err, berthBinary.out)
	}
	t.Setenv("BERTH_FILTER_EXECUTABLE", berthBinary.path)
	cfg := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(cfg, []byte("[user]\n\tname = berth test\n\temail = test@berth.invalid\n[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_CONFIG_GLOBAL", cfg)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
}

type cryptoRun struct {
	code     int
	out, err string
}

// berth runs a command line in-process with home as berth's state directory.
func berth(t *testing.T, home string, args ...string) cryptoRun {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), &App{Out: &out, Err: &errb, Home: home}, args)
	return cryptoRun{code, out.String(), errb.String()}
}

func mustBerth(t *testing.T, home string, args ...string) string {
	t.Helper()
	r := berth(t, home, args...)
	if r.code != 0 {
		t.Fatalf("berth %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const cliSecret = "Hv2-lantern-mackerel-55"

func status(t *testing.T, home, repo string) (cryptoStatus, int) {
	t.Helper()
	r := berth(t, home, "crypto", "-C", repo, "status", "-o", "json")
	var st cryptoStatus
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s%s", err, r.out, r.err)
	}
	if strings.Contains(r.out, cliSecret) || strings.Contains(r.err, cliSecret) {
		t.Fatal("status printed a secret value")
	}
	return st, r.code
}

// TestCryptoLifecycle drives the commands as a team would: init, commit a secret
// with plain git, share with a teammate's age identity, rotate, export for
// git-crypt, lock and unlock.
func TestCryptoLifecycle(t *testing.T) {
	cryptoEnv(t)
	home := t.TempDir()
	repo := t.TempDir()
	git(t, repo, "init", "-q")

	out := mustBerth(t, home, "crypto", "-C", repo, "init")
	if !strings.Contains(out, "Created key") {
		t.Fatalf("init output: %s", out)
	}
	keys, _ := filepath.Glob(filepath.Join(home, "keys", "*.key"))
	if len(keys) != 1 {
		t.Fatalf("keys in berth's home: %v, want one", keys)
	}
	if fi, err := os.Stat(keys[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v, want 0600", fi.Mode(), err)
	}
	if log := git(t, repo, "log", "--format=%s"); !strings.Contains(log, "crypto: encrypt secret files") {
		t.Fatalf("init did not commit .gitattributes:\n%s", log)
	}

	write(t, repo, "apps/db/secrets.yaml", "password: "+cliSecret+"\n")
	git(t, repo, "add", "apps")
	git(t, repo, "commit", "-q", "-m", "install db")
	st, code := status(t, home, repo)
	if code != 0 || st.Locked || !st.Filter {
		t.Fatalf("status: exit %d, %+v", code, st)
	}
	if diff := cmp.Diff([]cryptoFile{{Path: "apps/db/secrets.yaml", Encrypted: true}}, st.Files); diff != "" {
		t.Fatalf("status files (-want +got):\n%s", diff)
	}

	// A teammate with their own home and age identity.
	mateHome := t.TempDir()
	pub := strings.TrimSpace(mustBerth(t, mateHome, "crypto", "identity"))
	if again := strings.TrimSpace(mustBerth(t, mateHome, "crypto", "identity")); again != pub || !strings.HasPrefix(pub, "age1") {
		t.Fatalf("identity printed %q then %q; want one stable age public key", pub, again)
	}
	mustBerth(t, home, "crypto", "-C", repo, "add-recipient", pub)
	clone := filepath.Join(t.TempDir(), "mate")
	git(t, "", "clone", "-q", repo, clone)
	if secrets.IsEncrypted([]byte(read(t, clone, "apps/db/secrets.yaml"))) == false {
		t.Fatal("a fresh clone shows the secret in plaintext")
	}
	mustBerth(t, mateHome, "crypto", "-C", clone, "unlock")
	if got := read(t, clone, "apps/db/secrets.yaml"); got != "password: "+cliSecret+"\n" {
		t.Fatalf("teammate's unlocked file = %q", got)
	}

	// Someone without access is refused with the way out, and nothing changes.
	strangerHome := t.TempDir()
	mustBerth(t, strangerHome, "crypto", "identity")
	stranger := filepath.Join(t.TempDir(), "stranger")
	git(t, "", "clone", "-q", repo, stranger)
	r := berth(t, strangerHome, "crypto", "-C", stranger, "unlock")
	if r.code == 0 || !strings.Contains(r.err, "add-recipient") {
		t.Fatalf("a non-recipient unlock: exit %d, %s", r.code, r.err)
	}

	out = mustBerth(t, home, "crypto", "-C", repo, "rotate")
	if !strings.Contains(out, "version 1") {
		t.Fatalf("rotate output: %s", out)
	}
	if s := git(t, repo, "status", "--porcelain"); s != "" {
		t.Fatalf("rotate left changes uncommitted:\n%s", s)
	}

	// The exported key unlocks a clone with the real git-crypt.
	if gc, err := exec.LookPath("git-crypt"); err != nil {
		t.Log("git-crypt is not installed (apt-get install git-crypt): skipping the git-crypt half of this test")
	} else {
		keyFile := filepath.Join(t.TempDir(), "export.key")
		mustBerth(t, home, "crypto", "-C", repo, "export-key", keyFile)
		if r := berth(t, home, "crypto", "-C", repo, "export-key", keyFile); r.code == 0 {
			t.Fatal("export-key overwrote an existing file without --force")
		}
		gcClone := filepath.Join(t.TempDir(), "gc")
		git(t, "", "clone", "-q", repo, gcClone)
		cmd := exec.Command(gc, "unlock", keyFile)
		cmd.Dir = gcClone
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git-crypt unlock: %v\n%s", err, out)
		}
		if got := read(t, gcClone, "apps/db/secrets.yaml"); got != "password: "+cliSecret+"\n" {
			t.Fatalf("git-crypt unlocked %q", got)
		}
	}

	mustBerth(t, home, "crypto", "-C", repo, "lock")
	if !secrets.IsEncrypted([]byte(read(t, repo, "apps/db/secrets.yaml"))) {
		t.Fatal("lock left the plaintext in the working tree")
	}
	if st, _ := status(t, home, repo); !st.Locked {
		t.Fatal("status does not report the locked repository")
	}
	// Locked: the pre-commit hook stops a plaintext commit made with plain git.
	const leaked = "Wq7-staged-but-refused"
	write(t, repo, "apps/db/secrets.yaml", "password: "+leaked+"\n")
	git(t, repo, "add", "apps")
	cmd := exec.Command("git", "commit", "-q", "-m", "leak")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "apps/db/secrets.yaml") {
		t.Fatalf("git commit of a plaintext secret while locked: err %v\n%s", err, out)
	}
	if st, code := status(t, home, repo); code == 0 || len(st.Files) != 1 || st.Files[0].Encrypted {
		t.Fatalf("status with a staged plaintext secret: exit %d, %+v", code, st.Files)
	}
	git(t, repo, "restore", "--staged", "apps")
	git(t, repo, "checkout", "--", "apps")

	mustBerth(t, home, "crypto", "-C", repo, "unlock", keys[0])
	if got := read(t, repo, "apps/db/secrets.yaml"); got != "password: "+cliSecret+"\n" {
		t.Fatalf("after unlock: %q", got)
	}

	findings, err := secrets.ScanObjects(context.Background(), repo, [][]byte{[]byte(cliSecret), []byte(leaked)})
	if err != nil {
		t.Fatal(err)
	}
	// The refused value was never committed, but 'git add' wrote it as a loose
	// object: the scanner sees that too. The committed secret appears nowhere.
	var secretsFound []int
	for _, f := range findings {
		secretsFound = append(secretsFound, f.Secret)
	}
	if diff := cmp.Diff([]int{1}, secretsFound); diff != "" {
		t.Fatalf("secrets found in git objects (-want +got):\n%s", diff)
	}
}

func TestCryptoErrors(t *testing.T) {
	cryptoEnv(t)
	notRepo := t.TempDir()
	lockedRepo := t.TempDir()
	git(t, lockedRepo, "init", "-q")
	badKey := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(badKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args []string
		want string
	}{
		"not a repository":    {[]string{"crypto", "-C", notRepo, "status"}, "not inside a git working tree"},
		"export while locked": {[]string{"crypto", "-C", lockedRepo, "export-key", filepath.Join(t.TempDir(), "k")}, "berth crypto unlock"},
		"malformed key file":  {[]string{"crypto", "-C", lockedRepo, "unlock", badKey}, "malformed git-crypt key file"},
		"missing key file":    {[]string{"crypto", "-C", lockedRepo, "unlock", filepath.Join(notRepo, "nope.key")}, "no such file"},
		"bad recipient":       {[]string{"crypto", "-C", lockedRepo, "add-recipient", "bob"}, "berth crypto unlock"},
		"no identity":         {[]string{"crypto", "-C", lockedRepo, "unlock"}, "berth crypto identity"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := berth(t, t.TempDir(), tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, want an error containing %q\n%s", tc.want, r.out)
			}
			if !strings.Contains(r.err, tc.want) {
				t.Fatalf("error %q does not contain %q", r.err, tc.want)
			}
		})
	}
}

// TestCryptoStatusFindsHistoryLeak: a secret committed before encryption was set
// up is reported (path and commit, not content) and fails the command.
func TestCryptoStatusFindsHistoryLeak(t *testing.T) {
	cryptoEnv(t)
	home := t.TempDir()
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	write(t, repo, "apps/db/secrets.yaml", "password: "+cliSecret+"\n")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "oops, before berth crypto init")
	commit := strings.TrimSpace(git(t, repo, "rev-parse", "HEAD"))
	mustBerth(t, home, "crypto", "-C", repo, "init")
	// init encrypted the tracked secret from now on...
	blob := git(t, repo, "cat-file", "blob", "HEAD:apps/db/secrets.yaml")
	if !secrets.IsEncrypted([]byte(blob)) {
		t.Fatal("init did not encrypt the secret file that was already tracked")
	}
	// ...but history still has it, and status says where.
	st, code := status(t, home, repo)
	if code == 0 {
		t.Fatal("status succeeded with a plaintext secret in history")
	}
	if len(st.Leaks) != 1 || st.Leaks[0].Path != "apps/db/secrets.yaml" || st.Leaks[0].Commit != commit {
		t.Fatalf("history leaks = %+v, want apps/db/secrets.yaml in %s", st.Leaks, commit)
	}
}

// TestCryptoUnlockFollowsRotation: the error a teammate sees when pulling a
// rotation names the fix, and the fix works.
func TestCryptoUnlockFollowsRotation(t *testing.T) {
	cryptoEnv(t)
	home, mateHome := t.TempDir(), t.TempDir()
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	mustBerth(t, home, "crypto", "-C", repo, "init")
	write(t, repo, "apps/db/secrets.yaml", "password: "+cliSecret+"\n")
	git(t, repo, "add", "apps")
	git(t, repo, "commit", "-q", "-m", "install db")
	mustBerth(t, home, "crypto", "-C", repo, "add-recipient", strings.TrimSpace(mustBerth(t, mateHome, "crypto", "identity")))
	clone := filepath.Join(t.TempDir(), "mate")
	git(t, "", "clone", "-q", repo, clone)
	mustBerth(t, mateHome, "crypto", "-C", clone, "unlock")
	mustBerth(t, home, "crypto", "-C", repo, "rotate")

	pull := exec.Command("git", "pull", "-q", "--ff-only")
	pull.Dir = clone
	out, err := pull.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "berth crypto unlock --rev FETCH_HEAD") {
		t.Fatalf("pulling a rotation: err %v; the message should name the fix:\n%s", err, out)
	}
	if o := mustBerth(t, mateHome, "crypto", "-C", clone, "unlock", "--rev", "FETCH_HEAD"); !strings.Contains(o, "version 1") {
		t.Fatalf("unlock --rev: %s", o)
	}
	git(t, clone, "checkout", "--", ".")
	git(t, clone, "pull", "-q", "--ff-only")
	if got := read(t, clone, "apps/db/secrets.yaml"); got != "password: "+cliSecret+"\n" {
		t.Fatalf("after following the rotation: %q", got)
	}
	if s := git(t, clone, "status", "--porcelain"); s != "" {
		t.Fatalf("dirty after following the rotation:\n%s", s)
	}
}

// TestCryptoStatusInAFreshWorkspace: a workspace without any secret file yet
// (berth init, nothing installed) has nothing to leak; status used to panic
// scanning an empty list of secret blobs.
func TestCryptoStatusInAFreshWorkspace(t *testing.T) {
	cryptoEnv(t)
	home := t.TempDir()
	ws := filepath.Join(t.TempDir(), "ws")
	mustBerth(t, home, "init", ws)
	st, code := status(t, home, ws)
	if code != 0 {
		t.Fatalf("crypto status in a fresh workspace exited %d: %+v", code, st)
	}
	r := berth(t, home, "crypto", "-C", ws, "status")
	if r.code != 0 {
		t.Fatalf("crypto status (text) exited %d\n%s%s", r.code, r.out, r.err)
	}
}
