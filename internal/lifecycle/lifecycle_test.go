package lifecycle

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
	testcatalog "berth.dev/berth/test/catalog"
)

// TestMain runs the tests against the fixture catalog (test/catalog) as the
// built-in one; tests of the real built-in catalog open it with catalog.Embedded.
func TestMain(m *testing.M) {
	testcatalog.Use()
	os.Exit(testcluster.Main(m))
}

// filterBinary is the berth binary git runs as the encryption filter.
func filterBinary(t *testing.T) string { return testcluster.BerthBinary(t) }

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newEnv creates a workspace with encryption set up, over the built-in catalog.
func newEnv(t *testing.T, cfg *rest.Config) *Env {
	t.Helper()
	ctx := context.Background()
	home := t.TempDir()
	ws, _, err := Init(ctx, filepath.Join(t.TempDir(), "ws"), InitOptions{Home: home, Executable: filterBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	set, err := catalog.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{WS: ws, Catalogs: set}
	if cfg != nil {
		env.Cluster = func() (*rest.Config, error) { return cfg, nil }
	}
	return env
}

func TestInstallWritesACommittedAppWithEncryptedSecretsAndALock(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	res, err := env.Install(ctx, InstallOptions{Package: "airflow", Values: map[string]any{
		"workers":       "3",
		"adminPassword": "correct horse battery staple",
		"postgresql":    map[string]any{"storage": "20Gi"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	root := env.WS.Root
	lock, err := env.WS.Lock()
	if err != nil {
		t.Fatal(err)
	}
	version := func(key string) string {
		in, ok := lock.Get(key)
		if !ok || !strings.HasPrefix(in.Digest, "sha256:") {
			t.Errorf("lock entry %s = %+v, %v", key, in, ok)
		}
		return in.Version
	}
	want := "install airflow " + version("app:airflow") + " (+ postgresql " + version("app:airflow/postgresql") + ", redis " + version("app:airflow/redis") + ")"
	if got := git(t, root, "log", "-1", "--format=%s"); got != want {
		t.Errorf("commit message %q, want %q", got, want)
	}
	if res.App != "airflow" || len(res.Apps) != 1 {
		t.Errorf("result = %+v", res)
	}
	if st := git(t, root, "status", "--porcelain"); st != "" {
		t.Errorf("workspace not clean after install:\n%s", st)
	}
	a, err := env.WS.App("airflow")
	if err != nil {
		t.Fatal(err)
	}
	if a.Channel != "stable" || a.Namespace != "airflow" || a.Values["workers"] != float64(3) && a.Values["workers"] != int64(3) {
		t.Errorf("app.yaml = %+v", a)
	}
	if _, leaked := a.Values["adminPassword"]; leaked {
		t.Error("a secret value is in app.yaml")
	}
	// Secrets are encrypted in git and readable in the work tree.
	blob := git(t, root, "cat-file", "-p", "HEAD:apps/airflow/secrets.yaml")
	if !strings.HasPrefix(blob, "\x00GITCRYPT\x00") {
		t.Errorf("secrets.yaml is committed in plaintext: %q", blob[:min(len(blob), 40)])
	}
	s, err := env.readSecrets("airflow")
	if err != nil {
		t.Fatal(err)
	}
	if s.Values["adminPassword"] != "correct horse battery staple" {
		t.Errorf("secret values = %v", s.Values)
	}
	// No secret value in any blob of the history: not the one set, not the
	// generated ones in rendered Secrets.
	objs, err := env.WS.ReadRendered("airflow")
	if err != nil {
		t.Fatal(err)
	}
	phases := map[string]bool{}
	values := [][]byte{[]byte("correct horse battery staple")}
	for _, o := range objs {
		phases[o.GetAnnotations()[AnnotationPhase]] = true
		if o.GetKind() != "Secret" {
			continue
		}
		secretKey := func(k string) bool {
			lk := strings.ToLower(k)
			return strings.Contains(lk, "password") || strings.Contains(lk, "secret") || strings.Contains(lk, "key")
		}
		data, _, _ := unstructured.NestedStringMap(o.Object, "data")
		for k, v := range data {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatalf("secret %s key %s is not base64", o.GetName(), k)
			}
			if secretKey(k) {
				values = append(values, raw)
			}
		}
		stringData, _, _ := unstructured.NestedStringMap(o.Object, "stringData")
		for k, v := range stringData {
			if secretKey(k) {
				values = append(values, []byte(v))
			}
		}
	}
	if len(values) < 3 {
		t.Fatalf("airflow renders %d secret values; the leak check below would prove little", len(values)-1)
	}
	// Every object of the repository, raw and base64: the set password and
	// every generated one stay encrypted.
	leaks, err := secrets.ScanObjects(ctx, root, values)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) > 0 {
		t.Errorf("secret values in plaintext in git objects: %+v", leaks)
	}
	// Parts in order: postgresql (0x), redis (1x), airflow (2x); within each the
	// stages crds (x0), pre (x1), main (x2), post (x3). Airflow's migration Job
	// is a pre-install hook.
	for _, p := range []string{"2", "12", "21", "22"} {
		if !phases[p] {
			t.Errorf("no object in phase %s; phases: %v", p, phases)
		}
	}

	// Build with nothing changed is a no-op: same bytes, no commit.
	head := git(t, root, "rev-parse", "HEAD")
	b, err := env.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Committed || git(t, root, "rev-parse", "HEAD") != head {
		t.Error("a build with nothing changed made a commit")
	}
}

func TestInstallRejectsBadInputAndLeavesTheWorkspaceAsItWas(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t, nil)
	root := env.WS.Root
	head := git(t, root, "rev-parse", "HEAD")
	tests := map[string]struct {
		opts    InstallOptions
		wantErr string
	}{
		"unknown package":                    {InstallOptions{Package: "no-such-package"}, "no-such-package"},
		"unknown version":                    {InstallOptions{Package: "airflow@9.9.9"}, `no version or channel "9.9.9"`},
		"impossible range":                   {InstallOptions{Package: "postgresql@>=99"}, "postgresql"},
		"value of wrong type":                {InstallOptions{Package: "airflow", Values: map[string]any{"workers": "many"}}, "workers"},
		"rule broken":                        {InstallOptions{Package: "airflow", Values: map[string]any{"workers": "0"}}, "the CeleryExecutor needs at least one worker"},
		"unknown parameter":                  {InstallOptions{Package: "airflow", Values: map[string]any{"colour": "blue"}}, "colour"},
		"bad app name":                       {InstallOptions{Package: "redis", Name: "Redis_1"}, `app name "Redis_1" is not valid`},
		"bad namespace":                      {InstallOptions{Package: "redis", Namespace: "BAD_NS"}, `namespace "BAD_NS" is not valid`},
		"required value when nobody may ask": {InstallOptions{Package: "airflow", Values: map[string]any{"executor": "LocalExecutor", "baseUrl": "ftp://x"}}, "baseUrl"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := env.Install(ctx, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
			if got := git(t, root, "rev-parse", "HEAD"); got != head {
				t.Error("a failed install made a commit")
			}
			if st := git(t, root, "status", "--porcelain", "--untracked-files=all"); st != "" {
				t.Errorf("a failed install left changes:\n%s", st)
			}
		})
	}
	// A second install under a taken name.
	if _, err := env.Install(ctx, InstallOptions{Package: "redis"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Install(ctx, InstallOptions{Package: "redis"}); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Errorf("installing redis twice: %v", err)
	}
	// Two apps in one namespace would take it from each other.
	if _, err := env.Install(ctx, InstallOptions{Package: "redis", Name: "cache2", Namespace: "redis"}); err == nil || !strings.Contains(err.Error(), "namespace redis already holds app redis") {
		t.Errorf("installing a second app into namespace redis: %v", err)
	}
}

// A change the API server would refuse (a StatefulSet's claim template) is
// refused before it is committed.
func TestPreflightRefusesWhatTheClusterWouldRefuseBeforeCommitting(t *testing.T) {
	ctx := context.Background()
	cfg := testcluster.Config(t)
	env := newEnv(t, cfg)
	name := testcluster.UniqueName(t, 20)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), name, metav1DeleteOptions)
	})
	if _, err := env.Install(ctx, InstallOptions{Package: "redis", Name: name}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Deploy(ctx, DeployOptions{Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	env.Preflight = true
	head := git(t, env.WS.Root, "rev-parse", "HEAD")
	_, err := env.Config(ctx, ConfigOptions{App: name, Values: map[string]any{"storage": "4Gi"}})
	var pe *PreflightError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "StatefulSet") {
		t.Fatalf("config storage=4Gi: %v, want a PreflightError naming the StatefulSet", err)
	}
	if got := git(t, env.WS.Root, "rev-parse", "HEAD"); got != head {
		t.Error("a refused change was committed")
	}
	if st := git(t, env.WS.Root, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Errorf("a refused change left files:\n%s", st)
	}
	// An acceptable change passes the check.
	if _, err := env.Config(ctx, ConfigOptions{App: name, Values: map[string]any{"evictionPolicy": "allkeys-lru"}}); err != nil {
		t.Errorf("an acceptable change was refused: %v", err)
	}
}

func TestInstallAsksThroughTheWizardHook(t *testing.T) {
	env := newEnv(t, nil)
	var asked map[string]any
	ask := func(ctx context.Context, pkg *pkgspec.Package, given map[string]any) (map[string]any, error) {
		asked = given
		return map[string]any{"maxMemory": "512Mi"}, nil
	}
	if _, err := env.Install(context.Background(), InstallOptions{Package: "redis", Values: map[string]any{"persistence": "true"}, Ask: ask}); err != nil {
		t.Fatal(err)
	}
	if asked["persistence"] != "true" {
		t.Errorf("the wizard was given %v, want the values set up front", asked)
	}
	a, err := env.WS.App("redis")
	if err != nil {
		t.Fatal(err)
	}
	if a.Values["maxMemory"] != "512Mi" {
		t.Errorf("app values = %v, want the wizard's answer recorded", a.Values)
	}
}

// countingTransport counts mutating requests.
type countingTransport struct {
	rt     http.RoundTripper
	writes atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		c.writes.Add(1)
	}
	return c.rt.RoundTrip(r)
}

func TestDeployBringsAnAppWithComponentsToHealthAndAgainWithoutWrites(t *testing.T) {
	ctx := context.Background()
	cfg := testcluster.Config(t)
	counter := &countingTransport{}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.rt = rt; return counter }
	env := newEnv(t, cfg)
	name := testcluster.UniqueName(t, 20)
	ns := name
	if _, err := env.Install(ctx, InstallOptions{Package: "airflow", Name: name, Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs := testcluster.Clientset(t)
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1DeleteOptions)
	})
	res, err := env.Deploy(ctx, DeployOptions{Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if len(res.Apps) != 1 || res.Apps[0].Actions["create"] == 0 {
		t.Fatalf("deploy result = %+v", res)
	}
	before := counter.writes.Load()
	res, err = env.Deploy(ctx, DeployOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatalf("second deploy: %v", err)
	}
	if writes := counter.writes.Load() - before; writes != 0 {
		t.Errorf("second deploy of an unchanged workspace made %d writes, want 0 (actions %v)", writes, res.Apps[0].Actions)
	}
	// A deployed app has not drifted: status plans it and finds nothing to do.
	st, err := env.Status(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Summary() != HealthHealthy {
		t.Errorf("status after the deploy = %+v, want plain Healthy", st)
	}
}

var metav1DeleteOptions = metav1.DeleteOptions{}
