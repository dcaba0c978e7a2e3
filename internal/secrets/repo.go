package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrLocked means the repository has no key configured: secret files hold
	// ciphertext, and git would commit new secret files in plaintext.
	ErrLocked = errors.New("repository is locked")
	// ErrDirty means a command that rewrites the working tree found uncommitted
	// changes it could overwrite.
	ErrDirty = errors.New("working tree has uncommitted changes")
)

// gitConfigKey records, in the repository's .git/config, which key file in berth's
// home this clone uses.
const gitConfigKey = "berth.crypto.key"

// Filter describes how git runs berth as its git-crypt filter.
type Filter struct {
	// Executable is the berth binary (os.Executable in the CLI).
	Executable string
	// KeyPath is the key file the filter reads.
	KeyPath string
}

func (f Filter) command(verb string) string {
	cmd := fmt.Sprintf("%s crypto %s --key %s", shellQuote(f.Executable), verb, shellQuote(f.KeyPath))
	if verb != "diff" {
		// git replaces %f with the file's path, so errors can name the file.
		cmd += " --file %f"
	}
	return cmd
}

// Configure wires the filter into the repository's .git/config under git-crypt's
// names (filter.git-crypt, diff.git-crypt), so .gitattributes written by either
// tool work with both. required=true makes git fail rather than store plaintext
// when the filter fails.
func Configure(ctx context.Context, dir string, f Filter) error {
	if f.Executable == "" || f.KeyPath == "" {
		return errors.New("configuring the git filter: the berth executable and the key path are both required")
	}
	for _, kv := range [][2]string{
		{"filter.git-crypt.smudge", f.command("smudge")},
		{"filter.git-crypt.clean", f.command("clean")},
		{"filter.git-crypt.required", "true"},
		{"diff.git-crypt.textconv", f.command("diff")},
		{gitConfigKey, f.KeyPath},
	} {
		if _, err := gitCmd(ctx, dir, nil, "config", "--local", kv[0], kv[1]); err != nil {
			return fmt.Errorf("configuring the git filter: %w", err)
		}
	}
	return nil
}

// Deconfigure removes the filter from .git/config.
func Deconfigure(ctx context.Context, dir string) error {
	for _, section := range []string{"filter.git-crypt", "diff.git-crypt"} {
		if _, err := gitCmd(ctx, dir, nil, "config", "--local", "--remove-section", section); err != nil && exitCode(err) != 128 {
			return fmt.Errorf("removing the git filter: %w", err)
		}
	}
	if _, err := gitCmd(ctx, dir, nil, "config", "--local", "--unset-all", gitConfigKey); err != nil && exitCode(err) != 5 {
		return fmt.Errorf("removing the git filter: %w", err)
	}
	return nil
}

// FilterConfigured reports whether .git/config has a clean and a smudge filter
// for git-crypt (berth's or git-crypt's own).
func FilterConfigured(ctx context.Context, dir string) (bool, error) {
	if _, _, err := repoPaths(ctx, dir); err != nil {
		return false, err
	}
	for _, name := range []string{"filter.git-crypt.clean", "filter.git-crypt.smudge"} {
		v, ok, err := gitConfigGet(ctx, dir, name)
		if err != nil {
			return false, err
		}
		if !ok || strings.TrimSpace(v) == "" {
			return false, nil
		}
	}
	return true, nil
}

// RepoKey loads the key this clone is unlocked with: berth's (recorded in
// .git/config) or, for a clone unlocked by git-crypt, .git/git-crypt/keys/default.
// It returns ErrLocked when there is none, and the path it read otherwise.
func RepoKey(ctx context.Context, dir string) (*Key, string, error) {
	_, gitDir, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, "", err
	}
	path, ok, err := gitConfigGet(ctx, dir, gitConfigKey)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		path = filepath.Join(gitDir, "git-crypt", "keys", "default")
		if _, err := os.Stat(path); err != nil {
			return nil, "", fmt.Errorf("%w: run 'berth crypto unlock' (with your age identity or a key file)", ErrLocked)
		}
	}
	k, err := ReadKeyFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("this repository's key (%s=%s): %w", gitConfigKey, path, err)
	}
	return k, path, nil
}

// InitOptions configures Init.
type InitOptions struct {
	// Home is berth's state directory; the key goes to Home/keys.
	Home string
	// Executable is the berth binary git runs as the filter.
	Executable string
	// Patterns are the secret paths; DefaultSecretPaths when nil.
	Patterns []string
}

// InitResult is what Init did.
type InitResult struct {
	KeyID   string
	KeyPath string
	// Paths are what the caller commits: .gitattributes when it changed, and
	// secret files that were tracked in plaintext, now staged encrypted.
	Paths []string
}

