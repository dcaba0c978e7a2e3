package catalog

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	testcatalog "berth.dev/berth/test/catalog"
)

func pkgYAML(name, version, deps string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte("apiVersion: berth.dev/v1alpha1\nkind: Package\nname: " + name + "\nversion: " + version +
		"\ndescription: The " + name + " package.\nkeywords: [storage]\nmanifests: [m.yaml]\n" + deps)}
}

var manifest = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")}

func tree() fstest.MapFS {
	return fstest.MapFS{
		"db/1.0.0/package.yaml":  pkgYAML("db", "1.0.0", ""),
		"db/1.0.0/m.yaml":        manifest,
		"db/1.1.0/package.yaml":  pkgYAML("db", "1.1.0", ""),
		"db/1.1.0/m.yaml":        manifest,
		"db/channels.yaml":       {Data: []byte("stable: 1.0.0\nlatest: 1.1.0\n")},
		"web/2.0.0/package.yaml": pkgYAML("web", "2.0.0", "dependencies:\n  - {package: db, version: ^1, kind: component, config: {size: 1}}\n"),
		"web/2.0.0/m.yaml":       manifest,
		"README.md":              {Data: []byte("not a package")},
	}
}

func TestBuildIndex(t *testing.T) {
	ix, err := BuildIndex(context.Background(), tree(), "cat")
	if err != nil {
		t.Fatal(err)
	}
	want := &Index{APIVersion: "berth.dev/v1alpha1", Kind: "CatalogIndex", Packages: []Entry{
		{Name: "db", Description: "The db package.", Keywords: []string{"storage"}, Channels: map[string]string{"stable": "1.0.0", "latest": "1.1.0"},
			Versions: []Version{{Version: "1.1.0", Description: "The db package."}, {Version: "1.0.0", Description: "The db package."}}},
		{Name: "web", Description: "The web package.", Keywords: []string{"storage"}, Channels: map[string]string{"latest": "2.0.0"},
			Versions: []Version{{Version: "2.0.0", Description: "The web package.", Dependencies: []pkgspecDependency{{Package: "db", Version: "^1", Kind: "component"}}}}},
	}}
	if diff := cmp.Diff(want, ix); diff != "" {
		t.Errorf("index (-want +got):\n%s", diff)
	}
}

func TestBuildIndexErrors(t *testing.T) {
	tests := map[string]struct {
		change map[string]*fstest.MapFile
		want   string
	}{
		"name mismatch":      {map[string]*fstest.MapFile{"db/1.0.0/package.yaml": pkgYAML("database", "1.0.0", "")}, `cat/db/1.0.0/package.yaml: name is "database" but the package is in directory db`},
		"version mismatch":   {map[string]*fstest.MapFile{"db/1.0.0/package.yaml": pkgYAML("db", "1.0.1", "")}, `cat/db/1.0.0/package.yaml: version is "1.0.1" but the directory is 1.0.0`},
		"invalid package":    {map[string]*fstest.MapFile{"db/1.0.0/package.yaml": {Data: []byte("kind: Package\n")}}, "cat/db/1.0.0/package.yaml:1: apiVersion"},
		"missing file":       {map[string]*fstest.MapFile{"db/1.0.0/m.yaml": nil}, `cat/db/1.0.0/package.yaml:7: manifests[0]: "m.yaml" does not exist`},
		"channel to nowhere": {map[string]*fstest.MapFile{"db/channels.yaml": {Data: []byte("stable: 0.9.0\n")}}, "cat/db/channels.yaml: channel stable points to 0.9.0, which is not a usable version of db (versions: 1.1.0, 1.0.0)"},
		"channel name":       {map[string]*fstest.MapFile{"db/channels.yaml": {Data: []byte("Stable!: 1.0.0\n")}}, `"Stable!" is not a channel name`},
		"channels syntax":    {map[string]*fstest.MapFile{"db/channels.yaml": {Data: []byte("- 1.0.0\n")}}, "cat/db/channels.yaml: yaml: unmarshal errors"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fsys := tree()
			for k, v := range tc.change {
				if v == nil {
					delete(fsys, k)
				} else {
					fsys[k] = v
				}
			}
			// The bad entry is left out and reported; the rest stays usable.
			ix, err := BuildIndex(context.Background(), fsys, "cat")
			if err != nil {
				t.Fatal(err)
			}
			// (A channel to a version left out is reported after it.)
			if len(ix.Problems) == 0 || !strings.Contains(ix.Problems[0].String(), tc.want) {
				t.Errorf("problems = %v, want the first to contain %q", ix.Problems, tc.want)
			}
			if _, ok := ix.Entry("web"); !ok {
				t.Error("package web was left out with the bad entry")
			}
		})
	}
}

