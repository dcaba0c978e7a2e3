package console

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/workspace"
)

const (
	secretBefore = `apiVersion: v1
kind: Secret
metadata:
  name: tok
  namespace: shop
stringData:
  token: alpha-value
  kept: same-value
  gone: old-value
`
	secretAfter = `apiVersion: v1
kind: Secret
metadata:
  name: tok
  namespace: shop
stringData:
  token: bravo-value
  kept: same-value
  extra: new-value
`
)

// A proposal's diff names a Secret's changed keys and never a value, in
// plaintext or encrypted in git; the app's secret values file is never
// read; other objects and files show their diff, cut when long.
func TestProposalDiffMasksSecrets(t *testing.T) {
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	encrypt := func(s string) []byte {
		b, err := secrets.Encrypt(key, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	values := []string{"alpha-value", "bravo-value", "same-value", "old-value", "new-value"}
	secretRel := "rendered/web/secrets/secret_shop_tok.yaml"
	tests := map[string]struct {
		rel, status   string
		before, after []byte
		key           *secrets.Key
		wantObject    string
		wantKeys      []string
		wantDiff      []string
		wantNote      string
	}{
		"a Secret in plaintext": {
			rel: secretRel, status: "M", before: []byte(secretBefore), after: []byte(secretAfter),
			wantObject: "Secret/tok (shop)", wantKeys: []string{"extra (added)", "gone (removed)", "token (changed)"},
			wantDiff: []string{"-  token: '*** (before)'", "+  token: '*** (after)'", "+  extra: '***'", "-  gone: '***'"},
		},
		"a Secret encrypted in git, with the key": {
			rel: secretRel, status: "M", before: encrypt(secretBefore), after: encrypt(secretAfter), key: key,
			wantObject: "Secret/tok (shop)", wantKeys: []string{"extra (added)", "gone (removed)", "token (changed)"},
			wantDiff: []string{"+  token: '*** (after)'"},
		},
		"a Secret created": {
			rel: secretRel, status: "A", after: encrypt(secretAfter), key: key,
			wantObject: "Secret/tok (shop)", wantKeys: []string{"extra (added)", "kept (added)", "token (added)"},
			wantDiff: []string{"+  token: '***'"},
		},
		"a Secret encrypted in git, without the key": {
			rel: secretRel, status: "M", before: encrypt(secretBefore), after: encrypt(secretAfter),
			wantNote: "this clone cannot decrypt it",
		},
		"the app's secret values": {
			rel: "apps/web/secrets.yaml", status: "M", before: []byte("token: alpha-value\n"), after: []byte("token: bravo-value\n"), key: key,
			wantNote: "never shown",
		},
		"a file under secrets/ that is not a Secret": {
			rel: "rendered/web/secrets/configmap_shop_x.yaml", status: "M", key: key,
			before:     []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: alpha-value}\n"),
			after:      []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: bravo-value}\n"),
			wantObject: "ConfigMap/x", wantNote: "not a Secret",
		},
		"a ConfigMap": {
			rel: "rendered/web/configmap_shop_settings.yaml", status: "M",
			before:     []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {version: \"1.0.0\"}\n"),
			after:      []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {version: \"1.1.0\"}\n"),
			wantObject: "ConfigMap/settings (shop)", wantDiff: []string{`-  version: 1.0.0`, `+  version: 1.1.0`},
		},
		"the lock": {
			rel: "berth.lock", status: "M", before: []byte("version: 1.0.0\n"), after: []byte("version: 1.1.0\n"),
			wantDiff: []string{"--- a/berth.lock", "-version: 1.0.0", "+version: 1.1.0"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fd := fileDiff(tc.rel, tc.status, tc.before, tc.after, tc.key)
			page := fmt.Sprintf("%+v", fd)
			if strings.Contains(tc.rel, "secret") {
				for _, v := range values {
					if strings.Contains(page, v) {
						t.Errorf("the diff holds the secret value %q:\n%s", v, page)
					}
				}
			}
			if fd.Object != tc.wantObject {
				t.Errorf("object = %q, want %q", fd.Object, tc.wantObject)
			}
			if !slices.Equal(fd.Keys, tc.wantKeys) {
				t.Errorf("keys = %q, want %q", fd.Keys, tc.wantKeys)
			}
			for _, want := range tc.wantDiff {
				if !strings.Contains(fd.Diff, want) {
					t.Errorf("the diff lacks %q:\n%s", want, fd.Diff)
				}
			}
			if tc.wantNote != "" && (!strings.Contains(fd.Note, tc.wantNote) || fd.Diff != "" || !fd.Secret) {
				t.Errorf("note %q, diff %q, secret %v; want a secret's note saying %q and no diff", fd.Note, fd.Diff, fd.Secret, tc.wantNote)
			}
		})
	}
}

