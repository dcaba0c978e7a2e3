package secrets

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const secretYAML = "postgres-password: Zr8-cobalt-walrus-91\n"

// TestBerthRepoUnlockedByGitCrypt: a repository berth encrypted is cloned and
// unlocked by the real git-crypt with the key berth exports.
func TestBerthRepoUnlockedByGitCrypt(t *testing.T) {
	gc := gitCryptPath(t)
	ctx := context.Background()
	dir := newRepo(t)
	key, _ := initRepo(t, dir)
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	writeFile(t, dir, "apps/db/app.yaml", "package: postgresql\n")
	if _, err := Commit(ctx, dir, "install db", ".gitattributes", "apps"); err != nil {
		t.Fatal(err)
	}
	stored := blobAt(t, dir, "HEAD", "apps/db/secrets.yaml")
	want, _ := Encrypt(key, []byte(secretYAML))
	if !bytes.Equal(stored, want) {
		t.Fatal("git stored something other than berth's ciphertext of the secret file")
	}
	if got := string(blobAt(t, dir, "HEAD", "apps/db/app.yaml")); got != "package: postgresql\n" {
		t.Fatalf("a non-secret file was changed by the filter: %q", got)
	}
	if got := readFile(t, dir, "apps/db/secrets.yaml"); got != secretYAML {
		t.Fatal("the working tree lost the plaintext after commit")
	}

	exported, _ := key.Export()
	keyFile := filepath.Join(t.TempDir(), "exported.key")
	if err := WriteKeyFile(keyFile, exported); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	run(t, "", "git", "clone", "-q", dir, clone)
	if !IsEncrypted([]byte(readFile(t, clone, "apps/db/secrets.yaml"))) {
		t.Fatal("a fresh clone shows the secret in plaintext")
	}
	run(t, clone, gc, "unlock", keyFile)
	if diff := cmp.Diff(secretYAML, readFile(t, clone, "apps/db/secrets.yaml")); diff != "" {
		t.Fatalf("git-crypt unlocked a different plaintext (-want +got):\n%s", diff)
	}
	if out := run(t, clone, "git", "status", "--porcelain"); out != "" {
		t.Fatalf("after git-crypt unlock the clone is dirty:\n%s", out)
	}
	// git-crypt's own status agrees that the file is encrypted in git.
	if out := run(t, clone, gc, "status", "-e"); !strings.Contains(out, "encrypted: apps/db/secrets.yaml") {
		t.Fatalf("git-crypt status does not list the secret as encrypted:\n%s", out)
	}
	// berth reads the clone git-crypt unlocked.
	k, _, err := RepoKey(ctx, clone)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != exported.ID() {
		t.Fatal("berth read another key from the git-crypt-unlocked clone")
	}
}

// TestGitCryptRepoUnlockedByBerth: a repository git-crypt created and encrypted
// is unlocked, then locked again, by berth.
func TestGitCryptRepoUnlockedByBerth(t *testing.T) {
	gc := gitCryptPath(t)
	ctx := context.Background()
	dir := newRepo(t)
	run(t, dir, gc, "init")
	writeFile(t, dir, ".gitattributes", "secret/** filter=git-crypt diff=git-crypt\n")
	writeFile(t, dir, "secret/token", "api-token: 4f1c-quartz-otter\n")
	writeFile(t, dir, "secret/empty", "")
	writeFile(t, dir, "secret/odd name [*].key", "odd: yes\n")
	writeFile(t, dir, "README", "hello\n")
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "git-crypt repo")
	keyFile := filepath.Join(t.TempDir(), "gc.key")
	run(t, dir, gc, "export-key", keyFile)

	clone := filepath.Join(t.TempDir(), "clone")
	run(t, "", "git", "clone", "-q", dir, clone)
	key, err := ReadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if _, err := Unlock(ctx, clone, key, UnlockOptions{Home: home, Executable: testExecutable(t)}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"secret/token": "api-token: 4f1c-quartz-otter\n", "secret/empty": "", "secret/odd name [*].key": "odd: yes\n", "README": "hello\n"} {
		if got := readFile(t, clone, path); got != want {
			t.Errorf("%s after berth unlock = %q, want %q", path, got, want)
		}
	}
	if out := run(t, clone, "git", "status", "--porcelain"); out != "" {
		t.Fatalf("after berth unlock the clone is dirty (berth's clean differs from git-crypt's):\n%s", out)
	}
	// A change made through berth's filter is readable by git-crypt in the origin.
	writeFile(t, clone, "secret/token", "api-token: rotated-by-berth\n")
	if _, err := Commit(ctx, clone, "change token", "secret/token"); err != nil {
		t.Fatal(err)
	}
	run(t, clone, "git", "push", "-q", "origin", "HEAD:refs/heads/from-berth")
	got, err := gitCryptFilter(t, dir, "smudge", blobAt(t, dir, "from-berth", "secret/token"))
	if err != nil || string(got) != "api-token: rotated-by-berth\n" {
		t.Fatalf("git-crypt smudge of berth's commit = %q, %v", got, err)
	}
	// textconv: git diff shows plaintext through berth's diff filter.
	if out := run(t, clone, "git", "log", "-p", "-1", "--", "secret/token"); !strings.Contains(out, "+api-token: rotated-by-berth") {
		t.Fatalf("git log -p does not show the decrypted change:\n%s", out)
	}

	if err := Lock(ctx, clone); err != nil {
		t.Fatal(err)
	}
	if !IsEncrypted([]byte(readFile(t, clone, "secret/token"))) {
		t.Fatal("after lock the secret is still in plaintext in the working tree")
	}
	if ok, _ := FilterConfigured(ctx, clone); ok {
		t.Fatal("after lock the filter is still configured")
	}
	if out := run(t, clone, "git", "status", "--porcelain"); out != "" {
		t.Fatalf("after lock the clone is dirty:\n%s", out)
	}
	if _, _, err := RepoKey(ctx, clone); !isErr(err, ErrLocked) {
		t.Fatalf("RepoKey after lock: %v, want ErrLocked", err)
	}
}

func TestUnlockWrongKeyChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	initRepo(t, dir)
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	if _, err := Commit(ctx, dir, "install", ".gitattributes", "apps"); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	run(t, "", "git", "clone", "-q", dir, clone)
	before := readFile(t, clone, "apps/db/secrets.yaml")
	wrong, _ := GenerateKey()
	home := t.TempDir()
	_, err := Unlock(ctx, clone, wrong, UnlockOptions{Home: home, Executable: testExecutable(t)})
	if !isErr(err, ErrTampered) || !strings.Contains(err.Error(), "apps/db/secrets.yaml") {
		t.Fatalf("Unlock with a wrong key: %v; want ErrTampered naming the file", err)
	}
	if ok, _ := FilterConfigured(ctx, clone); ok {
		t.Error("a failed unlock configured the filter")
	}
	if readFile(t, clone, "apps/db/secrets.yaml") != before {
		t.Error("a failed unlock changed the working tree")
	}
	if _, err := os.Stat(KeysDir(home)); !os.IsNotExist(err) {
		t.Error("a failed unlock stored the wrong key")
	}
}

func TestInitRefusesSecondKey(t *testing.T) {
	ctx := context.Background()
	// A clone that has the key, and a fresh clone of a repository whose key is
	// only shared with age (no secret files yet): a second key would split the team.
	unlocked := newRepo(t)
	key, _ := initRepo(t, unlocked)
	if _, err := AddRecipient(ctx, unlocked, key, newIdentity(t).Recipient().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := Commit(ctx, unlocked, "share", ".gitattributes", RecipientsDir); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	run(t, "", "git", "clone", "-q", unlocked, fresh)
	for name, dir := range map[string]string{"unlocked": unlocked, "fresh clone": fresh} {
		t.Run(name, func(t *testing.T) {
			home := t.TempDir()
			_, err := Init(ctx, dir, InitOptions{Home: home, Executable: testExecutable(t)})
			if err == nil || !strings.Contains(err.Error(), "already has a key") {
				t.Fatalf("second Init: %v; want a refusal", err)
			}
			if _, err := os.Stat(KeysDir(home)); !os.IsNotExist(err) {
				t.Fatal("a refused Init stored a key")
			}
		})
	}
}

func TestStoreKeyRecordsAbsolutePath(t *testing.T) {
	t.Chdir(t.TempDir())
	key, _ := GenerateKey()
	path, err := StoreKey("relative-home", key)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(path) {
		t.Fatalf("StoreKey returned %q; git runs the filter elsewhere, so it must be absolute", path)
	}
}

func TestWriteAttributesKeepsUserLines(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	writeFile(t, dir, ".gitattributes", "*.png binary\n")
	changed, err := WriteAttributes(ctx, dir, []string{"b/**", "a.yaml"})
	if err != nil || !changed {
		t.Fatalf("WriteAttributes = %v, %v", changed, err)
	}
	changed, err = WriteAttributes(ctx, dir, []string{"a.yaml", "b/**"})
	if err != nil || changed {
		t.Fatalf("second WriteAttributes with the same patterns = %v, %v; want no change", changed, err)
	}
	if _, err := WriteAttributes(ctx, dir, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, dir, ".gitattributes")
	want := "*.png binary\n\n" + attrBegin + "\nc filter=git-crypt diff=git-crypt\n.gitattributes !filter !diff\n.berth/crypto/** !filter !diff\n" + attrEnd + "\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf(".gitattributes (-want +got):\n%s", diff)
	}
	secret, err := IsSecretPath(ctx, dir, "c", "a.yaml", ".gitattributes", "x.png")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{"c": true, "a.yaml": false, ".gitattributes": false, "x.png": false}, secret); diff != "" {
		t.Fatalf("IsSecretPath (-want +got):\n%s", diff)
	}
	if _, err := WriteAttributes(ctx, dir, []string{"has space"}); err == nil {
		t.Fatal("a pattern with a space was accepted")
	}
}

