package secrets

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// gitCryptRepo returns a repository whose git-crypt key is key, as
// `git-crypt unlock` would leave it, for running git-crypt's filters directly.
func gitCryptRepo(t *testing.T, key *Key) string {
	t.Helper()
	dir := newRepo(t)
	b, err := key.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	kd := filepath.Join(dir, ".git", "git-crypt", "keys")
	if err := os.MkdirAll(kd, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kd, "default"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func gitCryptFilter(t *testing.T, dir, verb string, in []byte) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(gitCryptPath(t), verb)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("git-crypt %s: %s", verb, stderr.String())
	}
	return out, err
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func plaintexts(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"empty":              {},
		"short":              []byte("password: hunter2\n"),
		"one block":          bytes.Repeat([]byte("a"), 16),
		"block plus one":     bytes.Repeat([]byte("b"), 17),
		"binary 100k":        randomBytes(t, 100_000),
		"looks encrypted":    append(bytes.Clone(Header), "not really"...),
		"over 1024 boundary": randomBytes(t, 1025),
	}
}

func TestEncryptMatchesGitCrypt(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := gitCryptRepo(t, key)
	for name, plain := range plaintexts(t) {
		t.Run(name, func(t *testing.T) {
			ours, err := Encrypt(key, plain)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := gitCryptFilter(t, dir, "clean", plain)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, theirs) {
				t.Fatalf("berth's ciphertext differs from git-crypt's:\nberth     %x\ngit-crypt %x", head(ours), head(theirs))
			}
			back, err := gitCryptFilter(t, dir, "smudge", ours)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, plain) {
				t.Fatal("git-crypt smudge of berth's ciphertext does not give the plaintext back")
			}
			got, err := Decrypt(key, theirs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatal("berth's decryption of git-crypt's ciphertext does not give the plaintext back")
			}
		})
	}
}

func head(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}

func TestEncryptIsDeterministic(t *testing.T) {
	key, _ := GenerateKey()
	a, _ := Encrypt(key, []byte("same"))
	b, _ := Encrypt(key, []byte("same"))
	c, _ := Encrypt(key, []byte("other"))
	if !bytes.Equal(a, b) {
		t.Error("the same plaintext encrypted twice gave different ciphertexts; git diffs would never be stable")
	}
	if bytes.Equal(a[:Overhead], c[:Overhead]) {
		t.Error("different plaintexts share a nonce")
	}
	if len(a) != Overhead+len("same") {
		t.Errorf("ciphertext length = %d, want %d", len(a), Overhead+4)
	}
}

func TestDecryptRejects(t *testing.T) {
	key, _ := GenerateKey()
	other, _ := GenerateKey()
	plain := []byte("database-password: s3cr3t-value\n")
	ct, err := Encrypt(key, plain)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(ct)
		b[i] ^= 0x01
		return b
	}
	tests := map[string]struct {
		key  *Key
		in   []byte
		want error
	}{
		"body bit flipped":    {key, flip(len(ct) - 1), ErrTampered},
		"nonce bit flipped":   {key, flip(len(Header)), ErrTampered},
		"header bit flipped":  {key, flip(1), ErrNotEncrypted},
		"wrong key":           {other, ct, ErrTampered},
		"truncated body":      {key, ct[:len(ct)-1], ErrTampered},
		"truncated nonce":     {key, ct[:Overhead-1], ErrTruncated},
		"truncated header":    {key, ct[:5], ErrTruncated},
		"header only":         {key, ct[:len(Header)], ErrTruncated},
		"empty file":          {key, nil, ErrNotEncrypted},
		"plaintext":           {key, plain, ErrNotEncrypted},
		"extra byte appended": {key, append(bytes.Clone(ct), 0), ErrTampered},
		"key without entries": {&Key{}, ct, ErrNoKeyEntries},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Decrypt(tc.key, tc.in)
			if !isErr(err, tc.want) {
				t.Fatalf("Decrypt error = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Fatal("Decrypt returned plaintext along with an error")
			}
			if err != nil && bytes.Contains([]byte(err.Error()), plain) {
				t.Fatal("the error message contains the plaintext")
			}
		})
	}
}

