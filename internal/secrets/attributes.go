package secrets

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"berth.dev/berth/internal/atomicfile"
)

// DefaultSecretPaths are the workspace paths that hold secrets: the values of
// configuration parameters marked secret (and generated passwords), and the
// rendered Kubernetes Secret objects. Patterns use .gitattributes syntax.
var DefaultSecretPaths = []string{
	"apps/*/secrets.yaml",
	"apps/*/secrets/**",
	"rendered/*/secrets/**",
	"rendered/*/*/secrets/**", // a fleet's: rendered/CLUSTER/APP/secrets/
}

// RecipientsDir holds the key wrapped for each teammate with age; never encrypted
// by the filter itself.
const RecipientsDir = ".berth/crypto"

const (
	attrBegin = "# BEGIN berth crypto: secret files, encrypted in git (managed by 'berth crypto init')"
	attrEnd   = "# END berth crypto"
)

// AttributesLine is the .gitattributes line that makes git encrypt pattern.
func AttributesLine(pattern string) string {
	return pattern + " filter=git-crypt diff=git-crypt"
}

// WriteAttributes writes the repository's .gitattributes so that every pattern is
// encrypted, replacing berth's own block and keeping every line the user wrote.
// .gitattributes and berth's recipients directory are never encrypted, or a
// clone could not even learn what to decrypt. It reports whether the file changed.
func WriteAttributes(ctx context.Context, dir string, patterns []string) (bool, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return false, err
	}
	for _, p := range patterns {
		if strings.TrimSpace(p) != p || p == "" || strings.ContainsAny(p, "\n\r") || strings.Contains(p, " ") {
			return false, fmt.Errorf("secret path pattern %q: must be one .gitattributes pattern without spaces", p)
		}
	}
	path := filepath.Join(top, ".gitattributes")
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	var kept []string
	inBlock := false
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		switch {
		case l == attrBegin:
			inBlock = true
		case l == attrEnd:
			inBlock = false
		case !inBlock && (l != "" || len(kept) > 0):
			kept = append(kept, l)
		}
	}
	if inBlock {
		return false, fmt.Errorf("%s: berth's block has no %q line; restore it or delete the block, then run again", path, attrEnd)
	}
	var b bytes.Buffer
	for _, l := range kept {
		b.WriteString(l + "\n")
	}
	if len(kept) > 0 && kept[len(kept)-1] != "" {
		b.WriteString("\n")
	}
	b.WriteString(attrBegin + "\n")
	ps := slices.Clone(patterns)
	slices.Sort(ps)
	for _, p := range slices.Compact(ps) {
		b.WriteString(AttributesLine(p) + "\n")
	}
	b.WriteString(".gitattributes !filter !diff\n")
	b.WriteString(RecipientsDir + "/** !filter !diff\n")
	b.WriteString(attrEnd + "\n")
	if bytes.Equal(old, b.Bytes()) {
		return false, nil
	}
	if err := atomicfile.Write(path, b.Bytes(), 0o644); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return true, nil
}

// IsSecretPath reports, for each path relative to the repository's top level,
// whether git would encrypt it (its filter attribute is git-crypt). It works for
// files that do not exist yet, so the workspace can ask before writing.
func IsSecretPath(ctx context.Context, dir string, paths ...string) (map[string]bool, error) {
	res := make(map[string]bool, len(paths))
	if len(paths) == 0 {
		return res, nil
	}
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	in := strings.Join(paths, "\x00") + "\x00"
	out, err := gitCmd(ctx, top, strings.NewReader(in), "check-attr", "-z", "--stdin", "filter")
	if err != nil {
		return nil, fmt.Errorf("reading .gitattributes: %w", err)
	}
	f := splitZ(out)
	for i := 0; i+2 < len(f); i += 3 {
		res[f[i]] = f[i+2] == "git-crypt"
	}
	return res, nil
}

// SecretFiles lists the files in the index that git encrypts, sorted.
func SecretFiles(ctx context.Context, dir string) ([]string, error) {
	top, _, err := repoPaths(ctx, dir)
	if err != nil {
		return nil, err
	}
	out, err := gitCmd(ctx, top, nil, "ls-files", "-z", "--cached")
	if err != nil {
		return nil, err
	}
	files := slices.Compact(splitZ(out))
	secret, err := IsSecretPath(ctx, top, files...)
	if err != nil {
		return nil, err
	}
	var res []string
	for _, f := range files {
		if secret[f] {
			res = append(res, f)
		}
	}
	slices.Sort(res)
	return res, nil
}