func targz(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range entries {
		data := []byte(strings.Repeat("x", int(h.Size)))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				t.Fatal(err)
			}
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func file(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size}
}

func TestExtractSafety(t *testing.T) {
	lim := Limits{MaxFiles: 3, MaxFileBytes: 100, MaxTotal: 150}
	tests := map[string]struct {
		archive []byte
		want    string // empty: extraction succeeds
	}{
		"ok":             {targz(t, &tar.Header{Typeflag: tar.TypeDir, Name: "chart/", Mode: 0o755}, file("package.yaml", 10), file("chart/Chart.yaml", 10)), ""},
		"dot slash":      {targz(t, file("./package.yaml", 10)), ""},
		"traversal":      {targz(t, file("../evil", 1)), `entry "../evil": the path leaves the package directory`},
		"deep traversal": {targz(t, file("a/../../evil", 1)), "the path leaves the package directory"},
		"absolute":       {targz(t, file("/etc/evil", 1)), `entry "/etc/evil": absolute paths are not allowed`},
		"backslash":      {targz(t, file(`..\evil`, 1)), "backslashes are not allowed"},
		"symlink":        {targz(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "/etc/passwd"}), `entry "link": links are not allowed`},
		"hard link":      {targz(t, &tar.Header{Typeflag: tar.TypeLink, Name: "link", Linkname: "package.yaml"}), "links are not allowed"},
		"device":         {targz(t, &tar.Header{Typeflag: tar.TypeChar, Name: "dev"}), `entries of type "3" are not allowed`},
		"big file":       {targz(t, file("big", 101)), `entry "big": larger than 100 bytes`},
		"too much":       {targz(t, file("a", 80), file("b", 80)), "more than 150 bytes in total"},
		"too many":       {targz(t, file("a", 1), file("b", 1), file("c", 1), file("d", 1)), "more than 3 files"},
		"duplicate":      {targz(t, file("a", 1), file("a", 1)), "duplicate entry"},
		"not gzip":       {[]byte("plain text"), "not a gzip file"},
		"truncated":      {targz(t, file("a", 50))[:40], "unsafe package archive"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "pkg")
			err := Extract(bytes.NewReader(tc.archive), dest, lim)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Extract: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Extract error = %v, want it to contain %q", err, tc.want)
			}
			if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused archive left %s behind", dest)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dest), "..", "evil")); err == nil {
				t.Errorf("a file escaped the destination")
			}
		})
	}
}

func TestPackIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := Pack(&a, tree(), "db/1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := Pack(&b, tree(), "db/1.0.0"); err != nil {
		t.Fatal(err)
	}
	if Digest(a.Bytes()) != Digest(b.Bytes()) {
		t.Error("two archives of the same files differ")
	}
	dest := filepath.Join(t.TempDir(), "x")
	if err := Extract(&a, dest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dest, "package.yaml")); err != nil {
		t.Errorf("package.yaml is not at the archive's root: %v", err)
	}
}

