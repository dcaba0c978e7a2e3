package catalog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"
	"helm.sh/helm/v4/pkg/registry"

	"berth.dev/berth/internal/pkgspec"
)

// bitnamiMirror is the offline mirror's copy of an OCI chart repository.
const bitnamiMirror = "/work/shared/charts/registry-1.docker.io/bitnamicharts"

// mirrorChart reads a chart archive of the offline mirror.
func mirrorChart(t *testing.T, name, version string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bitnamiMirror, name+"-"+version+".tgz"))
	if err != nil {
		t.Skipf("the offline chart mirror is not here: %v", err)
	}
	return b
}

// ociRegistry is a CNCF distribution registry served in process, with
// in-memory storage.
type ociRegistry struct {
	srv  *httptest.Server
	host string
	// push is a Helm registry client that can write to the registry.
	push *registry.Client
}

type registryOptions struct {
	tls bool
	// user and password, when set, protect the registry with basic auth.
	user, password string
}

func newOCIRegistry(t *testing.T, o registryOptions) *ociRegistry {
	t.Helper()
	logrus.SetOutput(io.Discard)
	config := &configuration.Configuration{
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}, "maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}}},
	}
	if o.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(htpasswd, fmt.Appendf(nil, "%s:%s\n", o.user, hash), 0o600); err != nil {
			t.Fatal(err)
		}
		config.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "test", "path": htpasswd}}
	}
	app := handlers.NewApp(context.Background(), config)
	r := &ociRegistry{}
	opts := []registry.ClientOption{registry.ClientOptWriter(io.Discard), registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "none.json"))}
	if o.user != "" {
		opts = append(opts, registry.ClientOptBasicAuth(o.user, o.password))
	}
	if o.tls {
		r.srv = httptest.NewUnstartedServer(app)
		r.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client's handshake
		r.srv.StartTLS()
		// The test server's certificate is for example.com; every connection
		// goes to the test server.
		r.host = "example.com"
		opts = append(opts, registry.ClientOptHTTPClient(r.client()))
	} else {
		r.srv = httptest.NewServer(app)
		r.host = r.srv.Listener.Addr().String()
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	t.Cleanup(r.srv.Close)
	var err error
	if r.push, err = registry.NewClient(opts...); err != nil {
		t.Fatal(err)
	}
	return r
}

// client returns an HTTP client that reaches the registry whatever host it
// is asked for (for TLS, where the registry must be called example.com).
func (r *ociRegistry) client() *http.Client {
	c := r.srv.Client()
	tr := c.Transport.(*http.Transport).Clone()
	addr := r.srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	c.Transport = tr
	return c
}

// pushChart pushes a chart archive to REPO/NAME:VERSION.
func (r *ociRegistry) pushChart(t *testing.T, repo, name, version string, archive []byte) {
	t.Helper()
	if _, err := r.push.Push(archive, fmt.Sprintf("%s/%s/%s:%s", r.host, repo, name, version)); err != nil {
		t.Fatalf("pushing %s %s: %v", name, version, err)
	}
}

// isolateCredentials keeps the user's Helm and Docker logins out of a test.
func isolateCredentials(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HELM_REGISTRY_CONFIG", filepath.Join(dir, "helm.json"))
	t.Setenv("DOCKER_CONFIG", dir)
}

func ociPackage(repo, chart, version, digest string) *pkgspec.Package {
	return &pkgspec.Package{File: "p/package.yaml", Charts: []pkgspec.Chart{{Repo: repo, Chart: chart, Version: version, Digest: digest}}}
}

