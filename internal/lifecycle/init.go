package lifecycle

import (
	"context"
	"fmt"
	"path/filepath"

	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// InitOptions configures Init.
type InitOptions struct {
	Workspace workspace.InitOptions
	// Home is berth's state directory, where the workspace's key is kept.
	Home string
	// Executable is the berth binary git runs as the encryption filter.
	Executable string
}

// Init creates (or adopts) a workspace repository with encryption of its secret
// paths set up and the leak guard installed as a pre-commit hook, so that no
// secret value can be committed in plaintext from the first install on, by berth
// or by plain git. The key stays in Home, outside the repository.
func Init(ctx context.Context, dir string, opts InitOptions) (*workspace.Workspace, *secrets.InitResult, error) {
	ws, err := workspace.Init(ctx, dir, opts.Workspace)
	if err != nil {
		// A workspace whose encryption was never set up (an earlier init failed
		// half-way) is finished rather than refused.
		existing, openErr := workspace.Open(dir)
		if openErr != nil || existing.Root != absDir(dir) {
			return nil, nil, err
		}
		if ok, cerr := secrets.FilterConfigured(ctx, existing.Root); cerr != nil || ok {
			return nil, nil, err
		}
		ws = existing
	}
	var res *secrets.InitResult
	err = ws.Change(ctx, "encrypt secrets in this workspace", []string{".gitattributes"}, func() error {
		var err error
		res, err = secrets.Init(ctx, ws.Root, secrets.InitOptions{Home: opts.Home, Executable: opts.Executable})
		if err != nil {
			return fmt.Errorf("setting up encryption: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// The leak guard also covers commits made with plain git, such as after
	// 'berth crypto lock'; a hook the user already has is left alone.
	if _, err := secrets.InstallHook(ctx, ws.Root, opts.Executable); err != nil {
		return nil, nil, err
	}
	return ws, res, nil
}

func absDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return abs
}
