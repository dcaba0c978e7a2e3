package console

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

var screenshots = flag.String("screenshots", "", "directory for the browser tests' screenshots (default: a directory under the system's temp dir)")

// screenshotDir is where the browser tests save screenshots: the test
// artifacts of a run.
func screenshotDir(t *testing.T) string {
	dir := *screenshots
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "berth-console-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Static users of the test provider, with the groups that give them roles.
const (
	adminUser    = "ada"
	operatorUser = "olga"
	viewerUser   = "victor"
	password     = "correct horse battery staple"
)

var testRoles = workspace.Roles{Viewer: []string{"everyone"}, Operator: []string{"oncall"}, Admin: []string{"platform"}}

var buildProvider = sync.OnceValues(func() (string, error) {
	dir, err := filepath.Abs("testdata/oidcprovider")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	home, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(home, "berth", "tools", "oidcprovider-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("go", "build", "-o", bin+".tmp", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test OpenID provider: %v\n%s", err, out)
	}
	return bin, os.Rename(bin+".tmp", bin)
})

// startProvider runs the OpenID provider with the static users, for a
// console whose callback is redirect; it returns the issuer URL.
func startProvider(t *testing.T, redirect string) string {
	t.Helper()
	bin, err := buildProvider()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	issuer := "http://" + addr + "/"
	users := map[string]any{}
	for id, u := range map[string]struct{ name, group string }{"1": {adminUser, "platform"}, "2": {operatorUser, "oncall"}, "3": {viewerUser, "everyone"}} {
		users[id] = map[string]any{"ID": id, "Username": u.name, "Password": password, "FirstName": strings.ToUpper(u.name[:1]) + u.name[1:], "LastName": "Tester", "Email": u.name + "@example.com", "EmailVerified": true, "PreferredLanguage": "en", "Groups": []string{u.group}}
	}
	data, _ := json.Marshal(users)
	file := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "LISTEN="+addr, "ISSUER="+issuer, "USERS_FILE="+file, "CLIENT_ID=berth-console", "CLIENT_SECRET=console-secret", "REDIRECT_URI="+redirect)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on") {
		t.Fatalf("the OpenID provider did not start: %q %v", line, err)
	}
	return issuer
}

// fixture is a workspace over the test catalog, with one app deployed, and
// a console serving it.
type fixture struct {
	t       *testing.T
	cfg     *rest.Config
	env     *lifecycle.Env
	srv     *Server
	url     string
	app     string // the deployed webapp
	catalog string // the directory of the fixture catalog's copy
	home    string
	appNS   string
	issuer  string
	// hold, when set, sees every request before the console serves it and
	// may hold it back: a test orders the server's answers with it.
	hold atomic.Pointer[func(*http.Request)]
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith runs before, when set, after the app is deployed and before
// the console starts.
func newFixtureWith(t *testing.T, before func(*fixture)) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := testcluster.Config(t)
	home := t.TempDir()
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: home, Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the fixture catalog, which a test may publish versions to.
	cat := filepath.Join(t.TempDir(), "catalog")
	if err := os.CopyFS(cat, os.DirFS("testdata/catalog")); err != nil {
		t.Fatal(err)
	}
	ws.Config.Catalogs = []workspace.CatalogRef{{Name: "fixtures", Type: "dir", URL: cat}}
	set, err := catalog.OpenRefs(home, ws.Root, []catalog.Ref{{Name: "fixtures", Type: "dir", URL: cat}})
	if err != nil {
		t.Fatal(err)
	}
	env := &lifecycle.Env{WS: ws, Catalogs: set, Cluster: func() (*rest.Config, error) { return cfg, nil }, ChartCache: filepath.Join(home, "charts")}
	f := &fixture{t: t, cfg: cfg, env: env, catalog: cat, home: home, app: testcluster.UniqueName(t, 30), appNS: testcluster.Namespace(t)}
	if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "webapp", Name: f.app, Namespace: f.appNS}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Deploy(ctx, lifecycle.DeployOptions{Apps: []string{f.app}, Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}

	if before != nil {
		before(f)
	}
	var handler http.Handler
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold := f.hold.Load(); hold != nil {
			(*hold)(r)
		}
		handler.ServeHTTP(w, r)
	}))
	hs.Start()
	t.Cleanup(hs.Close)
	f.url = hs.URL
	f.issuer = startProvider(t, f.url+"/auth/callback")
	opts := DefaultOptions()
	opts.Env, opts.Cluster = env, cfg
	opts.TokenUser = User{Name: "Local Person", Email: "local@example.com"}
	opts.OIDC = &OIDCOptions{Issuer: f.issuer, ClientID: "berth-console", ClientSecret: "console-secret", RedirectURL: f.url + "/auth/callback"}
	opts.Roles = testRoles
	opts.DeployTimeout = 2 * time.Minute
	f.srv, err = New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	handler = f.srv.Handler()
	return f
}

func (f *fixture) git(args ...string) string {
	f.t.Helper()
	out, err := exec.Command("git", append([]string{"-C", f.env.WS.Root}, args...)...).CombinedOutput()
	if err != nil {
		f.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
