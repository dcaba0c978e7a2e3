package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
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

func TestRestoreLeavesSecretFilesReadableByTheOwnerOnly(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	if _, err := secrets.Init(ctx, w.Root, secrets.InitOptions{Home: t.TempDir(), Executable: testcluster.BerthBinary(t)}); err != nil {
		t.Fatal(err)
	}
	gitOut(t, w.Root, "add", ".gitattributes")
	gitOut(t, w.Root, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "--quiet", "-m", "encrypt")
	paths := []string{"apps/web"}
	for _, v := range []string{"1", "2"} {
		err := w.Change(ctx, "web "+v, paths, func() error {
			if err := w.WriteFile("apps/web/app.yaml", []byte("v: "+v+"\n")); err != nil {
				return err
			}
			return secrets.WriteSecretFile(ctx, w.Root, "apps/web/secrets.yaml", []byte("password: pw-"+v+"\n"))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wantMode := func(when string) {
		t.Helper()
		fi, err := os.Stat(w.Abs("apps/web/secrets.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != secrets.FileMode {
			t.Errorf("secrets.yaml %s has mode %o, want %o", when, fi.Mode().Perm(), secrets.FileMode)
		}
	}
	if _, err := w.Restore(ctx, "HEAD~1", "rollback web", paths...); err != nil {
		t.Fatal(err)
	}
	if b, _ := w.ReadFile("apps/web/secrets.yaml"); string(b) != "password: pw-1\n" {
		t.Fatalf("secrets.yaml after restore = %q", b)
	}
	wantMode("after a restore")
	// A failed change puts the file back as at HEAD, with the same mode.
	err := w.Change(ctx, "fails", paths, func() error {
		if err := secrets.WriteSecretFile(ctx, w.Root, "apps/web/secrets.yaml", []byte("password: half\n")); err != nil {
			return err
		}
		return errors.New("render failed")
	})
	if err == nil {
		t.Fatal("the failing change succeeded")
	}
	wantMode("after a failed change")
}
