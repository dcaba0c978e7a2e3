package secrets

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/gitcmd"
)

// gitCmd runs git in dir and returns its standard output. Errors carry git's
// standard error, which never holds file contents for the commands used here.
func gitCmd(ctx context.Context, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	// Paths berth passes are file names, never patterns: a secret file named
	// "[a]" or "*.key" must not select other files.
	return gitcmd.Run(ctx, dir, stdin, append([]string{"--literal-pathspecs"}, args...)...)
}

// GitError is a git command that failed.
type GitError = gitcmd.Error

// exitCode returns the exit code of a failed git command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// repoPaths finds a working tree's top level and its git directory.
func repoPaths(ctx context.Context, dir string) (top, gitDir string, err error) {
	out, err := gitCmd(ctx, dir, nil, "rev-parse", "--show-toplevel", "--absolute-git-dir")
	if err != nil {
		return "", "", fmt.Errorf("%s is not inside a git working tree (run 'git init' first): %w", dir, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return "", "", fmt.Errorf("git rev-parse in %s: unexpected output", dir)
	}
	return lines[0], lines[1], nil
}

func gitConfigGet(ctx context.Context, dir, name string) (string, bool, error) {
	out, err := gitCmd(ctx, dir, nil, "config", "--local", "--get", name)
	if err != nil {
		if exitCode(err) == 1 {
			return "", false, nil
		}
		return "", false, err
	}
	return strings.TrimRight(string(out), "\n"), true, nil
}

// splitZ splits NUL-terminated git output.
func splitZ(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// touch moves a file's modification time forward so that git re-reads it instead
// of trusting its index stat data; git-crypt does the same before re-checkout.
func touch(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	t := fi.ModTime().Add(time.Second)
	if now := time.Now(); now.After(t) {
		t = now
	}
	return os.Chtimes(path, t, t)
}

// shellQuote quotes s for the POSIX shell git runs filter commands with.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// indexEntry is a stage-0 file in the index.
type indexEntry struct {
	path, blob string
}

func indexEntries(ctx context.Context, top string) ([]indexEntry, error) {
	out, err := gitCmd(ctx, top, nil, "ls-files", "-z", "--stage")
	if err != nil {
		return nil, err
	}
	var res []indexEntry
	for _, l := range splitZ(out) {
		meta, path, ok := strings.Cut(l, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 || f[0] == "160000" || f[2] != "0" {
			continue
		}
		res = append(res, indexEntry{path: path, blob: f[1]})
	}
	return res, nil
}

// forEachIndexBlob calls fn with the staged content of each path.
func forEachIndexBlob(ctx context.Context, top string, paths []string, fn func(path string, blob []byte) error) error {
	if len(paths) == 0 {
		return nil
	}
	entries, err := indexEntries(ctx, top)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	var ids, names []string
	for _, e := range entries {
		if want[e.path] {
			ids = append(ids, e.blob)
			names = append(names, e.path)
		}
	}
	i := 0
	return catFile(ctx, top, ids, func(_ string, _ string, content []byte) error {
		err := fn(names[i], content)
		i++
		return err
	})
}

// catFile streams objects through one `git cat-file --batch`, calling fn with
// each object's id, type and content in order. With ids nil it streams every
// object in the repository (--batch-all-objects), reachable or not.
func catFile(ctx context.Context, top string, ids []string, fn func(id, typ string, content []byte) error) error {
	args := []string{"cat-file", "--batch"}
	var stdin io.Reader
	if ids == nil {
		args = append(args, "--batch-all-objects")
	} else if len(ids) == 0 {
		return nil
	} else {
		stdin = strings.NewReader(strings.Join(ids, "\n") + "\n")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd, err := gitcmd.Command(ctx, top, args...)
	if err != nil {
		return err
	}
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running git cat-file: %w", err)
	}
	perr := parseBatch(pipe, fn)
	if perr != nil {
		cancel()
	}
	werr := cmd.Wait()
	if perr != nil {
		return perr
	}
	if werr != nil {
		return &GitError{Args: args, Stderr: strings.TrimSpace(stderr.String()), Err: werr}
	}
	return nil
}

func parseBatch(r io.Reader, fn func(id, typ string, content []byte) error) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading git cat-file output: %w", err)
		}
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "missing" {
			return fmt.Errorf("git object %s is missing", f[0])
		}
		if len(f) != 3 {
			return fmt.Errorf("unexpected git cat-file output %q", line)
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("unexpected git cat-file output %q", line)
		}
		content := make([]byte, n+1)
		if _, err := io.ReadFull(br, content); err != nil {
			return fmt.Errorf("reading git object %s: %w", f[0], err)
		}
		if err := fn(f[0], f[1], content[:n]); err != nil {
			return err
		}
	}
}
