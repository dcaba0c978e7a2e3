package secrets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FileMode is the mode of every secret file in a work tree: readable by its
// owner only, whether it holds plaintext (unlocked) or ciphertext.
const FileMode fs.FileMode = 0o600

// ProtectFiles gives the secret files of the index under the given pathspecs
// (all of them when none is given) FileMode. git checks files out with the
// mode the umask allows (0644 usually), so berth calls it after every checkout
// it makes: unlock, lock, restoring or rolling back workspace paths.
func ProtectFiles(ctx context.Context, dir string, pathspecs ...string) error {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return err
	}
	out, err := gitCmd(ctx, top, nil, append([]string{"ls-files", "-z", "--cached", "--"}, pathspecs...)...)
	if err != nil {
		return err
	}
	files := splitZ(out)
	secret, err := IsSecretPath(ctx, top, files...)
	if err != nil {
		return err
	}
	for _, f := range files {
		if !secret[f] {
			continue
		}
		p := filepath.Join(top, filepath.FromSlash(f))
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() == FileMode {
			continue
		}
		if err := os.Chmod(p, FileMode); err != nil {
			return fmt.Errorf("making %s readable by its owner only: %w", f, err)
		}
	}
	return nil
}
