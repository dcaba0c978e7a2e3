package catalog

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	testcatalog "berth.dev/berth/test/catalog"
)

// linkedCatalog writes a catalog whose db 1.0.0 is fine and whose db 1.1.0
// holds a link to a file outside the catalog, named like a kubeconfig.
func linkedCatalog(t *testing.T, dir, link string) (secret string) {
	t.Helper()
	writeTree(t, dir, tree())
	secret = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(secret, []byte("token: very-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "db/1.1.0", filepath.Dir(link)), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(dir, "db/1.1.0", link))
	if err := os.Symlink(secret, filepath.Join(dir, "db/1.1.0", link)); err != nil {
		t.Fatal(err)
	}
	return secret
}

func TestCatalogsRefuseLinksOutOfThePackage(t *testing.T) {
	ctx := context.Background()
	for _, link := range []string{"files/k", "m.yaml"} {
		t.Run(link, func(t *testing.T) {
			for name, open := range map[string]func(t *testing.T, dir string) Source{
				"dir": func(t *testing.T, dir string) Source { return NewDirSource(dir) },
				"git": func(t *testing.T, dir string) Source {
					run(t, dir, "git", "init", "--quiet", "-b", "main")
					run(t, dir, "git", "add", ".")
					run(t, dir, "git", "commit", "--quiet", "-m", "catalog")
					return &GitSource{URL: "file://" + dir, Dir: filepath.Join(t.TempDir(), "repo")}
				},
			} {
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					linkedCatalog(t, dir, link)
					src := open(t, dir)
					ix, err := src.Index(ctx)
					if err != nil {
						t.Fatal(err)
					}
					e, ok := ix.Entry("db")
					if !ok {
						t.Fatal("db was left out entirely; only its version 1.1.0 is bad")
					}
					if diff := cmp.Diff("1.0.0", versionList(e)); diff != "" {
						t.Errorf("db versions (-want +got):\n%s", diff)
					}
					if len(ix.Problems) == 0 {
						t.Fatal("no problem reported for the link")
					}
					msg := ix.Problems[0].String()
					for _, want := range []string{"package db", "1.1.0", link, "symbolic link"} {
						if !strings.Contains(msg, want) {
							t.Errorf("problem %q does not name %q", msg, want)
						}
					}
				})
			}
		})
	}
}

func TestOpenedPackagesCannotReadThroughALinkAddedLater(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeTree(t, dir, tree())
	src := NewDirSource(dir)
	if _, err := src.Index(ctx); err != nil {
		t.Fatal(err)
	}
	// The tree changes after it was indexed: a link appears in an indexed version.
	linkedCatalog(t, dir, "files/k")
	files, err := src.Open(ctx, "db", "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(files, "files/k")
	var le *LinkError
	if !errors.As(err, &le) {
		t.Fatalf("reading the link = %q, %v; want a *LinkError", b, err)
	}
	if le.Catalog != dir || le.Package != "db" || le.Version != "1.1.0" || le.File != "files/k" {
		t.Errorf("LinkError = %+v", le)
	}
	if _, err := fs.ReadFile(files, "m.yaml"); err != nil {
		t.Errorf("a regular file of the package: %v", err)
	}
	// A linked directory is refused too.
	if err := os.Symlink(filepath.Dir(le.Catalog), filepath.Join(dir, "db/1.1.0/up")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.ReadFile(files, "up/README.md"); !errors.As(err, &le) || le.File != "up" {
		t.Errorf("reading through a linked directory: %v", err)
	}
}

func TestOneBadEntryDoesNotBreakTheOtherPackages(t *testing.T) {
	t.Setenv(BuiltinEnv, testcatalog.Dir())
	ctx := context.Background()
	// A directory catalog with one broken package.
	dirCat := t.TempDir()
	writeTree(t, dirCat, fstest.MapFS{
		"tool/1.0.0/package.yaml":   pkgYAML("tool", "1.0.0", ""),
		"tool/1.0.0/m.yaml":         manifest,
		"broken/1.0.0/package.yaml": {Data: []byte("kind: Package\n")},
	})
	// An HTTP catalog whose index lists a version that is not semantic.
	httpDir := t.TempDir()
	if _, err := WriteHTTP(ctx, fstest.MapFS{"cache/3.0.0/package.yaml": pkgYAML("cache", "3.0.0", ""), "cache/3.0.0/m.yaml": manifest}, "http", httpDir); err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(httpDir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(index), "      versions:\n", "      versions:\n        - version: latest-build\n          url: x.tar.gz\n          digest: sha256:"+strings.Repeat("a", 64)+"\n", 1)
	if bad == string(index) {
		t.Fatalf("could not add a bad version to the index:\n%s", index)
	}
	if err := os.WriteFile(filepath.Join(httpDir, IndexFile), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(httpDir)))
	defer srv.Close()

	refs := []Ref{{Name: BuiltinName, Type: TypeBuiltin}, {Name: "local", Type: TypeDir, URL: dirCat}, {Name: "mirror", Type: TypeHTTP, URL: srv.URL}}
	set := NewSet(refs, map[string]Source{
		BuiltinName: Builtin(),
		"local":     NewDirSource(dirCat),
		"mirror":    &HTTPSource{URL: srv.URL, Cache: t.TempDir()},
	})
	var warned []string
	set.OnProblem = func(p Problem) { warned = append(warned, p.String()) }
	u, _, err := set.Universe(ctx)
	if err != nil {
		t.Fatalf("one bad entry broke the universe: %v", err)
	}
	for _, pkg := range []string{"postgresql", "tool", "cache"} {
		if !u.Has(pkg) {
			t.Errorf("package %s is missing from the universe", pkg)
		}
	}
	if u.Has("broken") {
		t.Error("the broken package is in the universe")
	}
	f, err := set.Find(ctx, "cache")
	if err != nil || versionList(f.Entry) != "3.0.0" {
		t.Errorf("cache = %+v, %v; want version 3.0.0 only", f.Entry, err)
	}
	want := []string{
		"catalog local (" + dirCat + "): package broken version 1.0.0 skipped: invalid package",
		"catalog mirror (" + srv.URL + "/index.yaml): package cache version latest-build skipped: \"latest-build\" is not a semantic version",
	}
	if len(warned) != len(want) {
		t.Fatalf("warnings = %q, want %d", warned, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(warned[i], w) {
			t.Errorf("warning %d = %q, want it to start with %q", i, warned[i], w)
		}
	}
	// Each problem is reported once per set.
	if _, err := set.Packages(ctx); err != nil {
		t.Fatal(err)
	}
	if len(warned) != len(want) {
		t.Errorf("problems reported again: %q", warned)
	}
}
