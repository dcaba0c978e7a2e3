package testcluster

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var berthBinary struct {
	once sync.Once
	path string
	err  error
}

// BerthBinary builds cmd/berth once per test binary and returns its path, for
// tests where another program runs berth (git runs it as the encryption filter).
func BerthBinary(t testing.TB) string {
	t.Helper()
	path, err := buildBerth()
	if err != nil {
		t.Fatalf("building berth: %v", err)
	}
	return path
}

func buildBerth() (string, error) {
	berthBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-test-bin-")
		if err != nil {
			berthBinary.err = err
			return
		}
		berthBinary.path = filepath.Join(dir, "berth")
		out, err := exec.Command("go", "build", "-o", berthBinary.path, "berth.dev/berth/cmd/berth").CombinedOutput()
		if err != nil {
			berthBinary.err = errors.New(string(out))
		}
	})
	return berthBinary.path, berthBinary.err
}

// Kubeconfig returns the path of an admin kubeconfig of the shared cluster.
func Kubeconfig(t testing.TB) string {
	t.Helper()
	Config(t)
	if kc := os.Getenv(EnvKubeconfig); kc != "" {
		return kc
	}
	return filepath.Join(shared.home, "clusters", "shared", "kubeconfig")
}