// Init makes a repository encrypt its secret paths: it generates a key, stores it
// in berth's home (never in the repository), writes .gitattributes and configures
// the filter. A repository that already has a key (berth's or git-crypt's) is
// refused, because a second key would make its secrets unreadable to the first.
func Init(ctx context.Context, dir string, opts InitOptions) (*InitResult, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	if _, path, err := RepoKey(ctx, top); err == nil {
		return nil, fmt.Errorf("%s already has a key (%s); use 'berth crypto rotate' to replace it", top, path)
	} else if !errors.Is(err, ErrLocked) {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(top, WrappedKeyFile)); err == nil {
		return nil, fmt.Errorf("%s already has a key shared with age (%s): unlock with 'berth crypto unlock' instead of creating a second key", top, WrappedKeyFile)
	}
	if files, err := encryptedIndexFiles(ctx, top); err != nil {
		return nil, err
	} else if len(files) > 0 {
		return nil, fmt.Errorf("%s already holds encrypted files (%s, ...): unlock it with its key ('berth crypto unlock') instead of creating a new one", top, files[0])
	}
	patterns := opts.Patterns
	if patterns == nil {
		patterns = DefaultSecretPaths
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	keyPath, err := StoreKey(opts.Home, key)
	if err != nil {
		return nil, err
	}
	changed, err := WriteAttributes(ctx, top, patterns)
	if err != nil {
		return nil, err
	}
	if err := Configure(ctx, top, Filter{Executable: opts.Executable, KeyPath: keyPath}); err != nil {
		return nil, err
	}
	res := &InitResult{KeyID: key.ID(), KeyPath: keyPath}
	if changed {
		res.Paths = append(res.Paths, ".gitattributes")
	}
	// Files already tracked under a secret path are in plaintext in the index:
	// stage them again through the filter, so the next commit encrypts them.
	// (Their history stays plaintext; PlaintextInHistory reports it.)
	plain, err := SecretFiles(ctx, top)
	if err != nil {
		return nil, err
	}
	if len(plain) > 0 {
		args := append([]string{"add", "--renormalize", "--"}, plain...)
		if _, err := gitCmd(ctx, top, nil, args...); err != nil {
			return nil, fmt.Errorf("encrypting the secret files already tracked: %w", err)
		}
		res.Paths = append(res.Paths, plain...)
	}
	return res, nil
}

// UnlockOptions configures Unlock.
type UnlockOptions struct {
	Home       string
	Executable string
}

// ErrNamedKey means a key file is one of git-crypt's named keys (git-crypt init -k
// NAME), which use a filter of their own (git-crypt-NAME) that berth does not
// configure.
var ErrNamedKey = errors.New("named git-crypt keys (git-crypt init -k NAME) are not supported; use the default key")

// Unlock stores key in berth's home, configures the filter and checks out the
// secret files decrypted, readable by their owner only (FileMode). Before
// changing anything it decrypts every encrypted file in the index, so a wrong
// key is refused with the repository unchanged.
func Unlock(ctx context.Context, dir string, key *Key, opts UnlockOptions) (string, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return "", err
	}
	if key.Name != "" {
		return "", fmt.Errorf("key %q: %w", key.Name, ErrNamedKey)
	}
	if err := requireClean(ctx, top); err != nil {
		return "", err
	}
	files, err := encryptedIndexFiles(ctx, top)
	if err != nil {
		return "", err
	}
	if err := forEachIndexBlob(ctx, top, files, func(path string, blob []byte) error {
		if _, err := Decrypt(key, blob); err != nil {
			if errors.Is(err, ErrTampered) {
				return fmt.Errorf("%s does not decrypt with this key (wrong key, or the file was tampered with); nothing was changed: %w", path, err)
			}
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}); err != nil {
		return "", err
	}
	keyPath, err := StoreKey(opts.Home, key)
	if err != nil {
		return "", err
	}
	if err := Configure(ctx, top, Filter{Executable: opts.Executable, KeyPath: keyPath}); err != nil {
		return "", err
	}
	if err := recheckout(ctx, top, files); err != nil {
		return "", fmt.Errorf("checking out the decrypted files: %w", err)
	}
	if err := ProtectFiles(ctx, top); err != nil {
		return "", err
	}
	return keyPath, nil
}

// Lock removes the filter and the clone's git-crypt key (if git-crypt unlocked
// it) and checks the secret files out as ciphertext. The key stays in berth's home.
func Lock(ctx context.Context, dir string) error {
	top, gitDir, err := repoPaths(ctx, dir)
	if err != nil {
		return err
	}
	if err := requireClean(ctx, top); err != nil {
		return err
	}
	files, err := encryptedIndexFiles(ctx, top)
	if err != nil {
		return err
	}
	if err := Deconfigure(ctx, top); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(gitDir, "git-crypt", "keys")); err != nil {
		return fmt.Errorf("removing git-crypt's copy of the key: %w", err)
	}
	if err := recheckout(ctx, top, files); err != nil {
		return err
	}
	return ProtectFiles(ctx, top)
}

func requireClean(ctx context.Context, top string) error {
	out, err := gitCmd(ctx, top, nil, "status", "--porcelain", "-uno", "-z")
	if err != nil {
		return err
	}
	if f := splitZ(out); len(f) > 0 {
		var names []string
		for _, l := range f {
			if len(l) > 3 {
				names = append(names, l[3:])
			}
		}
		return fmt.Errorf("%w (%s): commit or stash them first", ErrDirty, strings.Join(names, ", "))
	}
	return nil
}

func recheckout(ctx context.Context, top string, files []string) error {
	if len(files) == 0 {
		return nil
	}
	for _, f := range files {
		if err := touch(filepath.Join(top, f)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	in := strings.Join(files, "\x00") + "\x00"
	_, err := gitCmd(ctx, top, strings.NewReader(in), "checkout", "--pathspec-from-file=-", "--pathspec-file-nul")
	return err
}

// encryptedIndexFiles lists secret paths in the index whose blob is encrypted.
func encryptedIndexFiles(ctx context.Context, top string) ([]string, error) {
	files, err := SecretFiles(ctx, top)
	if err != nil {
		return nil, err
	}
	var res []string
	err = forEachIndexBlob(ctx, top, files, func(path string, blob []byte) error {
		if IsEncrypted(blob) {
			res = append(res, path)
		}
		return nil
	})
	return res, err
}
