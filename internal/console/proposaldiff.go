package console

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/gitcmd"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/workspace"
)

// Bounds of a proposal's diff on the page: a change past them is cut, with a
// note saying how to see all of it.
const (
	maxDiffFiles = 200
	maxDiffLines = 400 // of one file's diff
	maxDiffBytes = 256 << 10
	// proposalFetchTimeout bounds the fetch of the proposal branches, so an
	// upstream that does not answer delays the page by that much at most.
	proposalFetchTimeout = 20 * time.Second
)

// branchDiff is what a proposal's branch changes against the commit it was
// made on, read from git on request.
type branchDiff struct {
	Branch string
	// Missing says why there is no diff: the branch is not in the
	// repository (nor in its upstream).
	Missing string
	Err     string
	// Base and Tip are the commits compared.
	Base, Tip string
	Objects   []objectDiff // rendered objects
	Files     []objectDiff // the app's files, the lock and the rest
	// Truncated says what was left out to keep the page bounded.
	Truncated string
}

// objectDiff is one file of the branch: a rendered object, or another file.
type objectDiff struct {
	Path   string
	Object string // Kind/name (namespace), for a rendered object
	Action string // created, changed, deleted (added, changed, deleted for a file)
	Secret bool
	// Keys are a Secret's keys that changed: "password (changed)".
	Keys []string
	// Note stands for a diff that is not shown (an encrypted file).
	Note string
	Diff string
	Cut  bool // the diff was cut at maxDiffLines
}

// Summary counts the branch's changes for the collapsed view.
func (d *branchDiff) Summary() string {
	count := map[string]int{}
	for _, o := range d.Objects {
		count[o.Action]++
	}
	var parts []string
	for _, a := range []string{"created", "changed", "deleted"} {
		if count[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[a], a))
		}
	}
	objs := "no rendered object"
	if len(parts) > 0 {
		objs = "objects " + strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%s; %d other file(s)", objs, len(d.Files))
}

// proposalRefs are the proposal branches there are, read once for a page:
// the local ones, or those of the checked-out branch's upstream (fetched
// first, as approving fetches them).
type proposalRefs struct {
	prefix string // refs/heads/ or refs/remotes/REMOTE/
	where  string // for messages: "this repository"
	tips   map[string]string
	// Err is a failure to fetch or list them.
	Err string
}

func (s *Server) proposalRefs(ctx context.Context) *proposalRefs {
	ws := s.env.WS
	refs := &proposalRefs{prefix: "refs/heads/", where: "this repository", tips: map[string]string{}}
	_, current, err := ws.Head(ctx)
	if err != nil {
		refs.Err = err.Error()
		return refs
	}
	// berth/upgrade/: a refspec's one * stands for APP/VERSION.
	dir := strings.TrimSuffix(upgrades.ProposalBranch("", ""), "/")
	pattern := dir + "*"
	if f := s.env.Follow; f != nil && f.Fetch != nil {
		// The controller's checkout: its remote needs the Workspace's
		// credential, which only the checkout has.
		refs.where = "the Workspace's repository"
		fctx, cancel := context.WithTimeout(ctx, proposalFetchTimeout)
		defer cancel()
		if err := f.Fetch(fctx, "+refs/heads/"+pattern+":refs/heads/"+pattern); err != nil {
			refs.Err = fmt.Sprintf("fetching the proposal branches failed, so what was fetched before is shown: %v", err)
		}
	} else if remote := ws.Upstream(ctx, current); remote != "" {
		refs.prefix, refs.where = "refs/remotes/"+remote+"/", "this repository's upstream "+remote
		fctx, cancel := context.WithTimeout(ctx, proposalFetchTimeout)
		defer cancel()
		if _, err := gitcmd.Run(fctx, ws.Root, nil, "fetch", "--quiet", "--prune", remote, "+refs/heads/"+pattern+":"+refs.prefix+pattern); err != nil {
			refs.Err = fmt.Sprintf("fetching the proposal branches from %s failed, so what was fetched before is shown: %v", remote, err)
		}
	}
	out, err := gitcmd.Run(ctx, ws.Root, nil, "for-each-ref", "--format=%(objectname) %(refname)", refs.prefix+dir)
	if err != nil {
		refs.Err = err.Error()
		return refs
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if tip, ref, ok := strings.Cut(line, " "); ok {
			refs.tips[strings.TrimPrefix(ref, refs.prefix)] = tip
		}
	}
	return refs
}