func TestGitCryptRejectsWhatBerthRejects(t *testing.T) {
	key, _ := GenerateKey()
	dir := gitCryptRepo(t, key)
	ct, _ := Encrypt(key, []byte("a secret"))
	ct[len(ct)-1] ^= 0x80
	if _, err := gitCryptFilter(t, dir, "smudge", ct); err == nil {
		t.Fatal("git-crypt accepted a tampered file; the tamper test vectors are wrong")
	}
	if _, err := Decrypt(key, ct); !isErr(err, ErrTampered) {
		t.Fatalf("berth: %v, want ErrTampered", err)
	}
}

func TestDecryptAfterRotation(t *testing.T) {
	key, _ := GenerateKey()
	old, _ := Encrypt(key, []byte("before rotation"))
	if err := key.Rotate(); err != nil {
		t.Fatal(err)
	}
	latest, _ := key.Latest()
	if latest.Version != 1 {
		t.Fatalf("latest version after rotation = %d, want 1", latest.Version)
	}
	got, err := Decrypt(key, old)
	if err != nil {
		t.Fatalf("history encrypted before the rotation no longer decrypts: %v", err)
	}
	if diff := cmp.Diff("before rotation", string(got)); diff != "" {
		t.Fatal(diff)
	}
	fresh, _ := Encrypt(key, []byte("before rotation"))
	if bytes.Equal(fresh, old) {
		t.Fatal("after rotation the same plaintext still encrypts with the old key")
	}
	exported, err := key.Export()
	if err != nil {
		t.Fatal(err)
	}
	if len(exported.Entries) != 1 || exported.Entries[0].Version != 0 || exported.Entries[0].AESKey != latest.AESKey {
		t.Fatalf("Export = %d entries (version %d); want only the latest key as version 0", len(exported.Entries), exported.Entries[0].Version)
	}
	if _, err := Decrypt(exported, fresh); err != nil {
		t.Fatalf("the exported key does not decrypt new files: %v", err)
	}
	if _, err := Decrypt(exported, old); !isErr(err, ErrTampered) {
		t.Fatalf("the exported key decrypts pre-rotation files (err %v); it should hold only the new key", err)
	}
}

func TestGitCryptReadsExportedRotatedKey(t *testing.T) {
	key, _ := GenerateKey()
	if err := key.Rotate(); err != nil {
		t.Fatal(err)
	}
	exported, _ := key.Export()
	dir := gitCryptRepo(t, exported)
	ct, _ := Encrypt(key, []byte("after rotation"))
	theirs, err := gitCryptFilter(t, dir, "clean", []byte("after rotation"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ct, theirs) {
		t.Fatal("git-crypt with the exported key encrypts differently from berth with the rotated key")
	}
}

func TestCleanSmudge(t *testing.T) {
	key, _ := GenerateKey()
	plain := []byte("token: abc\n")
	var enc bytes.Buffer
	if err := Clean(key, bytes.NewReader(plain), &enc); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := Clean(key, bytes.NewReader(enc.Bytes()), &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc.Bytes(), again.Bytes()) {
		t.Error("cleaning a ciphertext of this key encrypted it a second time")
	}
	var dec bytes.Buffer
	res, err := Smudge(key, bytes.NewReader(enc.Bytes()), &dec)
	if err != nil || res != Decrypted || !bytes.Equal(dec.Bytes(), plain) {
		t.Fatalf("Smudge = %v, %v; plaintext matches: %v", res, err, bytes.Equal(dec.Bytes(), plain))
	}
	dec.Reset()
	res, err = Smudge(key, bytes.NewReader(plain), &dec)
	if err != nil || res != PassedThrough || !bytes.Equal(dec.Bytes(), plain) {
		t.Fatalf("Smudge of a plaintext = %v, %v; want it passed through unchanged", res, err)
	}
	bad := bytes.Clone(enc.Bytes())
	bad[len(bad)-1] ^= 1
	dec.Reset()
	if _, err := Smudge(key, bytes.NewReader(bad), &dec); !isErr(err, ErrTampered) || dec.Len() != 0 {
		t.Fatalf("Smudge of a tampered file: err %v, wrote %d bytes; want ErrTampered and nothing written", err, dec.Len())
	}
}

func BenchmarkEncrypt(b *testing.B) {
	key, _ := GenerateKey()
	plain := randomBytes(b, 64<<10)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := Encrypt(key, plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	key, _ := GenerateKey()
	ct, _ := Encrypt(key, randomBytes(b, 64<<10))
	b.SetBytes(int64(len(ct)))
	for b.Loop() {
		if _, err := Decrypt(key, ct); err != nil {
			b.Fatal(err)
		}
	}
}
