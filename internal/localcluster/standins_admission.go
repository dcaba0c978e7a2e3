package localcluster

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Admission webhooks on a local cluster.
//
// The API server calls a webhook at its Service's cluster IP. On a local
// cluster nothing listens there (kwok simulates pods, it runs no containers,
// and no kube-proxy routes cluster IPs), so a call would hang until the
// webhook's timeout and then fail: every create of a cert-manager resource
// would be refused (cert-manager's webhooks fail closed) and every pod create
// would wait 30 seconds while Vault's injector is installed.
//
// The local cluster's API server therefore sends its traffic to the cluster
// network (the "cluster" egress: webhooks, kubelets) through the stand-ins,
// an HTTP CONNECT proxy on a Unix socket (--egress-selector-config-file):
//
//   - a cluster IP of a Service that cert-manager's webhook configurations name
//     is answered by the stand-ins themselves, over TLS with a certificate of
//     the CA they gave those configurations (as cert-manager's webhook makes
//     its CA and its CA injector writes it into them); every admission review
//     is allowed, unchanged: nothing is validated or defaulted;
//   - any other cluster IP is refused at once, so the call fails without
//     waiting, and the webhook's failurePolicy decides;
//   - any other address (a node's kubelet) is passed through.

// EgressSocket returns the Unix socket the cluster's API server sends its
// cluster traffic through, served by the stand-ins.
func (c *Cluster) EgressSocket() string { return filepath.Join(c.Dir, "stand-ins.sock") }

// maxSocketPath bounds a Unix socket path (108 bytes on Linux, with the NUL).
const maxSocketPath = 107

// egressConfigFile returns the API server's egress selector configuration,
// or "" when the socket's path is too long to be one.
func (c *Cluster) egressConfigFile() string {
	if len(c.EgressSocket()) > maxSocketPath {
		return ""
	}
	return filepath.Join(c.Dir, "egress-selector.yaml")
}