func TestOCIChartFetcher(t *testing.T) {
	isolateCredentials(t)
	pg := mirrorChart(t, "postgresql", "16.7.26")
	redis := mirrorChart(t, "redis", "22.0.4")
	reg := newOCIRegistry(t, registryOptions{})
	reg.pushChart(t, "bitnamicharts", "postgresql", "16.7.26", pg)
	reg.pushChart(t, "bitnamicharts", "redis", "22.0.4", redis)
	repo := "oci://" + reg.host + "/bitnamicharts"
	ctx := context.Background()

	f := &ChartFetcher{Cache: t.TempDir()}
	pkg := &pkgspec.Package{File: "p/package.yaml", Charts: []pkgspec.Chart{
		{Repo: repo, Chart: "postgresql", Version: "16.7.26", Digest: Digest(pg)},
		{Repo: repo + "/", Chart: "redis", Version: "22.0.4", Digest: Digest(redis)},
	}}
	got, err := f.Fetch(ctx, pkg)
	if err != nil {
		t.Fatal(err)
	}
	if Digest(got["postgresql"]) != Digest(pg) || Digest(got["redis"]) != Digest(redis) {
		t.Fatalf("Fetch returned archives with digests %s and %s, want the mirror's %s and %s", Digest(got["postgresql"]), Digest(got["redis"]), Digest(pg), Digest(redis))
	}
	if _, err := os.Stat(filepath.Join(f.Cache, strings.ReplaceAll(Digest(pg), ":", "-")+".tgz")); err != nil {
		t.Errorf("the archive was not cached: %v", err)
	}

	errs := map[string]struct {
		pkg  *pkgspec.Package
		want string
	}{
		"missing tag":     {ociPackage(repo, "postgresql", "9.9.9", Digest(pg)), "the repository " + repo + " has no chart postgresql version 9.9.9"},
		"missing chart":   {ociPackage(repo, "mysql", "1.0.0", Digest(pg)), "has no chart mysql version 1.0.0"},
		"other digest":    {ociPackage(repo, "redis", "22.0.4", Digest(pg)), "but the package pins " + Digest(pg)},
		"unreachable":     {ociPackage("oci://"+closedPort(t)+"/charts", "redis", "22.0.4", Digest(redis)), "cannot reach the OCI registry"},
		"not a reference": {ociPackage("oci:///charts", "redis", "22.0.4", Digest(redis)), "is not an OCI repository URL"},
	}
	for name, tc := range errs {
		t.Run(name, func(t *testing.T) {
			_, err := (&ChartFetcher{Cache: t.TempDir()}).Fetch(ctx, tc.pkg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Fetch error = %v, want it to contain %q", err, tc.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "p/package.yaml: chart ") {
				t.Errorf("Fetch error = %v, want it to name the package file and chart", err)
			}
		})
	}

	// Without a pinned digest the archive is accepted and recorded for the
	// lock, and an archive other than the locked one is refused.
	unpinned := ociPackage(repo, "redis", "22.0.4", "")
	fresh := &ChartFetcher{Cache: t.TempDir()}
	if _, err := fresh.Fetch(ctx, unpinned); err != nil {
		t.Fatal(err)
	}
	ref := ChartRef{Repo: repo, Chart: "redis", Version: "22.0.4"}
	if got := fresh.Resolved()[ref]; got != Digest(redis) {
		t.Errorf("Resolved()[%v] = %q, want %s", ref, got, Digest(redis))
	}
	locked := &ChartFetcher{Cache: t.TempDir(), Locked: map[ChartRef]string{ref: Digest(pg)}}
	var digestErr *ChartDigestError
	if _, err := locked.Fetch(ctx, unpinned); !errors.As(err, &digestErr) || digestErr.Pinned || digestErr.Want != Digest(pg) {
		t.Errorf("Fetch of another archive than the locked one: %v, want a *ChartDigestError for the lock", err)
	}

	// The cache serves the chart when the registry is gone.
	reg.srv.Close()
	if _, err := f.Fetch(ctx, pkg); err != nil {
		t.Errorf("Fetch from the cache: %v", err)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestOCIChartFetcherTLS(t *testing.T) {
	isolateCredentials(t)
	redis := mirrorChart(t, "redis", "22.0.3")
	reg := newOCIRegistry(t, registryOptions{tls: true})
	reg.pushChart(t, "bitnamicharts", "redis", "22.0.3", redis)
	pkg := ociPackage("oci://"+reg.host+"/bitnamicharts", "redis", "22.0.3", Digest(redis))

	got, err := (&ChartFetcher{Cache: t.TempDir(), Client: reg.client()}).Fetch(context.Background(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	if Digest(got["redis"]) != Digest(redis) {
		t.Errorf("Fetch over TLS returned digest %s, want %s", Digest(got["redis"]), Digest(redis))
	}

	// A client that does not trust the registry's certificate is refused.
	untrusting := reg.client()
	untrusting.Transport.(*http.Transport).TLSClientConfig = nil
	_, err = (&ChartFetcher{Cache: t.TempDir(), Client: untrusting}).Fetch(context.Background(), pkg)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Fetch with an untrusted certificate: error = %v, want a certificate error", err)
	}
}

func TestOCIChartFetcherAuth(t *testing.T) {
	isolateCredentials(t)
	redis := mirrorChart(t, "redis", "22.0.4")
	reg := newOCIRegistry(t, registryOptions{user: "berth", password: "s3cret-pass"})
	reg.pushChart(t, "bitnamicharts", "redis", "22.0.4", redis)
	pkg := ociPackage("oci://"+reg.host+"/bitnamicharts", "redis", "22.0.4", Digest(redis))
	ctx := context.Background()

	_, err := (&ChartFetcher{Cache: t.TempDir()}).Fetch(ctx, pkg)
	if err == nil || !strings.Contains(err.Error(), "refused access") {
		t.Fatalf("Fetch without credentials: error = %v, want the registry to refuse access", err)
	}

	// Credentials of 'helm registry login', in the file HELM_REGISTRY_CONFIG names.
	auths := map[string]any{"auths": map[string]any{reg.host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("berth:s3cret-pass"))}}}
	b, _ := json.Marshal(auths)
	if err := os.WriteFile(os.Getenv("HELM_REGISTRY_CONFIG"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := (&ChartFetcher{Cache: t.TempDir()}).Fetch(ctx, pkg)
	if err != nil {
		t.Fatalf("Fetch with credentials: %v", err)
	}
	if Digest(got["redis"]) != Digest(redis) {
		t.Errorf("Fetch returned digest %s, want %s", Digest(got["redis"]), Digest(redis))
	}
}
