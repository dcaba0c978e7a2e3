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