// writeEgressConfig writes the API server's egress selector configuration.
func (c *Cluster) writeEgressConfig() error {
	f := c.egressConfigFile()
	if f == "" {
		return nil
	}
	cfg := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
  - name: cluster
    connection:
      proxyProtocol: HTTPConnect
      transport:
        uds:
          udsName: %s
`, c.EgressSocket())
	return writeFileAtomic(f, []byte(cfg), 0o644)
}

func listenEgress(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing the old stand-ins socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("serving the API server's egress on %s: %w", path, err)
	}
	return l, nil
}

var (
	servicesGVR           = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	secretsGVR            = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	validatingWebhooksGVR = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}
	mutatingWebhooksGVR   = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
)

// injectCAFromSecret is the annotation by which cert-manager's CA injector
// fills a webhook configuration's caBundle from a Secret (NAMESPACE/NAME).
const injectCAFromSecret = "cert-manager.io/inject-ca-from-secret"

// egress is the API server's HTTP CONNECT proxy to the cluster network.
type egress struct {
	dyn dynamic.Interface
	cas *webhookCAs
	log io.Writer
}

func (e *egress) serve(ctx context.Context, l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				fmt.Fprintf(e.log, "egress: %v\n", err)
			}
			return
		}
		go e.handle(ctx, conn)
	}
}

func (e *egress) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		reply(conn, http.StatusMethodNotAllowed, "the stand-ins' egress proxy serves CONNECT only")
		return
	}
	host, port, err := net.SplitHostPort(req.Host)
	if err != nil {
		reply(conn, http.StatusBadRequest, err.Error())
		return
	}
	ip := net.ParseIP(host)
	_, services, _ := net.ParseCIDR(serviceCIDR)
	if ip == nil || !services.Contains(ip) {
		e.tunnel(ctx, conn, br, req.Host)
		return
	}
	svc, hook, err := e.webhookService(ctx, host, port)
	if err != nil {
		reply(conn, http.StatusBadGateway, err.Error())
		return
	}
	if hook == nil {
		fmt.Fprintf(e.log, "egress: refused a connection to %s (%s): nothing answers there on a local cluster\n", req.Host, svc)
		reply(conn, http.StatusServiceUnavailable, fmt.Sprintf("berth's local cluster cannot reach %s (%s): kwok simulates its pods, nothing listens", req.Host, svc))
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	e.answer(ctx, &bufferedConn{Conn: conn, r: br}, hook)
}

// tunnel passes a connection through to addr.
func (e *egress) tunnel(ctx context.Context, conn net.Conn, br *bufio.Reader, addr string) {
	d := net.Dialer{Timeout: 10 * time.Second}
	up, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		reply(conn, http.StatusBadGateway, err.Error())
		return
	}
	defer up.Close()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}

func reply(conn net.Conn, code int, msg string) {
	fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", code, http.StatusText(code), len(msg), msg)
}

// standInHook is a webhook Service the stand-ins answer for.
type standInHook struct {
	service   string // NAMESPACE/NAME
	host      string // NAME.NAMESPACE.svc, the name the API server verifies
	caSecret  string // NAMESPACE/NAME of the CA's Secret
	configsOf string // the webhook configuration naming it, for the log
}

// webhookService finds the Service at a cluster IP and port and, when a
// cert-manager webhook configuration (one its CA injector fills from a Secret)
// names it, the webhook the stand-ins answer for.
func (e *egress) webhookService(ctx context.Context, ip, port string) (string, *standInHook, error) {
	list, err := e.dyn.Resource(servicesGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", nil, err
	}
	var svc *unstructured.Unstructured
	for i := range list.Items {
		if cip, _, _ := unstructured.NestedString(list.Items[i].Object, "spec", "clusterIP"); cip == ip {
			svc = &list.Items[i]
			break
		}
	}
	if svc == nil {
		return "no Service", nil, nil
	}
	name := svc.GetNamespace() + "/" + svc.GetName()
	hooks, err := e.cas.certManagerWebhooks(ctx)
	if err != nil {
		return name, nil, err
	}
	for _, h := range hooks {
		if h.service == name {
			return name, &h, nil
		}
	}
	return name, nil, nil
}

// answer serves one tunnelled connection of the API server as the webhook:
// TLS with a certificate for the Service's name signed by the CA the webhook
// configurations carry, and every admission review allowed.
func (e *egress) answer(ctx context.Context, conn net.Conn, hook *standInHook) {
	cert, err := e.cas.serving(ctx, hook)
	if err != nil {
		fmt.Fprintf(e.log, "egress: %s: %v\n", hook.service, err)
		return
	}
	tconn := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.review(w, r, hook) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	l := &oneConnListener{conn: tconn, done: make(chan struct{})}
	go func() {
		select {
		case <-ctx.Done():
		case <-l.done:
		}
		_ = srv.Close()
	}()
	_ = srv.Serve(l)
}

// admissionReview is the part of an admission.k8s.io/v1 AdmissionReview the
// stand-ins read and write.
type admissionReview struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Request    *admissionRequest  `json:"request,omitempty"`
	Response   *admissionResponse `json:"response,omitempty"`
}

type admissionRequest struct {
	UID       string                `json:"uid"`
	Kind      struct{ Kind string } `json:"kind"`
	Namespace string                `json:"namespace"`
	Name      string                `json:"name"`
	Operation string                `json:"operation"`
}

type admissionResponse struct {
	UID     string `json:"uid"`
	Allowed bool   `json:"allowed"`
}

func (e *egress) review(w http.ResponseWriter, r *http.Request, hook *standInHook) {
	var in admissionReview
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&in); err != nil || in.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	fmt.Fprintf(e.log, "webhook %s: allowed %s %s %s/%s unchanged (a stand-in: nothing validated)\n",
		hook.service, in.Request.Operation, in.Request.Kind.Kind, in.Request.Namespace, in.Request.Name)
	out := admissionReview{APIVersion: in.APIVersion, Kind: in.Kind, Response: &admissionResponse{UID: in.Request.UID, Allowed: true}}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// bufferedConn reads first what the CONNECT request's reader buffered.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// oneConnListener hands an http.Server one connection, then waits for it to end.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return &closeNotifyConn{Conn: c, l: l}, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.UnixAddr{Name: "stand-in", Net: "unix"} }

type closeNotifyConn struct {
	net.Conn
	l *oneConnListener
}

func (c *closeNotifyConn) Close() error {
	err := c.Conn.Close()
	_ = c.l.Close()
	return err
}

// webhookCAs plays cert-manager's webhook (which keeps its serving CA in a
// Secret it creates) and CA injector (which copies that CA into the
// caBundle of the webhook configurations annotated with the Secret).
type webhookCAs struct {
	dyn dynamic.Interface
	log io.Writer

	mu    sync.Mutex
	certs map[string]*tls.Certificate // by host and CA
}

func newWebhookCAs(dyn dynamic.Interface, log io.Writer) *webhookCAs {
	return &webhookCAs{dyn: dyn, log: log, certs: map[string]*tls.Certificate{}}
}

// certManagerWebhooks lists the webhooks of cert-manager's own webhook
// configurations: those its CA injector fills from a Secret and that belong
// to its webhook component.
func (w *webhookCAs) certManagerWebhooks(ctx context.Context) ([]standInHook, error) {
	var out []standInHook
	for _, gvr := range []schema.GroupVersionResource{validatingWebhooksGVR, mutatingWebhooksGVR} {
		list, err := w.dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, cfg := range list.Items {
			secret := cfg.GetAnnotations()[injectCAFromSecret]
			if secret == "" || cfg.GetLabels()["app.kubernetes.io/component"] != "webhook" {
				continue
			}
			hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
			for _, h := range hooks {
				m, _ := h.(map[string]any)
				ns, _, _ := unstructured.NestedString(m, "clientConfig", "service", "namespace")
				name, _, _ := unstructured.NestedString(m, "clientConfig", "service", "name")
				if name == "" {
					continue
				}
				out = append(out, standInHook{service: ns + "/" + name, host: name + "." + ns + ".svc", caSecret: secret, configsOf: cfg.GetName()})
			}
		}
	}
	return out, nil
}

// inject gives every cert-manager webhook configuration the CA of its Secret,
// creating the Secret first when cert-manager's webhook would have.
func (w *webhookCAs) inject(ctx context.Context) error {
	for _, gvr := range []schema.GroupVersionResource{validatingWebhooksGVR, mutatingWebhooksGVR} {
		list, err := w.dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for i := range list.Items {
			cfg := &list.Items[i]
			secret := cfg.GetAnnotations()[injectCAFromSecret]
			if secret == "" || cfg.GetLabels()["app.kubernetes.io/component"] != "webhook" {
				continue
			}
			ca, err := w.ca(ctx, secret)
			if err != nil {
				return fmt.Errorf("%s %s: %w", cfg.GetKind(), cfg.GetName(), err)
			}
			if err := w.setBundle(ctx, gvr, cfg, ca.certPEM); err != nil {
				return fmt.Errorf("%s %s: %w", cfg.GetKind(), cfg.GetName(), err)
			}
		}
	}
	return nil
}

func (w *webhookCAs) setBundle(ctx context.Context, gvr schema.GroupVersionResource, cfg *unstructured.Unstructured, bundle []byte) error {
	hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
	want := base64Std(bundle)
	changed := false
	for i, h := range hooks {
		m, _ := h.(map[string]any)
		if got, _, _ := unstructured.NestedString(m, "clientConfig", "caBundle"); got == want {
			continue
		}
		if err := unstructured.SetNestedField(m, want, "clientConfig", "caBundle"); err != nil {
			return err
		}
		hooks[i] = m
		changed = true
	}
	if !changed {
		return nil
	}
	if err := unstructured.SetNestedSlice(cfg.Object, hooks, "webhooks"); err != nil {
		return err
	}
	_, err := w.dyn.Resource(gvr).Update(ctx, cfg, metav1.UpdateOptions{FieldManager: "berth-local-stand-in"})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // changed or gone meanwhile: the next round sees it
	}
	if err == nil {
		fmt.Fprintf(w.log, "%s %s: injected the CA of %s, as cert-manager's CA injector would\n", cfg.GetKind(), cfg.GetName(), cfg.GetAnnotations()[injectCAFromSecret])
	}
	return err
}

// caPair is a CA certificate and key, as kept in cert-manager's webhook Secret.
type caPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// ca reads the CA from the Secret NAMESPACE/NAME, creating it with a new CA
// when it does not exist (cert-manager's webhook does so when it starts).
func (w *webhookCAs) ca(ctx context.Context, ref string) (*caPair, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return nil, fmt.Errorf("annotation %s: %q is not NAMESPACE/NAME", injectCAFromSecret, ref)
	}
	r := w.dyn.Resource(secretsGVR).Namespace(ns)
	s, err := r.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s, err = w.createCA(ctx, ns, name)
	}
	if err != nil {
		return nil, err
	}
	data, _, _ := unstructured.NestedStringMap(s.Object, "data")
	certPEM, err1 := base64Decode(data["tls.crt"])
	keyPEM, err2 := base64Decode(data["tls.key"])
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("secret %s: %w", ref, err)
	}
	return parseCA(certPEM, keyPEM)
}

func (w *webhookCAs) createCA(ctx context.Context, ns, name string) (*unstructured.Unstructured, error) {
	certPEM, keyPEM, err := newWebhookCA("cert-manager-webhook-ca")
	if err != nil {
		return nil, err
	}
	s := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": name, "namespace": ns, "annotations": map[string]any{
			"berth.dev/local-stand-in": "made by berth's local-cluster stand-in, as cert-manager's webhook makes its CA",
		}},
		"type": "kubernetes.io/tls",
		"data": map[string]any{"ca.crt": base64Std(certPEM), "tls.crt": base64Std(certPEM), "tls.key": base64Std(keyPEM)},
	}}
	out, err := w.dyn.Resource(secretsGVR).Namespace(ns).Create(ctx, s, metav1.CreateOptions{FieldManager: "berth-local-stand-in"})
	if apierrors.IsAlreadyExists(err) {
		return w.dyn.Resource(secretsGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	}
	if err == nil {
		fmt.Fprintf(w.log, "secret %s/%s: created the webhook's CA, as cert-manager's webhook would\n", ns, name)
	}
	return out, err
}

// serving returns a certificate for the hook's Service name signed by the CA
// of its Secret.
func (w *webhookCAs) serving(ctx context.Context, hook *standInHook) (*tls.Certificate, error) {
	ca, err := w.ca(ctx, hook.caSecret)
	if err != nil {
		return nil, err
	}
	key := hook.host + "/" + ca.cert.SerialNumber.String()
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.certs[key]; ok {
		return c, nil
	}
	c, err := signServing(ca, hook.host)
	if err != nil {
		return nil, err
	}
	w.certs[key] = c
	return c, nil
}

func newWebhookCA(cn string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func parseCA(certPEM, keyPEM []byte) (*caPair, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("no PEM certificate and key")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		k, err2 := x509.ParsePKCS8PrivateKey(kb.Bytes)
		ek, ok := k.(*ecdsa.PrivateKey)
		if err2 != nil || !ok {
			return nil, fmt.Errorf("the CA key is not an ECDSA key: %w", err)
		}
		key = ek
	}
	return &caPair{cert: cert, key: key, certPEM: certPEM}, nil
}

func signServing(ca *caPair, host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     ca.cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
