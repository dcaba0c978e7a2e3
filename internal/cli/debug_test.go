package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/prometheus/client_golang/prometheus"

	"berth.dev/berth/internal/controller"
	"berth.dev/berth/internal/testcluster"
)

// startController runs a controller in process with its metrics (and pprof)
// on a free loopback port, and returns it.
func startController(t *testing.T, secure bool) *controller.Controller {
	t.Helper()
	opts := controller.DefaultOptions()
	opts.Namespace, opts.CacheDir = testcluster.Namespace(t), t.TempDir()
	opts.MetricsAddr, opts.ProbeAddr, opts.WebhookAddr = "127.0.0.1:0", "0", "0"
	opts.SecureMetrics = secure
	opts.Registry = prometheus.NewRegistry()
	c, err := controller.New(testcluster.Config(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// The metrics server listens once the manager started.
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		conn, err := net.Dial("tcp", c.MetricsAddr())
		if err != nil {
			return false, err.Error(), nil
		}
		return true, "", conn.Close()
	})
	return c
}

func requireProfile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not a gzipped profile: %v", path, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil || len(raw) == 0 {
		t.Fatalf("%s: empty or broken profile (%d bytes, %v)", path, len(raw), err)
	}
}

func TestDebugProfileFetchesACPUProfileFromALocalController(t *testing.T) {
	c := startController(t, false)
	out := filepath.Join(t.TempDir(), "cpu.pprof")
	stdout, stderr, code := run(t, "debug", "profile", "--addr", c.MetricsAddr(), "--seconds", "1", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	requireProfile(t, out)
	if !strings.Contains(stdout, out) {
		t.Errorf("output does not name the file: %s", stdout)
	}

	_, stderr, code = run(t, "debug", "profile", "--addr", c.MetricsAddr(), "--seconds", "0", "-o", out)
	if code == 0 || !strings.Contains(stderr, "--seconds 0") {
		t.Errorf("--seconds 0: exit %d, %s", code, stderr)
	}
}

// With --metrics-secure, pprof answers only a bearer token the API server
// authenticates, for a user RBAC allows to get /debug/pprof/*.
func TestDebugProfileNeedsAnAuthorizedTokenOnASecureMetricsPort(t *testing.T) {
	c := startController(t, true)
	base := "https://" + c.MetricsAddr()
	dir := t.TempDir()
	out := filepath.Join(dir, "cpu.pprof")

	_, stderr, code := run(t, "debug", "profile", "--addr", base, "--seconds", "1", "-o", out)
	if code == 0 || !strings.Contains(stderr, "401") {
		t.Fatalf("no token: exit %d, want a refusal naming 401: %s", code, stderr)
	}

	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(testcluster.Config(t))
	ns := testcluster.Namespace(t)
	token := func(sa string) string {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, sa+".token")
		if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	stranger, profiler := token("stranger"), token("profiler")
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns + "-pprof"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/debug/pprof/*"}, Verbs: []string{"get"}}}}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{}) })
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-pprof"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "profiler", Namespace: ns}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})

	_, stderr, code = run(t, "debug", "profile", "--addr", base, "--token-file", stranger, "--seconds", "1", "-o", out)
	if code == 0 || !strings.Contains(stderr, "403") {
		t.Fatalf("a token without the RBAC rule: exit %d, want a refusal naming 403: %s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused profile left %s behind (%v)", out, err)
	}

	stdout, stderr, code := run(t, "debug", "profile", "--addr", base, "--token-file", profiler, "--seconds", "1", "-o", out)
	if code != 0 {
		t.Fatalf("an allowed token: exit %d\n%s\n%s", code, stdout, stderr)
	}
	requireProfile(t, out)
}

func TestLocalMetricsAddrReadsTheLastStart(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "controller.log")
	lines := `{"time":"x","level":"INFO","msg":"berth controller starting","metrics":"127.0.0.1:1111"}
{"time":"x","level":"INFO","msg":"reconciled"}
not json
{"time":"x","level":"INFO","msg":"berth controller starting","metrics":"127.0.0.1:2222"}
`
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, err := localMetricsAddr(log)
	if err != nil || addr != "127.0.0.1:2222" {
		t.Fatalf("got %q, %v; want the last start's address", addr, err)
	}
	if err := os.WriteFile(log, []byte(`{"msg":"reconciled"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := localMetricsAddr(log); err == nil || !strings.Contains(err.Error(), "names no metrics address") {
		t.Fatalf("a log without a start: %v", err)
	}
}