// proposalDiff reads the diff of app's proposal to version: the branch
// berth/upgrade/APP/VERSION against where it leaves the checked-out branch
// (their merge base). A Secret's values and the app's secret files never
// reach the result: a rendered Secret is shown with its values masked, and
// the encrypted files of the app's parameters only as changed.
func (s *Server) proposalDiff(ctx context.Context, refs *proposalRefs, app, version string) *branchDiff {
	ws := s.env.WS
	d := &branchDiff{Branch: upgrades.ProposalBranch(app, version), Err: refs.Err}
	git := func(args ...string) ([]byte, error) { return gitcmd.Run(ctx, ws.Root, nil, args...) }
	d.Tip = refs.tips[d.Branch]
	if d.Tip == "" {
		d.Missing = fmt.Sprintf("There is no branch %s in %s, so there is no diff to show: the berth controller makes it when it proposes the upgrade (a workspace without a controller has none; 'berth upgrade %s --to %s --dry-run' shows what the upgrade would change).", d.Branch, refs.where, app, version)
		return d
	}
	base, err := git("merge-base", "HEAD", d.Tip)
	if err != nil {
		d.Err = fmt.Sprintf("the branch %s shares no history with the checked-out branch: %v", d.Branch, err)
		return d
	}
	d.Base = strings.TrimSpace(string(base))
	out, err := git("diff", "--no-ext-diff", "--no-textconv", "--no-renames", "-z", "--name-status", d.Base, d.Tip)
	if err != nil {
		d.Err = err.Error()
		return d
	}
	fields := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	var key *secrets.Key
	keyRead := false
	budget := maxDiffBytes
	for i := 0; i+1 < len(fields); i += 2 {
		status, rel := fields[i], fields[i+1]
		if len(d.Objects)+len(d.Files) == maxDiffFiles {
			d.Truncated = fmt.Sprintf("Only the first %d files are shown; 'git diff %s %s' shows all of them.", maxDiffFiles, short(d.Base), d.Branch)
			break
		}
		read := func(rev string) ([]byte, error) { return git("cat-file", "blob", rev+":"+rel) }
		var before, after []byte
		if status != "A" {
			if before, err = read(d.Base); err != nil {
				d.Err = err.Error()
				return d
			}
		}
		if status != "D" {
			if after, err = read(d.Tip); err != nil {
				d.Err = err.Error()
				return d
			}
		}
		if (secrets.IsEncrypted(before) || secrets.IsEncrypted(after)) && !keyRead {
			keyRead = true
			key, _, _ = secrets.RepoKey(ctx, ws.Root) // nil: this clone cannot decrypt
		}
		fd := fileDiff(rel, status, before, after, key)
		if budget -= len(fd.Diff); budget < 0 {
			fd.Diff, fd.Note = "", "Not shown: the diff is past the page's bound."
			d.Truncated = fmt.Sprintf("Some diffs are not shown, to keep the page under %d KiB; 'git diff %s %s' shows all of them.", maxDiffBytes>>10, short(d.Base), d.Branch)
		}
		if fd.Object != "" {
			d.Objects = append(d.Objects, fd)
		} else {
			d.Files = append(d.Files, fd)
		}
	}
	return d
}

func short(rev string) string { return rev[:min(len(rev), 8)] }

// secretParamsFile says whether rel holds an app's secret parameters
// (apps/APP/secrets.yaml, apps/APP/secrets/...): the console never reads
// those.
func secretParamsFile(rel string) bool {
	parts := strings.Split(rel, "/")
	return len(parts) >= 3 && parts[0] == workspace.AppsDir && (parts[2] == "secrets.yaml" || parts[2] == "secrets")
}

