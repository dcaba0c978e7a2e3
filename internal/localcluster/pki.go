package localcluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The cluster's PKI mirrors kubeadm's: a cluster CA for the API server and its
// clients, a separate etcd CA so that no Kubernetes client certificate opens etcd,
// and a key pair for signing service account tokens.
const (
	caName     = "ca"
	etcdCAName = "etcd-ca"
	saKeyName  = "sa"

	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// Leaf certificates this close to expiry are renewed at the next start.
	renewBefore = 30 * 24 * time.Hour
)

type certSpec struct {
	name   string
	ca     string
	cn     string
	orgs   []string
	server bool
	client bool
	dns    []string
	ips    []net.IP
}

var loopbackIPs = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}

// serviceIP is the first address of the service range: the in-cluster address of
// the kubernetes Service.
const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
)

// leafCertsFor lists the leaf certificates of a cluster whose kubernetes
// Service has the address svcIP.
func leafCertsFor(svcIP string) []certSpec {
	certs := slices.Clone(leafCerts)
	certs[0].ips = append([]net.IP{net.ParseIP(svcIP)}, loopbackIPs...)
	return certs
}

var leafCerts = []certSpec{
	{name: "apiserver", ca: caName, cn: "kube-apiserver", server: true,
		dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		ips: append([]net.IP{net.ParseIP(serviceIP)}, loopbackIPs...)},
	{name: "admin", ca: caName, cn: "kubernetes-admin", orgs: []string{"system:masters"}, client: true},
	{name: "kube-controller-manager", ca: caName, cn: "system:kube-controller-manager", client: true},
	{name: "kube-scheduler", ca: caName, cn: "system:kube-scheduler", client: true},
	{name: "kwok", ca: caName, cn: kwokUser, client: true},
	// etcd serves clients and its (single) peer with the same certificate.
	{name: "etcd-server", ca: etcdCAName, cn: "etcd-server", server: true, client: true,
		dns: []string{"localhost"}, ips: loopbackIPs},
	{name: "apiserver-etcd-client", ca: etcdCAName, cn: "kube-apiserver-etcd-client", client: true},
}

// kwokUser is the identity kwok acts as; RBAC grants it what kubelets need.
const kwokUser = "berth:kwok"

// CorruptStateError reports a cluster state file that cannot be used as it is.
type CorruptStateError struct {
	Cluster string
	Path    string
	Err     error
}

func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("cluster %q: state file %s is corrupt (%v); remove the cluster with 'berth down --name %s --purge' and create it again with 'berth up --name %s'",
		e.Cluster, e.Path, e.Err, e.Cluster, e.Cluster)
}

func (e *CorruptStateError) Unwrap() error { return e.Err }

type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// ensurePKI creates whatever certificates and keys are missing in dir, renews leaf
// certificates near expiry, and checks that the rest parse and chain to their CA.
func ensurePKI(cluster, dir string, now time.Time) error {
	return ensurePKIFor(cluster, dir, now, serviceIP)
}

// ensurePKIFor is ensurePKI for a cluster whose kubernetes Service has the
// address svcIP, which the API server's certificate names.
func ensurePKIFor(cluster, dir string, now time.Time, svcIP string) error {
	leafCerts := leafCertsFor(svcIP)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cas := map[string]keyPair{}
	for _, name := range []string{caName, etcdCAName} {
		ca, err := loadKeyPair(cluster, dir, name)
		if errors.Is(err, os.ErrNotExist) {
			// A new CA invalidates every certificate it signed before.
			for _, leaf := range leafCerts {
				if leaf.ca == name {
					removeKeyPair(dir, leaf.name)
				}
			}
			ca, err = newCA(dir, name, now)
		}
		if err != nil {
			return err
		}
		cas[name] = ca
	}
	for _, spec := range leafCerts {
		ca := cas[spec.ca]
		kp, err := loadKeyPair(cluster, dir, spec.name)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		case kp.cert.CheckSignatureFrom(ca.cert) != nil:
			return &CorruptStateError{Cluster: cluster, Path: certPath(dir, spec.name), Err: fmt.Errorf("not signed by %s", certPath(dir, spec.ca))}
		case kp.cert.NotAfter.Sub(now) > renewBefore:
			continue
		}
		if err := newLeaf(dir, spec, ca, now); err != nil {
			return err
		}
	}
	return ensureSAKey(cluster, dir)
}

func certPath(dir, name string) string { return filepath.Join(dir, name+".crt") }
func keyPath(dir, name string) string  { return filepath.Join(dir, name+".key") }

func removeKeyPair(dir, name string) {
	_ = os.Remove(certPath(dir, name))
	_ = os.Remove(keyPath(dir, name))
}

// loadKeyPair reads name.crt and name.key; it returns an error wrapping
// os.ErrNotExist when either is missing, and a CorruptStateError when either does
// not parse.
func loadKeyPair(cluster, dir, name string) (keyPair, error) {
	certPEM, err := os.ReadFile(certPath(dir, name))
	if err != nil {
		return keyPair{}, err
	}
	keyPEM, err := os.ReadFile(keyPath(dir, name))
	if err != nil {
		return keyPair{}, err
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return keyPair{}, &CorruptStateError{Cluster: cluster, Path: certPath(dir, name), Err: errors.New("no PEM certificate")}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return keyPair{}, &CorruptStateError{Cluster: cluster, Path: certPath(dir, name), Err: err}
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return keyPair{}, &CorruptStateError{Cluster: cluster, Path: keyPath(dir, name), Err: err}
	}
	return keyPair{cert: cert, key: key}, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM private key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return signer, nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// writeKeyPair writes the key before the certificate: a crash between the two
// leaves a key without a certificate, which counts as missing and is regenerated.
func writeKeyPair(dir, name string, der []byte, key crypto.Signer) error {
	if err := writeKey(keyPath(dir, name), key); err != nil {
		return err
	}
	return writeFileAtomic(certPath(dir, name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(dir, name string, now time.Time) (keyPair, error) {
	key, err := newKey()
	if err != nil {
		return keyPair{}, err
	}
	sn, err := serial()
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "berth-" + name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return keyPair{}, err
	}
	if err := writeKeyPair(dir, name, der, key); err != nil {
		return keyPair{}, err
	}
	cert, _ := x509.ParseCertificate(der)
	return keyPair{cert: cert, key: key}, nil
}

func newLeaf(dir string, spec certSpec, ca keyPair, now time.Time) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: spec.cn, Organization: spec.orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     spec.dns,
		IPAddresses:  spec.ips,
	}
	if spec.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return err
	}
	return writeKeyPair(dir, spec.name, der, key)
}

// ensureSAKey creates the service account signing key pair (sa.key, sa.pub).
func ensureSAKey(cluster, dir string) error {
	keyFile, pubFile := keyPath(dir, saKeyName), filepath.Join(dir, saKeyName+".pub")
	data, err := os.ReadFile(keyFile)
	var key crypto.Signer
	switch {
	case errors.Is(err, os.ErrNotExist):
		k, err := newKey()
		if err != nil {
			return err
		}
		if err := writeKey(keyFile, k); err != nil {
			return err
		}
		key = k
	case err != nil:
		return err
	default:
		if key, err = parseKey(data); err != nil {
			return &CorruptStateError{Cluster: cluster, Path: keyFile, Err: err}
		}
	}
	// The public half is derived, so it is rewritten every time.
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	return writeFileAtomic(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}
