package secrets

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// Finding is a secret value found in plaintext in a git object. It names the
// secret by its index in the values given to ScanObjects, never by its value.
type Finding struct {
	Object   string `json:"object"`
	Type     string `json:"type"`
	Secret   int    `json:"secret"`
	Encoding string `json:"encoding"` // "raw" or "base64", as a Kubernetes Secret's data holds it
}

// ScanObjects looks for each secret value in every object of the repository
// (every blob, commit, tree and tag; reachable or not, so amended and reset
// commits count too), raw and base64-encoded. An empty result means no object
// holds any of the values in plaintext.
func ScanObjects(ctx context.Context, dir string, values [][]byte) ([]Finding, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	type needle struct {
		b        []byte
		secret   int
		encoding string
	}
	var needles []needle
	for i, v := range values {
		if len(v) == 0 {
			continue
		}
		needles = append(needles,
			needle{v, i, "raw"},
			needle{[]byte(base64.StdEncoding.EncodeToString(v)), i, "base64"})
	}
	var res []Finding
	err = catFile(ctx, top, nil, func(id, typ string, content []byte) error {
		for _, n := range needles {
			if bytes.Contains(content, n.b) {
				res = append(res, Finding{Object: id, Type: typ, Secret: n.secret, Encoding: n.encoding})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning git objects: %w", err)
	}
	return res, nil
}

// HistoryLeak is a secret path committed in plaintext in some commit.
type HistoryLeak struct {
	Path   string `json:"path"`
	Blob   string `json:"blob"`
	Commit string `json:"commit"`
}

// PlaintextInHistory finds every version of every file, in every commit reachable
// from any ref, that matches a secret path (by the current .gitattributes) but was
// committed unencrypted. Empty files count: git-crypt encrypts those too.
func PlaintextInHistory(ctx context.Context, dir string) ([]HistoryLeak, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	out, err := gitCmd(ctx, top, nil, "log", "--all", "--format=%H %T")
	if err != nil {
		if _, herr := gitCmd(ctx, top, nil, "rev-parse", "--verify", "-q", "HEAD"); herr != nil {
			return nil, nil // no commits yet
		}
		return nil, err
	}
	type pair struct{ path, blob string }
	commitOf := map[pair]string{}
	var pairs []pair
	seenTree := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		commit, tree, ok := strings.Cut(line, " ")
		if !ok || seenTree[tree] {
			continue
		}
		seenTree[tree] = true
		ls, err := gitCmd(ctx, top, nil, "ls-tree", "-r", "-z", tree)
		if err != nil {
			return nil, err
		}
		for _, l := range splitZ(ls) {
			meta, path, ok := strings.Cut(l, "\t")
			f := strings.Fields(meta)
			if !ok || len(f) != 3 || f[1] != "blob" {
				continue
			}
			p := pair{path, f[2]}
			if _, ok := commitOf[p]; !ok {
				commitOf[p] = commit
				pairs = append(pairs, p)
			}
		}
	}
	var paths []string
	for _, p := range pairs {
		paths = append(paths, p.path)
	}
	slices.Sort(paths)
	secret, err := IsSecretPath(ctx, top, slices.Compact(paths)...)
	if err != nil {
		return nil, err
	}
	var check []pair
	var ids []string
	for _, p := range pairs {
		if secret[p.path] {
			check = append(check, p)
			ids = append(ids, p.blob)
		}
	}
	if len(ids) == 0 {
		// catFile reads every object for nil ids; nothing to check here.
		return nil, nil
	}
	var leaks []HistoryLeak
	i := 0
	err = catFile(ctx, top, ids, func(_, _ string, content []byte) error {
		if p := check[i]; !IsEncrypted(content) {
			leaks = append(leaks, HistoryLeak{Path: p.path, Blob: p.blob, Commit: commitOf[p]})
		}
		i++
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(leaks, func(a, b HistoryLeak) int {
		return strings.Compare(a.Path+a.Blob, b.Path+b.Blob)
	})
	return leaks, nil
}
