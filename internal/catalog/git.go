package catalog

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"berth.dev/berth/internal/gitcmd"
)

// GitSource is a catalog in a git repository, checked out into Dir with the
// git binary. Update fetches the default branch again.
type GitSource struct {
	URL string
	Dir string

	fs *FSSource
}

func git(ctx context.Context, dir string, args ...string) error {
	_, err := gitcmd.Run(ctx, dir, nil, args...)
	return err
}

// Update clones the repository, or fetches its default branch when it is
// already cloned, and resets the checkout to it.
func (s *GitSource) Update(ctx context.Context) error {
	s.fs = nil
	if _, err := os.Stat(filepath.Join(s.Dir, ".git")); err == nil {
		if err := git(ctx, s.Dir, "fetch", "--quiet", "--depth", "1", "origin", "HEAD"); err != nil {
			return fmt.Errorf("updating catalog %s: %w", s.URL, err)
		}
		if err := git(ctx, s.Dir, "reset", "--quiet", "--hard", "FETCH_HEAD"); err != nil {
			return fmt.Errorf("updating catalog %s: %w", s.URL, err)
		}
		return nil
	}
	parent := filepath.Dir(s.Dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".clone-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := git(ctx, parent, "clone", "--quiet", "--depth", "1", "--", s.URL, tmp); err != nil {
		return fmt.Errorf("cloning catalog %s: %w; check the URL and that you can read the repository", s.URL, err)
	}
	_ = os.RemoveAll(s.Dir)
	return os.Rename(tmp, s.Dir)
}

func (s *GitSource) tree(ctx context.Context) (*FSSource, error) {
	if s.fs != nil {
		return s.fs, nil
	}
	if _, err := os.Stat(filepath.Join(s.Dir, ".git")); err != nil {
		if err := s.Update(ctx); err != nil {
			return nil, err
		}
	}
	s.fs = &FSSource{FS: os.DirFS(s.Dir), Where: s.URL}
	return s.fs, nil
}

// Index implements Source.
func (s *GitSource) Index(ctx context.Context) (*Index, error) {
	t, err := s.tree(ctx)
	if err != nil {
		return nil, err
	}
	return t.Index(ctx)
}

// Open implements Source.
func (s *GitSource) Open(ctx context.Context, name, version string) (fs.FS, error) {
	t, err := s.tree(ctx)
	if err != nil {
		return nil, err
	}
	return t.Open(ctx, name, version)
}