// fileDiff is one changed file: a rendered object diffed as YAML (a
// Secret's values masked), or a text file diffed as text.
func fileDiff(rel, status string, before, after []byte, key *secrets.Key) objectDiff {
	fd := objectDiff{Path: rel, Action: map[string]string{"A": "added", "M": "changed", "D": "deleted"}[status]}
	if fd.Action == "" {
		fd.Action = status
	}
	if secretParamsFile(rel) {
		fd.Secret, fd.Note = true, "The app's secret values, encrypted in git: never shown."
		return fd
	}
	rendered := strings.HasPrefix(rel, workspace.RenderedDir+"/") && path.Ext(rel) == ".yaml"
	encrypted := secrets.IsEncrypted(before) || secrets.IsEncrypted(after)
	inSecrets := slices.Contains(strings.Split(path.Dir(rel), "/"), "secrets")
	if encrypted {
		if key == nil || !rendered {
			fd.Secret, fd.Note = true, "Encrypted in git, and this clone cannot decrypt it: what changed in it is not shown."
			return fd
		}
		var err error
		if before, err = decrypted(key, before); err == nil {
			after, err = decrypted(key, after)
		}
		if err != nil {
			fd.Secret, fd.Note = true, "Encrypted in git, and it could not be decrypted here: what changed in it is not shown."
			return fd
		}
	}
	if !rendered {
		fd.Diff, fd.Cut = textDiff(string(before), string(after), "a/"+rel, "b/"+rel)
		return fd
	}
	bm, berr := objectOf(before)
	am, aerr := objectOf(after)
	obj := bm
	if obj == nil {
		obj = am
	}
	if berr != nil || aerr != nil || obj == nil {
		if encrypted || inSecrets {
			fd.Secret, fd.Note = true, "A secret file that is not an object berth can read: what changed in it is not shown."
			return fd
		}
		fd.Diff, fd.Cut = textDiff(string(before), string(after), "a/"+rel, "b/"+rel)
		return fd
	}
	fd.Action = map[string]string{"added": "created", "changed": "changed", "deleted": "deleted"}[fd.Action]
	fd.Object = objectName(obj)
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	fd.Secret = kind == "Secret" && apiVersion == "v1"
	if (encrypted || inSecrets) && !fd.Secret {
		fd.Secret, fd.Note = true, "A secret file that is not a Secret: what changed in it is not shown."
		return fd
	}
	if fd.Secret {
		fd.Keys = secretKeyChanges(bm, am)
	}
	diff, err := apply.ObjectDiff(bm, am, "a/"+rel, "b/"+rel)
	if err != nil {
		fd.Note = "Its diff could not be made: " + err.Error()
		return fd
	}
	fd.Diff, fd.Cut = cutLines(diff)
	return fd
}

func decrypted(key *secrets.Key, b []byte) ([]byte, error) {
	if b == nil || !secrets.IsEncrypted(b) {
		return b, nil
	}
	return secrets.Decrypt(key, b)
}

// objectOf reads a rendered object; nil, nil for no file.
func objectOf(b []byte) (map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func objectName(obj map[string]any) string {
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	out := kind + "/" + name
	if ns != "" {
		out += " (" + ns + ")"
	}
	return out
}

// secretKeyChanges names the keys of a Secret's data and stringData that a
// change adds, removes or changes, never their values.
func secretKeyChanges(before, after map[string]any) []string {
	var out []string
	for _, field := range []string{"data", "stringData"} {
		b, _ := before[field].(map[string]any)
		a, _ := after[field].(map[string]any)
		for _, k := range slices.Sorted(mapsKeys(b, a)) {
			bv, inB := b[k]
			av, inA := a[k]
			switch {
			case !inB:
				out = append(out, k+" (added)")
			case !inA:
				out = append(out, k+" (removed)")
			case fmt.Sprint(bv) != fmt.Sprint(av):
				out = append(out, k+" (changed)")
			}
		}
	}
	return out
}

func mapsKeys(ms ...map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

// textDiff is a unified diff of two texts, cut at maxDiffLines.
func textDiff(before, after, from, to string) (string, bool) {
	if before == after {
		return "", false
	}
	if bytes.IndexByte([]byte(before+after), 0) >= 0 {
		return "(binary file changed)", false
	}
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(before), B: difflib.SplitLines(after), FromFile: from, ToFile: to, Context: 3,
	})
	if err != nil {
		return "", false
	}
	return cutLines(diff)
}

func cutLines(diff string) (string, bool) {
	lines := strings.SplitAfter(diff, "\n")
	if len(lines) <= maxDiffLines {
		return diff, false
	}
	return strings.Join(lines[:maxDiffLines], "") + fmt.Sprintf("… %d more lines not shown\n", len(lines)-maxDiffLines), true
}