func TestProposalDiffIsCutWhenLong(t *testing.T) {
	var before, after strings.Builder
	for i := range 2 * maxDiffLines {
		fmt.Fprintf(&before, "line %d\n", i)
		fmt.Fprintf(&after, "line %d changed\n", i)
	}
	fd := fileDiff("apps/web/app.yaml", "M", []byte(before.String()), []byte(after.String()), nil)
	if !fd.Cut || !strings.HasSuffix(fd.Diff, " more lines not shown\n") {
		t.Fatalf("a long diff was not cut: cut %v, ends %q", fd.Cut, fd.Diff[max(0, len(fd.Diff)-60):])
	}
	if n := strings.Count(fd.Diff, "\n"); n != maxDiffLines+1 {
		t.Errorf("the cut diff has %d lines, want %d and the note", n, maxDiffLines)
	}
}

// With an upstream, the proposal branches are fetched from it (and pruned
// when they are gone there); a branch that is not there is said to be
// missing from the upstream.
func TestProposalRefsComeFromTheUpstream(t *testing.T) {
	ctx := context.Background()
	upRoot, clone, branch, git := proposalUpstream(t)
	ws, err := workspace.Open(clone)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{env: &lifecycle.Env{WS: ws}}
	refs := s.proposalRefs(ctx)
	if refs.Err != "" || refs.tips[branch] != git(upRoot, "rev-parse", "HEAD") {
		t.Fatalf("proposal refs = %+v, want %s fetched from the upstream", refs, branch)
	}
	if d := s.proposalDiff(ctx, refs, "web", "1.1.0"); d.Missing != "" || d.Err != "" || d.Tip == "" {
		t.Errorf("the fetched proposal's diff = %+v", d)
	}
	if d := s.proposalDiff(ctx, refs, "web", "2.0.0"); !strings.Contains(d.Missing, "There is no branch berth/upgrade/web/2.0.0 in this repository's upstream origin") {
		t.Errorf("a proposal not in the upstream says %q", d.Missing)
	}
	git(upRoot, "branch", "-D", branch)
	if refs := s.proposalRefs(ctx); len(refs.tips) != 0 {
		t.Errorf("a branch gone from the upstream is still listed: %v", refs.tips)
	}
}

// In the controller's checkout the proposals are fetched, and changes
// pushed, with the Workspace's credential (Follow), not through an upstream
// that git alone could not authenticate to.
func TestTheControllersCheckoutFetchesAndPushesThroughFollow(t *testing.T) {
	ctx := context.Background()
	upRoot, clone, branch, git := proposalUpstream(t)
	// The checkout's origin needs a credential git alone does not have.
	git(clone, "remote", "set-url", "origin", "https://git.invalid/ws.git")
	ws, err := workspace.Open(clone)
	if err != nil {
		t.Fatal(err)
	}
	var fetched [][]string
	pushed := 0
	follow := &lifecycle.Follow{Namespace: "berth-system", Name: "ws",
		Fetch: func(ctx context.Context, refspecs ...string) error {
			fetched = append(fetched, refspecs)
			git(clone, append([]string{"fetch", "--quiet", "--prune", upRoot}, refspecs...)...)
			return nil
		},
		Push: func(context.Context) error { pushed++; return nil },
	}
	s := &Server{env: &lifecycle.Env{WS: ws, Follow: follow}}
	refs := s.proposalRefs(ctx)
	if refs.Err != "" || refs.tips[branch] != git(upRoot, "rev-parse", "HEAD") || len(fetched) != 1 {
		t.Fatalf("proposal refs = %+v after fetches %v, want %s fetched through Follow", refs, fetched, branch)
	}
	if d := s.proposalDiff(ctx, refs, "web", "1.1.0"); d.Missing != "" || d.Err != "" {
		t.Errorf("the fetched proposal's diff = %+v", d)
	}
	if err := s.push(ctx); err != nil || pushed != 1 {
		t.Errorf("push: %v, %d pushes through Follow, want 1", err, pushed)
	}
}

// proposalUpstream makes a workspace with the proposal branch of web 1.1.0
// and a clone of it; git runs git in a directory and returns its output.
func proposalUpstream(t *testing.T) (upRoot, clone, branch string, git func(dir string, args ...string) string) {
	t.Helper()
	up, _, err := lifecycle.Init(context.Background(), filepath.Join(t.TempDir(), "up"), lifecycle.InitOptions{Home: t.TempDir(), Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	git = func(dir string, args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	branch = upgrades.ProposalBranch("web", "1.1.0")
	git(up.Root, "branch", branch)
	clone = filepath.Join(t.TempDir(), "clone")
	git(up.Root, "clone", "--quiet", up.Root, clone)
	return up.Root, clone, branch, git
}
