package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"berth.dev/berth/internal/atomicfile"
)

// Files in RecipientsDir: the public keys of the teammates who may unlock, and the
// repository's key (every entry, so history stays readable) encrypted to all of
// them with age.
const (
	RecipientsFile = RecipientsDir + "/recipients"
	WrappedKeyFile = RecipientsDir + "/key.age"
)

// ErrNotRecipient means none of the given age identities can unwrap the key.
var ErrNotRecipient = errors.New("none of your age identities is a recipient of this repository's key")

// Recipients reads the repository's recipients (age public keys), sorted. A
// repository without the file has none.
func Recipients(ctx context.Context, dir string) ([]string, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(top, RecipientsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", RecipientsFile, err)
	}
	var res []string
	for i, l := range strings.Split(string(b), "\n") {
		l, _, _ = strings.Cut(l, "#")
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if _, err := parseRecipient(l); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", RecipientsFile, i+1, err)
		}
		res = append(res, l)
	}
	slices.Sort(res)
	return slices.Compact(res), nil
}

func parseRecipient(s string) (age.Recipient, error) {
	rs, err := age.ParseRecipients(strings.NewReader(s))
	if err == nil && len(rs) != 1 {
		err = fmt.Errorf("want exactly one key, found %d", len(rs))
	}
	if err != nil {
		return nil, fmt.Errorf("%q is not an age public key (one starting with age1, from 'berth crypto identity' or age-keygen): %w", s, err)
	}
	return rs[0], nil
}

// AddRecipient lets the holder of an age identity unlock the repository: it adds
// the public key to RecipientsFile and re-wraps the key for everyone. It returns
// the paths it changed, for the caller to commit.
func AddRecipient(ctx context.Context, dir string, key *Key, recipient string) ([]string, error) {
	recipient = strings.TrimSpace(recipient)
	if _, err := parseRecipient(recipient); err != nil {
		return nil, err
	}
	rs, err := Recipients(ctx, dir)
	if err != nil {
		return nil, err
	}
	return writeRecipients(ctx, dir, key, append(rs, recipient))
}

// RemoveRecipient takes a public key off RecipientsFile and re-wraps the key for
// the others. The removed teammate still knows the current key and every secret
// it protected: rotate the key (and change the secret values) as well.
func RemoveRecipient(ctx context.Context, dir string, key *Key, recipient string) ([]string, error) {
	recipient = strings.TrimSpace(recipient)
	rs, err := Recipients(ctx, dir)
	if err != nil {
		return nil, err
	}
	i := slices.Index(rs, recipient)
	if i < 0 {
		return nil, fmt.Errorf("%s is not a recipient of this repository (see 'berth crypto status')", recipient)
	}
	return writeRecipients(ctx, dir, key, slices.Delete(rs, i, i+1))
}

// Rewrap encrypts key again to the current recipients (after a rotation).
func Rewrap(ctx context.Context, dir string, key *Key) ([]string, error) {
	rs, err := Recipients(ctx, dir)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, nil
	}
	return writeRecipients(ctx, dir, key, rs)
}

func writeRecipients(ctx context.Context, dir string, key *Key, rs []string) ([]string, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	slices.Sort(rs)
	rs = slices.Compact(rs)
	listPath := filepath.Join(top, RecipientsFile)
	wrappedPath := filepath.Join(top, WrappedKeyFile)
	changed := []string{RecipientsFile, WrappedKeyFile}
	if len(rs) == 0 {
		for _, p := range []string{wrappedPath, listPath} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
		return changed, nil
	}
	var recipients []age.Recipient
	for _, r := range rs {
		rec, err := parseRecipient(r)
		if err != nil {
			return nil, err
		}
		recipients = append(recipients, rec)
	}
	plain, err := key.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, recipients...)
	if err != nil {
		return nil, fmt.Errorf("wrapping the key with age: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	list := "# age public keys of the people who can unlock this repository's secrets.\n" +
		"# Managed by 'berth crypto add-recipient' and 'berth crypto remove-recipient'.\n" +
		strings.Join(rs, "\n") + "\n"
	if err := atomicfile.Write(listPath, []byte(list), 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(wrappedPath, buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return changed, nil
}

// UnwrapKey decrypts the repository's wrapped key, as in the working tree, with
// age identities (the contents of an age identity file such as age-keygen writes).
func UnwrapKey(ctx context.Context, dir string, identities io.Reader) (*Key, error) {
	return UnwrapKeyAt(ctx, dir, "", identities)
}

// UnwrapKeyAt is UnwrapKey with the wrapped key as committed at rev (for example
// FETCH_HEAD, after a pull failed because a teammate rotated the key); the
// working tree's copy when rev is empty.
func UnwrapKeyAt(ctx context.Context, dir, rev string, identities io.Reader) (*Key, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	ids, err := age.ParseIdentities(identities)
	if err != nil {
		return nil, fmt.Errorf("reading age identities: %w", err)
	}
	var wrapped []byte
	if rev == "" {
		wrapped, err = os.ReadFile(filepath.Join(top, WrappedKeyFile))
	} else {
		wrapped, err = gitCmd(ctx, top, nil, "cat-file", "blob", rev+":"+WrappedKeyFile)
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || rev != "" {
			return nil, fmt.Errorf("%s has no %s%s: nobody has been added with 'berth crypto add-recipient'; ask a teammate for the key file instead (%w)", top, WrappedKeyFile, atRev(rev), err)
		}
		return nil, err
	}
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(wrapped)), ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("%s%s: %w; ask a teammate to run 'berth crypto add-recipient' with your public key ('berth crypto identity')", WrappedKeyFile, atRev(rev), ErrNotRecipient)
		}
		return nil, fmt.Errorf("%s%s: %w", WrappedKeyFile, atRev(rev), err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", WrappedKeyFile, atRev(rev), err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", WrappedKeyFile, atRev(rev), err)
	}
	return k, nil
}