func TestHTTPSource(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := WriteHTTP(ctx, tree(), "cat", dir); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()

	src := &HTTPSource{URL: srv.URL + "/", Cache: t.TempDir()}
	ix, err := src.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := ix.Entry("db")
	if !ok || e.Channels["stable"] != "1.0.0" {
		t.Fatalf("entry db = %+v", e)
	}
	files, err := src.Open(ctx, "db", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(files, "package.yaml")
	if err != nil || !strings.Contains(string(b), "version: 1.0.0") {
		t.Fatalf("package.yaml = %q, %v", b, err)
	}
	if _, err := src.Open(ctx, "db", "9.9.9"); err == nil || !strings.Contains(err.Error(), "package db has no version 9.9.9 (versions: 1.1.0, 1.0.0)") {
		t.Errorf("Open of a missing version: %v", err)
	}

	// A tampered archive is refused.
	if err := os.WriteFile(filepath.Join(dir, "db-1.1.0.tar.gz"), targz(t, file("package.yaml", 3)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = src.Open(ctx, "db", "1.1.0")
	if err == nil || !strings.Contains(err.Error(), "but the index says sha256:") {
		t.Errorf("Open of a tampered archive: %v", err)
	}

	// The cached index keeps working when the server is gone.
	srv.Close()
	if _, err := src.Index(ctx); err != nil {
		t.Errorf("Index from the cache: %v", err)
	}
	if err := src.Update(ctx); err == nil {
		t.Error("Update with the server gone succeeded")
	}
}

func TestHTTPSourceRejectsBadIndex(t *testing.T) {
	tests := map[string]struct {
		body string
		want string
	}{
		"not an index":  {"kind: Something\n", `kind is "Something", expected CatalogIndex`},
		"unknown field": {"kind: CatalogIndex\nextra: 1\n", "not a catalog index"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(tc.body)) }))
			defer srv.Close()
			err := (&HTTPSource{URL: srv.URL + "/index.yaml", Cache: t.TempDir()}).Update(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Update error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func writeTree(t *testing.T, dir string, fsys fstest.MapFS) {
	t.Helper()
	for name, f := range fsys {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func TestSetWithDirGitAndHTTPCatalogs(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	// The built-in catalog here is the fixture one, whose postgresql needs
	// no chart repository to load.
	t.Setenv(BuiltinEnv, testcatalog.Dir())
	ctx := context.Background()
	home := t.TempDir()

	dirCat := t.TempDir()
	writeTree(t, dirCat, fstest.MapFS{"tool/1.0.0/package.yaml": pkgYAML("tool", "1.0.0", ""), "tool/1.0.0/m.yaml": manifest})

	repo := t.TempDir()
	writeTree(t, repo, tree())
	run(t, repo, "git", "init", "--quiet", "-b", "main")
	run(t, repo, "git", "add", ".")
	run(t, repo, "git", "commit", "--quiet", "-m", "catalog")

	httpDir := t.TempDir()
	if _, err := WriteHTTP(ctx, fstest.MapFS{"cache/3.0.0/package.yaml": pkgYAML("cache", "3.0.0", ""), "cache/3.0.0/m.yaml": manifest}, "http", httpDir); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(httpDir)))
	defer srv.Close()

	for _, r := range []Ref{{Name: "local", URL: dirCat}, {Name: "team", URL: "file://" + repo}, {Name: "mirror", URL: srv.URL}} {
		if _, err := Add(ctx, home, r); err != nil {
			t.Fatalf("Add %s: %v", r.Name, err)
		}
	}
	set, err := Open(home)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range set.Refs {
		got = append(got, r.Name+" "+string(r.Type))
	}
	if diff := cmp.Diff([]string{"builtin builtin", "local dir", "team git", "mirror http"}, got); diff != "" {
		t.Errorf("catalogs (-want +got):\n%s", diff)
	}
	for pkg, cat := range map[string]string{"tool": "local", "db": "team", "cache": "mirror", "postgresql": "builtin", "team/web": "team"} {
		f, err := set.Find(ctx, pkg)
		if err != nil {
			t.Errorf("Find %s: %v", pkg, err)
			continue
		}
		if f.Catalog != cat {
			t.Errorf("Find %s: catalog %s, want %s", pkg, f.Catalog, cat)
		}
		if _, _, err := set.Load(ctx, f, f.Entry.Latest()); err != nil {
			t.Errorf("Load %s: %v", pkg, err)
		}
	}
	if _, err := set.Find(ctx, "nothing"); err == nil || !strings.Contains(err.Error(), "package nothing is not in any catalog") {
		t.Errorf("Find of a missing package: %v", err)
	}
	hits, err := set.Search(ctx, "DB")
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 || hits[0].Entry.Name != "db" {
		t.Errorf("Search DB: %+v", hits)
	}

	// A new version pushed to the git catalog appears after an update.
	writeTree(t, repo, fstest.MapFS{"db/2.0.0/package.yaml": pkgYAML("db", "2.0.0", ""), "db/2.0.0/m.yaml": manifest})
	run(t, repo, "git", "add", ".")
	run(t, repo, "git", "commit", "--quiet", "-m", "db 2.0.0")
	if err := set.Update(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	set, _ = Open(home)
	f, err := set.Find(ctx, "db")
	if err != nil || f.Entry.Latest() != "2.0.0" {
		t.Errorf("after update, db latest = %v, %v; want 2.0.0", f.Entry, err)
	}

	if err := Remove(home, "team"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cacheDir(home, "team")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("remove left the cache behind: %v", err)
	}
	set, _ = Open(home)
	if _, err := set.Find(ctx, "db"); err == nil {
		t.Error("db is still found after its catalog was removed")
	}
}

func TestAddErrors(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	dir := t.TempDir()
	writeTree(t, dir, tree())
	if _, err := Add(ctx, home, Ref{Name: "one", URL: dir}); err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	writeTree(t, bad, fstest.MapFS{"x/1.0.0/package.yaml": {Data: []byte("name: x\n")}})
	tests := map[string]struct {
		ref  Ref
		want string
	}{
		"reserved":   {Ref{Name: "builtin", URL: dir}, "reserved for the catalog embedded in berth"},
		"bad name":   {Ref{Name: "My Catalog", URL: dir}, `"My Catalog" is not a valid catalog name`},
		"duplicate":  {Ref{Name: "one", URL: dir}, "a catalog named one already exists"},
		"no dir":     {Ref{Name: "two", URL: filepath.Join(dir, "nope")}, "does not exist"},
		"bad type":   {Ref{Name: "two", URL: dir, Type: "ftp"}, `"ftp" is not a catalog type`},
		"unreadable": {Ref{Name: "two", URL: bad}, "catalog two cannot be read"},
		"bad git":    {Ref{Name: "two", URL: "file://" + filepath.Join(dir, "nope.git")}, "cloning catalog"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Add(ctx, home, tc.ref)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Add error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	set, _ := Open(home)
	if len(set.Refs) != 2 {
		t.Errorf("failed adds changed the configuration: %+v", set.Refs)
	}
	if err := Remove(home, "builtin"); err == nil {
		t.Error("removing the built-in catalog succeeded")
	}
	if err := Remove(home, "zzz"); err == nil || !strings.Contains(err.Error(), "no catalog is called zzz") {
		t.Errorf("Remove of a missing catalog: %v", err)
	}
}

func TestBuiltinCatalog(t *testing.T) {
	ix, err := Embedded().Index(context.Background())
	if err != nil {
		t.Fatalf("the built-in catalog does not load: %v", err)
	}
	for _, p := range ix.Problems {
		t.Errorf("the built-in catalog leaves out %s", p)
	}
	for _, name := range []string{"airflow", "grafana", "postgresql", "redis"} {
		if _, ok := ix.Entry(name); !ok {
			t.Errorf("the built-in catalog has no %s", name)
		}
	}
	// Every package directory of the repository's catalog/ is embedded.
	dirs, err := os.ReadDir("../../catalog")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, ok := ix.Entry(d.Name()); d.IsDir() && !ok {
			t.Errorf("catalog/%s is not embedded: add it to the go:embed line of catalog/embed.go", d.Name())
		}
	}
	multi := 0
	for _, e := range ix.Packages {
		if len(e.Versions) > 1 && e.Channels["stable"] != e.Channels["latest"] {
			multi++
		}
	}
	if multi < 2 {
		t.Errorf("%d built-in packages have two versions on different channels, want at least 2", multi)
	}
}

// TestBuiltinEnvReplacesTheEmbeddedCatalog: BERTH_BUILTIN_CATALOG names a
// directory read as the catalog called builtin (the tests' fixture catalog),
// and Embedded ignores it.
func TestBuiltinEnvReplacesTheEmbeddedCatalog(t *testing.T) {
	ctx := context.Background()
	t.Setenv(BuiltinEnv, testcatalog.Dir())
	set, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := set.Find(ctx, "postgresql")
	if err != nil {
		t.Fatal(err)
	}
	if f.Catalog != BuiltinName || f.Entry.Channels["stable"] != "16.4.0" {
		t.Errorf("postgresql found in %s with channels %v, want the fixture's (stable 16.4.0) in %s", f.Catalog, f.Entry.Channels, BuiltinName)
	}
	if _, _, err := set.Load(ctx, f, "16.4.0"); err != nil {
		t.Errorf("Load postgresql 16.4.0 from the fixture catalog: %v", err)
	}
	ix, err := Embedded().Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ix.Packages {
		for _, v := range e.Versions {
			if e.Name == "postgresql" && v.Version == "16.4.0" {
				t.Error("Embedded reads BERTH_BUILTIN_CATALOG: it has the fixture's postgresql 16.4.0")
			}
		}
	}
}

func TestTreeDigest(t *testing.T) {
	a, err := TreeDigest(tree(), "db/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "x")
	var buf bytes.Buffer
	if err := Pack(&buf, tree(), "db/1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := Extract(&buf, dir, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	b, err := TreeDigest(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("a package has digest %s in the tree and %s after a round trip through an archive", a, b)
	}
	changed := tree()
	changed["db/1.0.0/m.yaml"] = &fstest.MapFile{Data: []byte("changed")}
	if c, _ := TreeDigest(changed, "db/1.0.0"); c == a {
		t.Error("changing a file does not change the digest")
	}
	renamed := tree()
	renamed["db/1.0.0/n.yaml"] = renamed["db/1.0.0/m.yaml"]
	delete(renamed, "db/1.0.0/m.yaml")
	if c, _ := TreeDigest(renamed, "db/1.0.0"); c == a {
		t.Error("renaming a file does not change the digest")
	}
}
