package secrets

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain doubles as the git filter: git runs this test binary as
// "crypto clean|smudge|diff --key FILE" (what Configure writes for the real berth
// binary), so the tests exercise git's real filter machinery without building berth.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "crypto" {
		os.Exit(runFilter(os.Args[2:]))
	}
	cfg, err := os.CreateTemp("", "berth-secrets-gitconfig")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprint(cfg, "[user]\n\tname = berth test\n\temail = test@berth.invalid\n[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[protocol \"file\"]\n\tallow = always\n")
	cfg.Close()
	os.Setenv("GIT_CONFIG_GLOBAL", cfg.Name())
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	code := m.Run()
	os.Remove(cfg.Name())
	os.Exit(code)
}

func runFilter(args []string) int {
	if len(args) == 1 && args[0] == "guard" {
		if err := CheckStaged(context.Background(), "."); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fs := flag.NewFlagSet("crypto", flag.ContinueOnError)
	keyPath := fs.String("key", "", "")
	file := fs.String("file", "", "")
	reencrypt := fs.Bool("reencrypt", false, "")
	if len(args) < 1 || fs.Parse(args[1:]) != nil {
		fmt.Fprintln(os.Stderr, "usage: crypto clean|smudge|diff --key FILE [--file PATH] [--reencrypt] [PATH]")
		return 2
	}
	key, err := ReadKeyFile(*keyPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch args[0] {
	case "clean":
		err = CleanFile(context.Background(), ".", *file, key, *reencrypt, os.Stdin, os.Stdout)
	case "smudge":
		_, err = Smudge(key, os.Stdin, os.Stdout)
	case "diff":
		err = Diff(key, fs.Arg(0), os.Stdout)
	}
	if err != nil && *file != "" {
		err = fmt.Errorf("%s: %w", *file, err)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func testExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// gitCryptPath returns the real git-crypt binary or skips the test.
func gitCryptPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("git-crypt")
	if err != nil {
		t.Skip("git-crypt is not installed: interop tests need the real binary (Debian/Ubuntu: apt-get install git-crypt)")
	}
	return p
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var b bytes.Buffer
	cmd.Stdout = &b
	cmd.Stderr = &b
	err := cmd.Run()
	return b.String(), err
}

func newRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	run(t, dir, "git", "init", "-q")
	return dir
}

func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// blobAt returns the raw bytes git stores for rev:path.
func blobAt(t *testing.T, dir, rev, path string) []byte {
	t.Helper()
	cmd := exec.Command("git", "cat-file", "blob", rev+":"+path)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git cat-file %s:%s: %v", rev, path, err)
	}
	return out
}

// initRepo runs Init with the test binary as filter and a fresh home.
func initRepo(t *testing.T, dir string, patterns ...string) (*Key, string) {
	t.Helper()
	if patterns == nil {
		patterns = DefaultSecretPaths
	}
	home := t.TempDir()
	res, err := Init(context.Background(), dir, InitOptions{Home: home, Executable: testExecutable(t), Patterns: patterns})
	if err != nil {
		t.Fatal(err)
	}
	k, err := ReadKeyFile(res.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	return k, home
}

func commitCount(t *testing.T, dir string) int {
	t.Helper()
	out, err := runErr(dir, "git", "rev-list", "--count", "--all")
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(out, &n)
	return n
}

func isErr(err, target error) bool { return errors.Is(err, target) }
