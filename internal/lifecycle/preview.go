package lifecycle

import (
	"context"
	"errors"
	"strings"

	"berth.dev/berth/internal/gitcmd"
)

// Preview is what a change would do to the workspace, without committing it.
type Preview struct {
	// Files are the workspace files the change adds (A), modifies (M) or
	// deletes (D).
	Files []FileChange `json:"files"`
	// Diff is the unified diff of the files that are not secret; secret files
	// are only named in Files.
	Diff string `json:"diff,omitempty"`
}

// FileChange is one file a change touches.
type FileChange struct {
	Status string `json:"status"`
	Path   string `json:"path"`
}

var errPreview = errors.New("preview only: nothing written")

// preview runs a workspace change, records what it would commit, and undoes it.
func (e *Env) preview(ctx context.Context, msg string, paths []string, fn func() error) (*Preview, error) {
	var pv *Preview
	err := e.WS.Change(ctx, msg, paths, func() error {
		if err := fn(); err != nil {
			return err
		}
		var err error
		if pv, err = e.diff(ctx, paths); err != nil {
			return err
		}
		return errPreview
	})
	if errors.Is(err, errPreview) {
		return pv, nil
	}
	return nil, err
}

// secretExcludes keep secret files' contents out of a diff (git would decrypt
// them through the git-crypt diff driver).
var secretExcludes = []string{":(exclude,glob)apps/*/secrets.yaml", ":(exclude,glob)**/secrets/**"}

func (e *Env) diff(ctx context.Context, paths []string) (*Preview, error) {
	run := func(args ...string) (string, error) {
		out, err := gitcmd.Run(ctx, e.WS.Root, nil, args...)
		return string(out), err
	}
	// New files become visible to diff; the undo resets the index of these paths.
	if _, err := run(append([]string{"add", "--intent-to-add", "--"}, paths...)...); err != nil {
		return nil, err
	}
	names, err := run(append([]string{"diff", "--no-ext-diff", "--name-status", "--"}, paths...)...)
	if err != nil {
		return nil, err
	}
	pv := &Preview{Files: []FileChange{}}
	for _, l := range strings.Split(strings.TrimSpace(names), "\n") {
		status, path, ok := strings.Cut(l, "\t")
		if ok {
			pv.Files = append(pv.Files, FileChange{Status: status, Path: path})
		}
	}
	pv.Diff, err = run(append(append([]string{"diff", "--no-ext-diff", "--no-textconv", "--"}, paths...), secretExcludes...)...)
	if err != nil {
		return nil, err
	}
	return pv, nil
}
