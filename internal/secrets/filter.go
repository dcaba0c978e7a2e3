package secrets

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
)

// Clean is git's clean filter (`berth crypto clean`): it reads a plaintext file
// and writes what git stores, exactly as `git-crypt clean` would. Unlike git-crypt
// it passes through input that is already a ciphertext of this key, so a
// working-tree file that was left encrypted is not encrypted twice.
func Clean(key *Key, r io.Reader, w io.Writer) error {
	in, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading the file to encrypt: %w", err)
	}
	if IsEncrypted(in) {
		if _, err := Decrypt(key, in); err == nil {
			_, err = w.Write(in)
			return err
		}
	}
	out, err := Encrypt(key, in)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// CleanFile is the clean filter as git runs it on path (relative to the top of
// the repository in dir). With a rotated key, a file encrypted under an older
// version would encrypt differently now and look modified to git although its
// plaintext is unchanged; so when the index already holds a ciphertext of exactly
// this plaintext (under any version of the key), CleanFile keeps it. Rotate passes
// reencrypt to force the newest version.
func CleanFile(ctx context.Context, dir, path string, key *Key, reencrypt bool, r io.Reader, w io.Writer) error {
	if reencrypt || path == "" || len(key.Entries) < 2 {
		return Clean(key, r, w)
	}
	in, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading the file to encrypt: %w", err)
	}
	if staged, err := gitCmd(ctx, dir, nil, "cat-file", "blob", ":"+path); err == nil && IsEncrypted(staged) {
		if plain, err := Decrypt(key, staged); err == nil && bytes.Equal(plain, in) {
			_, err = w.Write(staged)
			return err
		}
	}
	return Clean(key, bytes.NewReader(in), w)
}

// SmudgeResult says what Smudge did with its input.
type SmudgeResult int

const (
	// Decrypted means the input was a ciphertext and was decrypted.
	Decrypted SmudgeResult = iota
	// PassedThrough means the input was not encrypted and was written unchanged, as
	// git-crypt does; the caller should warn that the file is in plaintext in git.
	PassedThrough
)

func (s SmudgeResult) String() string {
	if s == PassedThrough {
		return "passed-through"
	}
	return "decrypted"
}

// Smudge is git's smudge filter (`berth crypto smudge`): it decrypts what git
// stored into the working tree. A file that is not encrypted is written
// unchanged (PassedThrough); a tampered one is an error and nothing is written.
func Smudge(key *Key, r io.Reader, w io.Writer) (SmudgeResult, error) {
	in, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("reading the file to decrypt: %w", err)
	}
	if !IsEncrypted(in) {
		_, err := w.Write(in)
		return PassedThrough, err
	}
	plain, err := Decrypt(key, in)
	if err != nil {
		return 0, err
	}
	_, err = w.Write(plain)
	return Decrypted, err
}

// Diff is git's textconv for secret files (`berth crypto diff FILE`): it writes the
// plaintext of FILE, or FILE itself when it is not encrypted.
func Diff(key *Key, path string, w io.Writer) error {
	in, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	if !IsEncrypted(in) {
		_, err := w.Write(in)
		return err
	}
	plain, err := Decrypt(key, in)
	if err != nil {
		return fmt.Errorf("diff %s: %w", path, err)
	}
	_, err = w.Write(plain)
	return err
}
