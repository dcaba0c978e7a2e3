// Package testcluster gives tests a real Kubernetes API server: one local cluster
// shared by a whole test run, and a fresh namespace per test.
//
// The test command ('make test') starts one cluster and exports its kubeconfig in
// BERTH_TEST_KUBECONFIG, so every test binary reuses it. Without that variable the
// first test that asks starts a cluster of its own in a temporary BERTH_HOME, which
// Main stops when the test binary ends.
package testcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"berth.dev/berth/internal/localcluster"
)

// Environment variables read by the harness.
const (
	// EnvKubeconfig names the kubeconfig of a running cluster to share.
	EnvKubeconfig = "BERTH_TEST_KUBECONFIG"
	// EnvHome is the BERTH_HOME of that cluster; tests that create clusters of
	// their own create them there, so the test command can stop them all.
	EnvHome = "BERTH_TEST_HOME"
)

var shared struct {
	once    sync.Once
	cfg     *rest.Config
	err     error
	home    string
	started bool // this binary started the cluster and must stop it
}

// Main runs a package's tests and then stops the cluster this binary started, if
// any. Use it from TestMain: func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }.
func Main(m *testing.M) int {
	useChartMirror()
	code := m.Run()
	if shared.started {
		_, err := localcluster.Down(context.Background(), localcluster.DownOptions{Home: shared.home, Name: "shared", Purge: true})
		if err != nil {
			fmt.Fprintf(os.Stderr, "testcluster: stopping the shared cluster: %v\n", err)
			code = 1
		}
		_ = os.RemoveAll(shared.home)
	}
	return code
}

// Config returns an admin client configuration for the shared cluster, starting it
// on first use. Client rate limits are lifted: the API server is the limit in tests.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	shared.once.Do(func() { shared.cfg, shared.err = connect() })
	if shared.err != nil {
		t.Fatalf("testcluster: %v", shared.err)
	}
	cfg := rest.CopyConfig(shared.cfg)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.WarningHandler = rest.NoWarnings{}
	return cfg
}

func connect() (*rest.Config, error) {
	if kc := os.Getenv(EnvKubeconfig); kc != "" {
		shared.home = os.Getenv(EnvHome)
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvKubeconfig, kc, err)
		}
		return cfg, nil
	}
	home, err := os.MkdirTemp("", "berth-test-home-")
	if err != nil {
		return nil, err
	}
	shared.home = home
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, _, err := localcluster.Up(ctx, localcluster.UpOptions{Home: home, Name: "shared", Nodes: 3})
	shared.started = true // even a failed start may have left state to remove
	if err != nil {
		return nil, fmt.Errorf("starting the shared test cluster: %w", err)
	}
	// As 'berth up' does: stand-ins for the controllers of custom resources.
	bin, err := buildBerth()
	if err != nil {
		return nil, fmt.Errorf("building berth for the shared test cluster's stand-ins: %w", err)
	}
	if err := c.StartStandIns(ctx, bin); err != nil {
		return nil, err
	}
	return c.RESTConfig()
}

// Home returns a BERTH_HOME for tests that create clusters of their own: the shared
// cluster's home when the test command provides one (so that it stops whatever
// is left there at the end), else a temporary directory of the test.
func Home(t testing.TB) string {
	t.Helper()
	if h := os.Getenv(EnvHome); h != "" {
		return h
	}
	return t.TempDir()
}

// Clientset returns a typed client for the shared cluster.
func Clientset(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(Config(t))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9-]+`)

// UniqueName returns a DNS-label-safe name derived from the test's name with a
// random suffix, at most maxLen characters.
func UniqueName(t testing.TB, maxLen int) string {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	suffix := "-" + hex.EncodeToString(b[:])
	base := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if max := maxLen - len(suffix); len(base) > max {
		base = strings.Trim(base[:max], "-")
	}
	return base + suffix
}

// Namespace creates a namespace for the calling test, waits until pods can be
// created in it (its default service account exists), and deletes it when the test
// ends.
func Namespace(t testing.TB) string {
	t.Helper()
	cs := Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := UniqueName(t, 63)
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"berth.dev/test": "true"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		err := cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("waiting for the default service account in %s: %v", name, err)
	}
	return name
}

// BinDir returns the directory of the control plane binaries (built on first use),
// for tests that start clusters of their own or run kubectl.
func BinDir(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := localcluster.EnsureBinaries(ctx, localcluster.DefaultBuildOptions())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Kubectl returns the path of the kubectl built with the control plane.
func Kubectl(t testing.TB) string {
	t.Helper()
	return filepath.Join(BinDir(t), localcluster.BinKubectl)
}
