package localcluster

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readCert(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	kp, err := loadKeyPair("t", dir, name)
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return kp.cert
}

func TestEnsurePKICreatesAChainLikeKubeadm(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if err := ensurePKI("t", dir, now); err != nil {
		t.Fatal(err)
	}
	pool := func(name string) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(readCert(t, dir, name))
		return p
	}
	verify := func(name, ca string, usage x509.ExtKeyUsage, host string) error {
		_, err := readCert(t, dir, name).Verify(x509.VerifyOptions{
			Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: host, CurrentTime: now,
		})
		return err
	}
	tests := map[string]struct {
		cert, ca string
		usage    x509.ExtKeyUsage
		host     string
		wantOK   bool
	}{
		"api server serves 127.0.0.1":             {"apiserver", caName, x509.ExtKeyUsageServerAuth, "127.0.0.1", true},
		"api server serves localhost":             {"apiserver", caName, x509.ExtKeyUsageServerAuth, "localhost", true},
		"api server serves the in-cluster name":   {"apiserver", caName, x509.ExtKeyUsageServerAuth, "kubernetes.default.svc", true},
		"api server does not serve other hosts":   {"apiserver", caName, x509.ExtKeyUsageServerAuth, "example.com", false},
		"admin is a client of the cluster CA":     {"admin", caName, x509.ExtKeyUsageClientAuth, "", true},
		"admin cannot be used as a server":        {"admin", caName, x509.ExtKeyUsageServerAuth, "", false},
		"admin does not open etcd":                {"admin", etcdCAName, x509.ExtKeyUsageClientAuth, "", false},
		"api server's etcd client opens etcd":     {"apiserver-etcd-client", etcdCAName, x509.ExtKeyUsageClientAuth, "", true},
		"etcd serves loopback":                    {"etcd-server", etcdCAName, x509.ExtKeyUsageServerAuth, "127.0.0.1", true},
		"etcd's certificate is its peer client":   {"etcd-server", etcdCAName, x509.ExtKeyUsageClientAuth, "", true},
		"controller-manager is a cluster client":  {"kube-controller-manager", caName, x509.ExtKeyUsageClientAuth, "", true},
		"kwok is a cluster client":                {"kwok", caName, x509.ExtKeyUsageClientAuth, "", true},
		"scheduler is not trusted by the etcd CA": {"kube-scheduler", etcdCAName, x509.ExtKeyUsageClientAuth, "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := verify(tc.cert, tc.ca, tc.usage, tc.host)
			if (err == nil) != tc.wantOK {
				t.Fatalf("verify %s against %s for %q: err=%v, want ok=%v", tc.cert, tc.ca, tc.host, err, tc.wantOK)
			}
		})
	}
	admin := readCert(t, dir, "admin")
	if admin.Subject.CommonName != "kubernetes-admin" || len(admin.Subject.Organization) != 1 || admin.Subject.Organization[0] != "system:masters" {
		t.Errorf("admin subject = %v, want CN=kubernetes-admin O=system:masters", admin.Subject)
	}
	for _, name := range []string{"ca.key", "admin.key", "sa.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

func TestEnsurePKIIsIdempotentAndRenewsOnlyWhatItMust(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if err := ensurePKI("t", dir, now); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	if err := ensurePKI("t", dir, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, data := range snapshot(t, dir) {
		if !bytes.Equal(data, before[name]) {
			t.Errorf("second run rewrote %s", name)
		}
	}

	// Close to the leaves' expiry: leaves are renewed, the CAs and keys of the
	// service accounts stay (tokens issued before must still verify).
	later := now.Add(leafValidity - renewBefore/2)
	if err := ensurePKI("t", dir, later); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, dir)
	for _, same := range []string{"ca.crt", "ca.key", "etcd-ca.crt", "sa.key", "sa.pub"} {
		if !bytes.Equal(after[same], before[same]) {
			t.Errorf("renewal changed %s", same)
		}
	}
	if bytes.Equal(after["apiserver.crt"], before["apiserver.crt"]) {
		t.Fatal("apiserver.crt was not renewed near expiry")
	}
	if got := readCert(t, dir, "apiserver").NotAfter; !got.After(later.Add(renewBefore)) {
		t.Errorf("renewed apiserver.crt expires %v, too soon after %v", got, later)
	}

	// A lost CA takes the certificates it signed with it.
	if err := os.Remove(filepath.Join(dir, "etcd-ca.key")); err != nil {
		t.Fatal(err)
	}
	if err := ensurePKI("t", dir, later); err != nil {
		t.Fatal(err)
	}
	newCA := readCert(t, dir, etcdCAName)
	if err := readCert(t, dir, "etcd-server").CheckSignatureFrom(newCA); err != nil {
		t.Errorf("etcd-server.crt not re-signed by the new etcd CA: %v", err)
	}
	if !bytes.Equal(snapshot(t, dir)["ca.crt"], before["ca.crt"]) {
		t.Error("losing the etcd CA replaced the cluster CA")
	}
}

func TestEnsurePKIReportsCorruptFiles(t *testing.T) {
	tests := map[string]struct {
		file string
		data []byte
	}{
		"garbage certificate":       {"apiserver.crt", []byte("not a certificate")},
		"garbage key":               {"admin.key", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
		"garbage CA":                {"ca.crt", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
		"garbage account key":       {"sa.key", []byte("nope")},
		"certificate of another CA": {"kwok.crt", nil}, // data filled in below
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := ensurePKI("t", dir, time.Now()); err != nil {
				t.Fatal(err)
			}
			data := tc.data
			if data == nil {
				// A well-formed certificate that the cluster CA did not sign.
				var err error
				if data, err = os.ReadFile(filepath.Join(dir, "etcd-server.crt")); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			err := ensurePKI("t", dir, time.Now())
			var corrupt *CorruptStateError
			if !errors.As(err, &corrupt) {
				t.Fatalf("got %v, want a CorruptStateError", err)
			}
			if corrupt.Path != path {
				t.Errorf("error names %s, want %s", corrupt.Path, path)
			}
			if got := err.Error(); !bytes.Contains([]byte(got), []byte("berth down --name t --purge")) {
				t.Errorf("error %q does not say how to recover", got)
			}
		})
	}
}
