package upgrades

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/workspace"
)

func fixtureTree(t *testing.T, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range versions {
		if err := os.CopyFS(filepath.Join(dir, "upfixture", v), os.DirFS(filepath.Join("upgradestest", "testdata", "catalog", "upfixture", v))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@x"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newest(t *testing.T, p *Poll) string {
	t.Helper()
	f, err := p.Set.Find(context.Background(), "upfixture")
	if err != nil {
		t.Fatal(err)
	}
	return f.Entry.Latest()
}

func TestPollNoticesChangesOfDirectoryAndGitCatalogs(t *testing.T) {
	dir := fixtureTree(t, "1.0.0")
	repo := fixtureTree(t, "1.0.0")
	gitIn(t, repo, "init", "--quiet", "--initial-branch=main")
	gitIn(t, repo, "add", "--all")
	gitIn(t, repo, "commit", "--quiet", "-m", "1.0.0")
	tests := map[string]struct {
		ref     workspace.CatalogRef
		publish func()
	}{
		"directory": {workspace.CatalogRef{Name: "d", Type: "dir", URL: dir}, func() {
			if err := os.CopyFS(filepath.Join(dir, "upfixture", "1.1.0"), os.DirFS(filepath.Join("upgradestest", "testdata", "catalog", "upfixture", "1.1.0"))); err != nil {
				t.Fatal(err)
			}
		}},
		"git": {workspace.CatalogRef{Name: "g", Type: "git", URL: repo}, func() {
			if err := os.CopyFS(filepath.Join(repo, "upfixture", "1.1.0"), os.DirFS(filepath.Join("upgradestest", "testdata", "catalog", "upfixture", "1.1.0"))); err != nil {
				t.Fatal(err)
			}
			gitIn(t, repo, "add", "--all")
			gitIn(t, repo, "commit", "--quiet", "-m", "1.1.0")
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := &Catalogs{Cache: t.TempDir()}
			ctx := context.Background()
			refs := []workspace.CatalogRef{tc.ref}
			p := c.Poll(ctx, t.TempDir(), refs)
			if len(p.Failed) != 0 || len(p.Changed) != 1 || newest(t, p) != "1.0.0" {
				t.Fatalf("first poll: changed %v, failed %v", p.Changed, p.Failed)
			}
			if p := c.Poll(ctx, t.TempDir(), refs); len(p.Changed) != 0 || len(p.Failed) != 0 {
				t.Errorf("unchanged catalog: changed %v, failed %v", p.Changed, p.Failed)
			}
			tc.publish()
			p = c.Poll(ctx, t.TempDir(), refs)
			if len(p.Changed) != 1 || newest(t, p) != "1.1.0" {
				t.Errorf("after publishing 1.1.0: changed %v, newest %s, failed %v", p.Changed, newest(t, p), p.Failed)
			}
		})
	}
}

func TestPollKeepsTheLastIndexOfACatalogThatStopsAnswering(t *testing.T) {
	dir := fixtureTree(t, "1.0.0")
	c := &Catalogs{Cache: t.TempDir()}
	ctx := context.Background()
	refs := []workspace.CatalogRef{{Name: "d", Type: "dir", URL: dir}}
	if p := c.Poll(ctx, "", refs); len(p.Failed) != 0 {
		t.Fatal(p.Failed)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	p := c.Poll(ctx, "", refs)
	if len(p.Failed) != 1 || !strings.Contains(p.Failed[0].Error(), "catalog d ("+dir+") cannot be polled, its last index is used") {
		t.Errorf("failed = %v", p.Failed)
	}
	if newest(t, p) != "1.0.0" {
		t.Error("the last index was not kept")
	}
	never := c.Poll(ctx, "", []workspace.CatalogRef{{Name: "gone", Type: "http", URL: "http://127.0.0.1:1/catalog"}})
	if len(never.Failed) != 1 || !strings.Contains(never.Failed[0].Error(), "catalog gone (http://127.0.0.1:1/catalog) cannot be read") {
		t.Errorf("failed = %v", never.Failed)
	}
}
