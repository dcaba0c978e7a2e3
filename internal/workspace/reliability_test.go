package workspace

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestInitMergesTheUsersGitignore(t *testing.T) {
	dir := t.TempDir()
	gitOut(t, dir, "init", "--quiet")
	mine := ".env\nsecrets/*.local\n"
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, dir, "add", ".gitignore")
	gitOut(t, dir, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "--quiet", "-m", "user's ignores")
	if _, err := Init(context.Background(), dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	want := mine + "# berth: local files that must never be committed\n*.tmp-*\n"
	if got := gitOut(t, dir, "show", "HEAD:.gitignore") + "\n"; got != want {
		t.Errorf(".gitignore =\n%s\nwant\n%s", got, want)
	}
	// .env is still ignored.
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("TOKEN=x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := gitOut(t, dir, "status", "--porcelain"); st != "" {
		t.Errorf("status = %q, want .env ignored", st)
	}
}

func TestInitKeepsAGitignoreThatHasBerthsLines(t *testing.T) {
	dir := t.TempDir()
	gitOut(t, dir, "init", "--quiet")
	mine := "*.tmp-*\nnode_modules/"
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(context.Background(), dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != mine {
		t.Errorf(".gitignore = %q, want the user's %q unchanged", b, mine)
	}
}
