package secrets

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"
)

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRecipientsShareAndRevoke(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	key, _ := initRepo(t, dir)
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	alice, bob, eve := newIdentity(t), newIdentity(t), newIdentity(t)
	for _, id := range []*age.X25519Identity{alice, bob} {
		changed, err := AddRecipient(ctx, dir, key, id.Recipient().String())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{RecipientsFile, WrappedKeyFile}, changed); diff != "" {
			t.Fatalf("changed paths (-want +got):\n%s", diff)
		}
	}
	if _, err := Commit(ctx, dir, "share", ".gitattributes", "apps", RecipientsDir); err != nil {
		t.Fatal(err)
	}
	rs, err := Recipients(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{alice.Recipient().String(), bob.Recipient().String()}
	if diff := cmp.Diff(slices.Sorted(slices.Values(want)), rs); diff != "" {
		t.Fatalf("recipients (-want +got):\n%s", diff)
	}
	if wrapped := blobAt(t, dir, "HEAD", WrappedKeyFile); IsEncrypted(wrapped) || !bytes.HasPrefix(wrapped, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Fatal("the wrapped key is not an armored age file as committed")
	}

	// Bob clones and unlocks with his own identity.
	clone := filepath.Join(t.TempDir(), "bob")
	run(t, "", "git", "clone", "-q", dir, clone)
	got, err := UnwrapKey(ctx, clone, strings.NewReader(bob.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unlock(ctx, clone, got, UnlockOptions{Home: t.TempDir(), Executable: testExecutable(t)}); err != nil {
		t.Fatal(err)
	}
	if readFile(t, clone, "apps/db/secrets.yaml") != secretYAML {
		t.Fatal("bob's unlocked clone does not show the plaintext")
	}
	if _, err := UnwrapKey(ctx, clone, strings.NewReader(eve.String())); !isErr(err, ErrNotRecipient) {
		t.Fatalf("eve unwrapped the key: %v", err)
	}

	// Removing bob: he can no longer unwrap what is committed next.
	if _, err := RemoveRecipient(ctx, dir, key, bob.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := UnwrapKey(ctx, dir, strings.NewReader(bob.String())); !isErr(err, ErrNotRecipient) {
		t.Fatalf("bob still unwraps after removal: %v", err)
	}
	if _, err := UnwrapKey(ctx, dir, strings.NewReader(alice.String())); err != nil {
		t.Fatalf("alice lost access when bob was removed: %v", err)
	}
	if _, err := RemoveRecipient(ctx, dir, key, eve.Recipient().String()); err == nil {
		t.Fatal("removing someone who is not a recipient succeeded")
	}
	if _, err := AddRecipient(ctx, dir, key, "ssh-rsa nonsense"); err == nil || !strings.Contains(err.Error(), "age public key") {
		t.Fatalf("a bad recipient was accepted or explained badly: %v", err)
	}
}

func TestRotate(t *testing.T) {
	gc := gitCryptPath(t)
	ctx := context.Background()
	dir := newRepo(t)
	key, _ := initRepo(t, dir)
	alice := newIdentity(t)
	writeFile(t, dir, "apps/db/secrets.yaml", secretYAML)
	if _, err := AddRecipient(ctx, dir, key, alice.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := Commit(ctx, dir, "install", ".gitattributes", "apps", RecipientsDir); err != nil {
		t.Fatal(err)
	}
	oldBlob := blobAt(t, dir, "HEAD", "apps/db/secrets.yaml")

	res, err := Rotate(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 1 {
		t.Fatalf("rotated to version %d, want 1", res.Version)
	}
	if _, err := Commit(ctx, dir, "rotate", res.Paths...); err != nil {
		t.Fatal(err)
	}
	newBlob := blobAt(t, dir, "HEAD", "apps/db/secrets.yaml")
	if bytes.Equal(oldBlob, newBlob) {
		t.Fatal("rotation did not re-encrypt the secret file")
	}
	rotated, _, err := RepoKey(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated.Entries) != 2 {
		t.Fatalf("the stored key has %d entries after rotation, want 2 (old kept for history)", len(rotated.Entries))
	}
	if _, err := Decrypt(key, newBlob); !isErr(err, ErrTampered) {
		t.Fatal("the pre-rotation key still decrypts the new version")
	}
	if got, err := Decrypt(rotated, oldBlob); err != nil || string(got) != secretYAML {
		t.Fatalf("history no longer decrypts with the rotated key: %v", err)
	}
	if out := run(t, dir, "git", "status", "--porcelain"); out != "" {
		t.Fatalf("after rotate and commit the tree is dirty:\n%s", out)
	}
	// The recipient gets the rotated key, history included.
	unwrapped, err := UnwrapKey(ctx, dir, strings.NewReader(alice.String()))
	if err != nil {
		t.Fatal(err)
	}
	if unwrapped.ID() != rotated.ID() || len(unwrapped.Entries) != 2 {
		t.Fatal("the re-wrapped key is not the rotated key")
	}
	// git-crypt unlocks the rotated repository with the exported key.
	exported, _ := rotated.Export()
	keyFile := filepath.Join(t.TempDir(), "k")
	if err := WriteKeyFile(keyFile, exported); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	run(t, "", "git", "clone", "-q", dir, clone)
	run(t, clone, gc, "unlock", keyFile)
	if readFile(t, clone, "apps/db/secrets.yaml") != secretYAML {
		t.Fatal("git-crypt cannot read the rotated repository with the exported key")
	}
}

// TestTeammatePullsRotation: a teammate's clone, unlocked with the pre-rotation
// key, cannot check out the rotated files; refreshing the key from the fetched
// commit fixes it, and neither old nor new files then look modified to git.
func TestTeammatePullsRotation(t *testing.T) {
	ctx := context.Background()
	owner := newRepo(t)
	key, _ := initRepo(t, owner)
	mate := newIdentity(t)
	writeFile(t, owner, "apps/db/secrets.yaml", secretYAML)
	if _, err := AddRecipient(ctx, owner, key, mate.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := Commit(ctx, owner, "install", ".gitattributes", "apps", RecipientsDir); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "mate")
	run(t, "", "git", "clone", "-q", owner, clone)
	mateKey, err := UnwrapKey(ctx, clone, strings.NewReader(mate.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unlock(ctx, clone, mateKey, UnlockOptions{Home: t.TempDir(), Executable: testExecutable(t)}); err != nil {
		t.Fatal(err)
	}

	res, err := Rotate(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Commit(ctx, owner, "rotate", res.Paths...); err != nil {
		t.Fatal(err)
	}
	// The owner can go back to the pre-rotation commit and return; nothing looks modified.
	run(t, owner, "git", "checkout", "-q", "HEAD~1")
	if out := run(t, owner, "git", "status", "--porcelain"); out != "" || readFile(t, owner, "apps/db/secrets.yaml") != secretYAML {
		t.Fatalf("pre-rotation commit after rotation: status %q", out)
	}
	run(t, owner, "git", "checkout", "-q", "main")

	out, err := runErr(clone, "git", "pull", "-q", "--ff-only")
	if err == nil {
		t.Fatal("the teammate pulled files encrypted with a key version they do not have")
	}
	if !strings.Contains(out, "apps/db/secrets.yaml") {
		t.Fatalf("the pull error does not name the file:\n%s", out)
	}
	newer, err := UnwrapKeyAt(ctx, clone, "FETCH_HEAD", strings.NewReader(mate.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RefreshKey(ctx, clone, newer); err != nil {
		t.Fatal(err)
	}
	run(t, clone, "git", "checkout", "--", ".")
	if out := run(t, clone, "git", "status", "--porcelain"); out != "" {
		t.Fatalf("with the refreshed key, files of the old version look modified:\n%s", out)
	}
	run(t, clone, "git", "pull", "-q", "--ff-only")
	if readFile(t, clone, "apps/db/secrets.yaml") != secretYAML {
		t.Fatal("the teammate does not see the plaintext after the pull")
	}
	if out := run(t, clone, "git", "status", "--porcelain"); out != "" {
		t.Fatalf("after the pull the clone is dirty:\n%s", out)
	}

	stranger, _ := GenerateKey()
	if _, err := RefreshKey(ctx, clone, stranger); !isErr(err, ErrOtherKey) {
		t.Fatalf("RefreshKey with an unrelated key: %v, want ErrOtherKey", err)
	}
}
