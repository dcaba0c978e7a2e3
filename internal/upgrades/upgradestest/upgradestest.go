// Package upgradestest gives tests of upgrades an HTTP catalog of fixture
// packages that they publish versions to, a clock they set, and a workspace
// with that catalog.
package upgradestest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// Package is the fixture package: versions 1.0.0, 1.1.0 (adds an object),
// 1.2.0 (adds a Deployment that never becomes healthy) and 2.0.0 (breaking).
const Package = "upfixture"

// fixtures is the directory of the fixture packages.
func fixtures() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "catalog")
}

// Catalog is an HTTP catalog served by the test. It answers conditional
// requests (ETag) and counts them.
type Catalog struct {
	URL string
	// Requests counts requests for the index; NotModified those answered 304.
	Requests, NotModified atomic.Int64

	tree, out string
	mu        sync.Mutex
	etag      string
	index     []byte
}

// NewCatalog serves a catalog with the given versions of the fixture package,
// its stable channel at stable.
func NewCatalog(t *testing.T, stable string, versions ...string) *Catalog {
	t.Helper()
	c := &Catalog{tree: t.TempDir(), out: t.TempDir()}
	c.Publish(t, stable, versions...)
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *Catalog) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/"+catalog.IndexFile) {
		c.Requests.Add(1)
		c.mu.Lock()
		etag, index := c.etag, c.index
		c.mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			c.NotModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		_, _ = w.Write(index)
		return
	}
	http.FileServer(http.Dir(c.out)).ServeHTTP(w, r)
}

// Publish adds versions of the fixture package and moves its stable channel.
func (c *Catalog) Publish(t *testing.T, stable string, versions ...string) {
	t.Helper()
	for _, v := range versions {
		src := filepath.Join(fixtures(), Package, v)
		dst := filepath.Join(c.tree, Package, v)
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.tree, Package, catalog.ChannelsFile), []byte("stable: "+stable+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.WriteHTTP(context.Background(), os.DirFS(c.tree), c.tree, c.out); err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(c.out, catalog.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(index)
	c.mu.Lock()
	c.index, c.etag = index, `"`+hex.EncodeToString(sum[:8])+`"`
	c.mu.Unlock()
}

// Clock is a clock the test sets.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set sets the clock.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Workspace is a workspace with encryption set up and the test catalog as
// catalog "fixtures".
type Workspace struct {
	WS  *workspace.Workspace
	Env *lifecycle.Env
	// Key decrypts its secrets, as the controller's decryptionRef would.
	Key *secrets.Key
}

// NewWorkspace makes a workspace reading cat, with upgrades (YAML of the
// upgrades section of berth.yaml, "" for none).
func NewWorkspace(t *testing.T, cat *Catalog, upgrades string) *Workspace {
	t.Helper()
	ctx := context.Background()
	home := t.TempDir()
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: home, Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	ws.Config.Catalogs = []workspace.CatalogRef{{Name: "fixtures", Type: "http", URL: cat.URL}}
	data, err := yaml.Marshal(ws.Config)
	if err != nil {
		t.Fatal(err)
	}
	if upgrades != "" {
		data = append(data, []byte("upgrades:\n"+indent(upgrades))...)
	}
	if err := ws.Change(ctx, "read the test catalog", []string{workspace.ConfigFile}, func() error { return ws.WriteFile(workspace.ConfigFile, data) }); err != nil {
		t.Fatal(err)
	}
	ws, err = workspace.Open(ws.Root)
	if err != nil {
		t.Fatal(err)
	}
	refs := []catalog.Ref{{Name: "fixtures", Type: catalog.TypeHTTP, URL: cat.URL}}
	set, err := catalog.OpenRefs(home, ws.Root, refs)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := secrets.RepoKey(ctx, ws.Root)
	if err != nil {
		t.Fatal(err)
	}
	return &Workspace{WS: ws, Env: &lifecycle.Env{WS: ws, Catalogs: set}, Key: key}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// Install installs the fixture package as app name, with app.yaml's upgrade
// settings (YAML, "" for none) added in the same way a person would.
func (w *Workspace) Install(t *testing.T, name, upgrade string) {
	t.Helper()
	ctx := context.Background()
	if _, err := w.Env.Install(ctx, lifecycle.InstallOptions{Package: Package, Name: name}); err != nil {
		t.Fatal(err)
	}
	if upgrade == "" {
		return
	}
	rel := filepath.Join(workspace.AppDir(name), workspace.AppFile)
	data, err := w.WS.ReadFile(rel)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("upgrade:\n"+indent(upgrade))...)
	if err := w.WS.Change(ctx, "upgrade settings of "+name, []string{rel}, func() error { return w.WS.WriteFile(rel, data) }); err != nil {
		t.Fatal(err)
	}
}

// Git runs git in the workspace and returns its trimmed output.
func (w *Workspace) Git(t *testing.T, args ...string) string {
	t.Helper()
	return Git(t, w.WS.Root, args...)
}

// Git runs git in dir and returns its trimmed output.
func Git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
