package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/atomicfile"
)

var (
	// ErrPlaintextStaged means a secret path is staged without encryption.
	ErrPlaintextStaged = errors.New("secret file staged in plaintext")
	// ErrFilterMissing means secret paths exist but git has no git-crypt filter
	// configured, so `git add` would store them in plaintext.
	ErrFilterMissing = errors.New("the git-crypt filter is not configured in this clone")
)

// LeakError names the secret paths a commit would leak. It never holds contents.
type LeakError struct {
	Paths []string
	Err   error // ErrPlaintextStaged, ErrFilterMissing or ErrLocked
}

func (e *LeakError) Error() string {
	fix := "unlock the repository with 'berth crypto unlock', then stage the files again ('git add --renormalize -- <files>')"
	if errors.Is(e.Err, ErrPlaintextStaged) {
		fix = "unstage them ('git restore --staged -- <files>'), make sure the repository is unlocked ('berth crypto status'), then stage them again"
	}
	return fmt.Sprintf("refusing to commit %s: %v; %s", strings.Join(e.Paths, ", "), e.Err, fix)
}

func (e *LeakError) Unwrap() error { return e.Err }

// CheckStaged is the leak guard: it fails with a *LeakError when any staged file
// that matches a secret path is not encrypted, or when secret paths are staged
// while the filter is missing or the key is absent (a locked repository). It reads
// only the first bytes' worth of meaning from each blob: whether it is encrypted.
func CheckStaged(ctx context.Context, dir string) error {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return err
	}
	files, err := SecretFiles(ctx, top)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
	}
	var plain []string
	err = forEachIndexBlob(ctx, top, files, func(path string, blob []byte) error {
		if !IsEncrypted(blob) {
			plain = append(plain, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(plain) > 0 {
		return &LeakError{Paths: plain, Err: ErrPlaintextStaged}
	}
	return nil
}

// CheckUnlocked fails with a *LeakError when the clone could not encrypt the given
// secret paths if they were staged now: the filter is missing, or its key is.
func CheckUnlocked(ctx context.Context, dir string, paths ...string) error {
	ok, err := FilterConfigured(ctx, dir)
	if err != nil {
		return err
	}
	if !ok {
		return &LeakError{Paths: paths, Err: ErrFilterMissing}
	}
	if _, _, err := RepoKey(ctx, dir); err != nil {
		if errors.Is(err, ErrLocked) {
			return &LeakError{Paths: paths, Err: ErrLocked}
		}
		return err
	}
	return nil
}

// Commit stages paths and commits exactly them with message, guarded: it refuses
// (and unstages them again) when a secret path would be committed in plaintext.
// When the paths hold no change it makes no commit and reports false. This is how
// berth commits; the workspace calls it for every change it makes.
func Commit(ctx context.Context, dir, message string, paths ...string) (bool, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return false, err
	}
	if len(paths) == 0 {
		return false, errors.New("commit: no paths given")
	}
	secret, err := IsSecretPath(ctx, top, paths...)
	if err != nil {
		return false, err
	}
	var secretPaths []string
	for _, p := range paths {
		if secret[p] {
			secretPaths = append(secretPaths, p)
		}
	}
	if len(secretPaths) > 0 {
		if err := CheckUnlocked(ctx, top, secretPaths...); err != nil {
			return false, err
		}
	}
	args := append([]string{"add", "--all", "--"}, paths...)
	if _, err := gitCmd(ctx, top, nil, args...); err != nil {
		return false, fmt.Errorf("staging %s: %w", strings.Join(paths, ", "), err)
	}
	if err := CheckStaged(ctx, top); err != nil {
		unstage(ctx, top, paths)
		return false, err
	}
	if _, err := gitCmd(ctx, top, nil, "rev-parse", "--verify", "-q", "HEAD"); err == nil {
		args = append([]string{"diff", "--cached", "--quiet", "HEAD", "--"}, paths...)
		if _, err := gitCmd(ctx, top, nil, args...); err == nil {
			return false, nil
		} else if exitCode(err) != 1 {
			return false, err
		}
	}
	args = append([]string{"commit", "--quiet", "-m", message, "--"}, paths...)
	if _, err := gitCmd(ctx, top, nil, args...); err != nil {
		return false, fmt.Errorf("committing %s: %w", strings.Join(paths, ", "), err)
	}
	return true, nil
}

// ErrNotSecretPath means a secret value was about to be written to a file git
// would not encrypt.
var ErrNotSecretPath = errors.New("not a secret path: git would store it in plaintext")

// WriteSecretFile writes data to rel (relative to the repository's top level)
// only if git encrypts that path and this clone can encrypt now; the file is
// written atomically with mode 0600. The workspace writes every secret value and
// rendered Secret object through it, so none can land in a plaintext file.
func WriteSecretFile(ctx context.Context, dir, rel string, data []byte) error {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return err
	}
	secret, err := IsSecretPath(ctx, top, rel)
	if err != nil {
		return err
	}
	if !secret[rel] {
		return fmt.Errorf("%s: %w; write it under one of the secret paths in .gitattributes (see 'berth crypto init --path')", rel, ErrNotSecretPath)
	}
	if err := CheckUnlocked(ctx, top, rel); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(top, rel), data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	return nil
}

func unstage(ctx context.Context, top string, paths []string) {
	args := append([]string{"reset", "--quiet", "--"}, paths...)
	if _, err := gitCmd(ctx, top, nil, args...); err != nil {
		args = append([]string{"rm", "--cached", "--quiet", "-r", "--ignore-unmatch", "--"}, paths...)
		_, _ = gitCmd(ctx, top, nil, args...)
	}
}

// HookScript is the pre-commit hook berth installs: it runs the leak guard for
// every commit, including ones made with plain git after 'berth crypto lock'.
func HookScript(executable string) string {
	return "#!/bin/sh\n# Installed by berth (init, crypto init): refuse to commit secret files in plaintext.\nexec " +
		shellQuote(executable) + " crypto guard\n"
}

// InstallHook writes the pre-commit hook unless the repository already has one
// (which it never overwrites). It reports whether it wrote the hook.
func InstallHook(ctx context.Context, dir, executable string) (bool, error) {
	_, gitDir, err := repoPaths(ctx, dir)
	if err != nil {
		return false, err
	}
	hooks := filepath.Join(gitDir, "hooks")
	if v, ok, err := gitConfigGet(ctx, dir, "core.hooksPath"); err != nil {
		return false, err
	} else if ok && v != "" {
		return false, nil
	}
	path := filepath.Join(hooks, "pre-commit")
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if err := atomicfile.Write(path, []byte(HookScript(executable)), 0o755); err != nil {
		return false, fmt.Errorf("installing the pre-commit hook: %w", err)
	}
	return true, nil
}