// TestTamperedBlobInRepository: a commit whose secret file was altered after
// encryption fails to check out (the filter is required) and the failure names
// the file; berth's unlock of a clone refuses it before changing anything.
func TestTamperedBlobInRepository(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	key, _ := initRepo(t, dir)
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	if _, err := Commit(ctx, dir, "install", ".gitattributes", "apps"); err != nil {
		t.Fatal(err)
	}
	// An attacker (or a bad merge tool) with push access flips a byte.
	ct := blobAt(t, dir, "HEAD", "apps/db/secrets.yaml")
	ct[len(ct)-2] ^= 0x20
	attacker := filepath.Join(t.TempDir(), "attacker")
	run(t, "", "git", "clone", "-q", dir, attacker)
	if err := os.WriteFile(filepath.Join(attacker, "apps/db/secrets.yaml"), ct, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, attacker, "git", "commit", "-q", "-am", "tamper")
	run(t, attacker, "git", "push", "-q", "origin", "HEAD:refs/heads/tampered")

	out, err := runErr(dir, "git", "checkout", "-q", "tampered")
	if err == nil {
		t.Fatal("git checked out a tampered secret file")
	}
	if !strings.Contains(out, "apps/db/secrets.yaml") || !strings.Contains(out, "tampered") {
		t.Fatalf("the checkout error does not name the file and the cause:\n%s", out)
	}
	t.Logf("git checkout of the tampered commit:\n%s", out)

	clone := filepath.Join(t.TempDir(), "clone")
	run(t, "", "git", "clone", "-q", "--branch", "tampered", dir, clone)
	_, err = Unlock(ctx, clone, key, UnlockOptions{Home: t.TempDir(), Executable: testExecutable(t)})
	if !isErr(err, ErrTampered) {
		t.Fatalf("Unlock of a tampered clone: %v, want ErrTampered", err)
	}
}

func TestUnlockRefusesNamedKey(t *testing.T) {
	key, _ := GenerateKey()
	key.Name = "ops"
	_, err := Unlock(context.Background(), newRepo(t), key, UnlockOptions{Home: t.TempDir(), Executable: testExecutable(t)})
	if !isErr(err, ErrNamedKey) {
		t.Fatalf("Unlock with a named key: %v, want ErrNamedKey", err)
	}
}

func TestUnlockRefusesDirtyTree(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	writeFile(t, dir, "README", "a\n")
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "a")
	writeFile(t, dir, "README", "b\n")
	key, _ := GenerateKey()
	_, err := Unlock(ctx, dir, key, UnlockOptions{Home: t.TempDir(), Executable: testExecutable(t)})
	if !isErr(err, ErrDirty) || !strings.Contains(err.Error(), "README") {
		t.Fatalf("Unlock of a dirty tree: %v, want ErrDirty naming README", err)
	}
}

// TestFilterCommandQuoting: git runs the filter through the shell, so a home
// directory with spaces and quotes must still reach the filter intact.
func TestFilterCommandQuoting(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	home := filepath.Join(t.TempDir(), `it's a "home" $HOME`)
	res, err := Init(ctx, dir, InitOptions{Home: home, Executable: testExecutable(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.KeyPath, home) {
		t.Fatalf("key stored at %s, outside %s", res.KeyPath, home)
	}
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	if _, err := Commit(ctx, dir, "install", ".gitattributes", "apps"); err != nil {
		t.Fatal(err)
	}
	key, err := ReadKeyFile(res.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Encrypt(key, []byte(secretYAML))
	if !bytes.Equal(blobAt(t, dir, "HEAD", "apps/db/secrets.yaml"), want) {
		t.Fatal("the filter did not encrypt with the key under the quoted path")
	}
}