func atRev(rev string) string {
	if rev == "" {
		return ""
	}
	return " at " + rev
}

// ErrOtherKey means a key offered to refresh this clone's key is not a later
// version of it.
var ErrOtherKey = errors.New("not a newer version of this clone's key")

// RefreshKey adds the newer versions in key (a teammate's rotation, unwrapped
// with UnwrapKeyAt) to the key this clone is unlocked with. It accepts only a key
// with the same ID whose common versions are identical, so a wrapped key pushed
// by someone who never held the key cannot replace it. It needs no clean tree:
// nothing is checked out; retry the git command that failed.
func RefreshKey(ctx context.Context, dir string, key *Key) (*Key, error) {
	current, path, err := RepoKey(ctx, dir)
	if err != nil {
		return nil, err
	}
	if _, ok, err := gitConfigGet(ctx, dir, gitConfigKey); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("this clone was unlocked by git-crypt; lock it ('git-crypt lock') and unlock with berth")
	}
	if key.ID() != current.ID() {
		return nil, fmt.Errorf("key %s: %w (%s); to switch keys, 'berth crypto lock' then 'berth crypto unlock'", key.ID(), ErrOtherKey, current.ID())
	}
	merged, err := mergeKeys(current, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOtherKey, err)
	}
	if err := WriteKeyFile(path, merged); err != nil {
		return nil, err
	}
	return merged, nil
}

// RotateResult is what Rotate changed.
type RotateResult struct {
	Version uint32
	// Paths are the re-encrypted secret files and re-wrapped key files, staged.
	Paths []string
}

// Rotate adds a new key version that encrypts everything from now on: it stores
// the rotated key (old entries kept, so history still decrypts), re-wraps it for
// the recipients and re-encrypts every secret file into the index. The caller
// commits Paths. The repository must be unlocked by berth and clean.
func Rotate(ctx context.Context, dir string) (*RotateResult, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	if err := requireClean(ctx, top); err != nil {
		return nil, err
	}
	key, keyPath, err := RepoKey(ctx, top)
	if err != nil {
		return nil, err
	}
	if _, ok, err := gitConfigGet(ctx, top, gitConfigKey); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("this clone was unlocked by git-crypt (%s); unlock it with 'berth crypto unlock %s' first", keyPath, keyPath)
	}
	if err := key.Rotate(); err != nil {
		return nil, err
	}
	if err := WriteKeyFile(keyPath, key); err != nil {
		return nil, err
	}
	wrapped, err := Rewrap(ctx, top, key)
	if err != nil {
		return nil, err
	}
	files, err := SecretFiles(ctx, top)
	if err != nil {
		return nil, err
	}
	if len(files) > 0 {
		// The clean filter keeps unchanged files' old ciphertexts (see CleanFile);
		// here every file must move to the new version.
		clean, _, err := gitConfigGet(ctx, top, "filter.git-crypt.clean")
		if err != nil {
			return nil, err
		}
		args := append([]string{"-c", "filter.git-crypt.clean=" + clean + " --reencrypt", "add", "--renormalize", "--"}, files...)
		if _, err := gitCmd(ctx, top, nil, args...); err != nil {
			return nil, fmt.Errorf("re-encrypting the secret files: %w", err)
		}
	}
	latest, _ := key.Latest()
	paths := append(files, wrapped...)
	return &RotateResult{Version: latest.Version, Paths: paths}, nil
}
