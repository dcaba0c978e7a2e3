package secrets

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestUnlockInACloneLeavesSecretFilesReadableByTheOwnerOnly(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	key, _ := initRepo(t, dir)
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	writeFile(t, dir, "apps/db/app.yaml", "name: db\n")
	if _, err := Commit(ctx, dir, "install", ".gitattributes", "apps"); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	run(t, "", "git", "clone", "-q", dir, clone)
	if _, err := Unlock(ctx, clone, key, UnlockOptions{Home: t.TempDir(), Executable: testExecutable(t)}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, clone, "apps/db/secrets.yaml"); got != secretYAML {
		t.Fatalf("secrets.yaml after unlock = %q", got)
	}
	for rel, want := range map[string]os.FileMode{"apps/db/secrets.yaml": FileMode, "apps/db/app.yaml": 0o644} {
		fi, err := os.Stat(filepath.Join(clone, rel))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s after unlock has mode %o, want %o", rel, got, want)
		}
	}
	if err := Lock(ctx, clone); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(clone, "apps/db/secrets.yaml")); err != nil || fi.Mode().Perm() != FileMode {
		t.Errorf("secrets.yaml after lock: %v, %v; want mode %o", fi.Mode(), err, FileMode)
	}
}
