package render

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"reflect"
	"strings"
	"sync"
	"text/template"
	"time"
)

// certEpoch is where the renewal periods of the certificates chart templates
// generate (genCA, genSelfSignedCert, genSignedCert) start counting; see
// validity.
var certEpoch = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// seeded is the source of the random functions chart templates call: every
// value is derived with HMAC-SHA256 from the app's secret seed, the chart,
// the function, its arguments and how many times it was called with them, so
// the same workspace renders the same passwords, keys and certificates, and
// two apps get different ones.
type seeded struct {
	key   []byte
	scope string
	now   time.Time

	mu    sync.Mutex
	calls map[string]int
}

func newSeeded(key []byte, scope string, now time.Time) *seeded {
	if now.IsZero() {
		now = time.Now()
	}
	return &seeded{key: key, scope: scope, now: now, calls: map[string]int{}}
}

// validity returns when a certificate of the given days made now is valid:
// from the start of the renewal period that holds now, for the days asked.
// A period is half the validity (at least an hour), so renders within one
// give the same certificate, and every render gives one valid now with at
// least half its days left; the next period renews it. The periods of each
// app and validity are offset by the seed, so that apps do not all renew
// their certificates at once.
func (s *seeded) validity(days int) (from, to time.Time) {
	const maxPeriod = 50 * 365 * 24 * time.Hour
	period := time.Hour
	if days > 0 {
		period = max(time.Duration(min(days, 36500))*12*time.Hour, time.Hour)
	}
	period = min(period, maxPeriod)
	var b [8]byte
	io.ReadFull(&hmacStream{key: s.key, label: fmt.Sprintf("%s\x00certificate period\x00%d", s.scope, days)}, b[:])
	// Whole seconds, as certificates hold their times.
	offset := time.Duration(binary.BigEndian.Uint64(b[:])%uint64(period/time.Second)) * time.Second
	since := s.now.Sub(certEpoch.Add(offset))
	n := since / period
	if since < 0 && since%period != 0 {
		n--
	}
	from = certEpoch.Add(offset + n*period)
	return from, from.Add(24 * time.Hour * time.Duration(days))
}

// stream returns the byte stream of one call of fn with args: the n-th call
// with the same arguments gets the n-th stream.
func (s *seeded) stream(fn string, args ...any) io.Reader {
	label := fmt.Sprintf("%s\x00%s%q", s.scope, fn, args)
	s.mu.Lock()
	n := s.calls[label]
	s.calls[label] = n + 1
	s.mu.Unlock()
	return &hmacStream{key: s.key, label: fmt.Sprintf("%s\x00%d", label, n)}
}

// hmacStream is HMAC-SHA256(key, label || block counter), block after block.
type hmacStream struct {
	key   []byte
	label string
	block uint64
	buf   []byte
}

func (h *hmacStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(h.buf) == 0 {
			m := hmac.New(sha256.New, h.key)
			io.WriteString(m, h.label)
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], h.block)
			m.Write(c[:])
			h.block++
			h.buf = m.Sum(nil)
		}
		k := copy(p[n:], h.buf)
		h.buf = h.buf[k:]
		n += k
	}
	return n, nil
}

// intn returns a uniform integer in [0, n) read from r.
func intn(r io.Reader, n int) int {
	limit := uint64(1<<63) - uint64(1<<63)%uint64(n)
	var b [8]byte
	for {
		io.ReadFull(r, b[:])
		v := binary.BigEndian.Uint64(b[:]) >> 1
		if v < limit {
			return int(v % uint64(n))
		}
	}
}

const (
	alphaChars    = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	numericChars  = "0123456789"
	alphaNumChars = alphaChars + numericChars
)

func (s *seeded) randString(fn string, alphabet string, count int) string {
	if count <= 0 {
		return ""
	}
	r := s.stream(fn, count)
	out := make([]byte, count)
	for i := range out {
		out[i] = alphabet[intn(r, len(alphabet))]
	}
	return string(out)
}

// asciiChars are the printable ASCII characters sprig's randAscii draws from.
var asciiChars = func() string {
	var b strings.Builder
	for c := byte(32); c < 127; c++ {
		b.WriteByte(c)
	}
	return b.String()
}()

// funcs returns the template functions that replace sprig's random ones;
// they take the same arguments and return values of the same form.
func (s *seeded) funcs() template.FuncMap {
	return template.FuncMap{
		"randAlphaNum": func(n int) string { return s.randString("randAlphaNum", alphaNumChars, n) },
		"randAlpha":    func(n int) string { return s.randString("randAlpha", alphaChars, n) },
		"randNumeric":  func(n int) string { return s.randString("randNumeric", numericChars, n) },
		"randAscii":    func(n int) string { return s.randString("randAscii", asciiChars, n) },
		"randBytes": func(n int) (string, error) {
			if n < 0 {
				return "", fmt.Errorf("randBytes: negative count %d", n)
			}
			b := make([]byte, n)
			io.ReadFull(s.stream("randBytes", n), b)
			return base64.StdEncoding.EncodeToString(b), nil
		},
		"randInt": func(lo, hi int) int { return lo + intn(s.stream("randInt", lo, hi), hi-lo) },
		"uuidv4": func() string {
			var u [16]byte
			io.ReadFull(s.stream("uuidv4"), u[:])
			u[6] = u[6]&0x0f | 0x40
			u[8] = u[8]&0x3f | 0x80
			return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		},
		"shuffle": func(str string) string {
			r := s.stream("shuffle", str)
			runes := []rune(str)
			for i := len(runes) - 1; i > 0; i-- {
				j := intn(r, i+1)
				runes[i], runes[j] = runes[j], runes[i]
			}
			return string(runes)
		},
		"genPrivateKey": func(typ string) (string, error) {
			priv, err := s.privateKey("genPrivateKey", typ)
			if err != nil {
				return "", err
			}
			return string(pem.EncodeToMemory(pemBlock(priv))), nil
		},
		"genCA": func(cn string, days int) (certificate, error) {
			priv, err := s.privateKey("genCA", "rsa2048", cn, days)
			if err != nil {
				return certificate{}, err
			}
			return s.ca(cn, days, priv)
		},
		"genCAWithKey": func(cn string, days int, key string) (certificate, error) {
			priv, err := parseKey(key)
			if err != nil {
				return certificate{}, fmt.Errorf("genCAWithKey: %w", err)
			}
			return s.ca(cn, days, priv)
		},
		"genSelfSignedCert": func(cn string, ips, dns []any, days int) (certificate, error) {
			priv, err := s.privateKey("genSelfSignedCert", "rsa2048", cn, ips, dns, days)
			if err != nil {
				return certificate{}, err
			}
			return s.cert("genSelfSignedCert", cn, ips, dns, days, nil, priv)
		},
		"genSelfSignedCertWithKey": func(cn string, ips, dns []any, days int, key string) (certificate, error) {
			priv, err := parseKey(key)
			if err != nil {
				return certificate{}, fmt.Errorf("genSelfSignedCertWithKey: %w", err)
			}
			return s.cert("genSelfSignedCertWithKey", cn, ips, dns, days, nil, priv)
		},
		"genSignedCert": func(cn string, ips, dns []any, days int, ca any) (certificate, error) {
			priv, err := s.privateKey("genSignedCert", "rsa2048", cn, ips, dns, days)
			if err != nil {
				return certificate{}, err
			}
			return s.cert("genSignedCert", cn, ips, dns, days, ca, priv)
		},
		"genSignedCertWithKey": func(cn string, ips, dns []any, days int, ca any, key string) (certificate, error) {
			priv, err := parseKey(key)
			if err != nil {
				return certificate{}, fmt.Errorf("genSignedCertWithKey: %w", err)
			}
			return s.cert("genSignedCertWithKey", cn, ips, dns, days, ca, priv)
		},
	}
}

// certificate is what sprig's certificate functions return: templates read
// .Cert and .Key.
type certificate struct {
	Cert string
	Key  string
}

// privateKey derives a key of typ ("rsa" is sprig's 4096 bits, "rsa2048" the
// size its certificate functions use) from the call's stream. Go's key
// generators ignore a caller's reader, so keys are built from the stream here.
func (s *seeded) privateKey(fn, typ string, args ...any) (crypto.Signer, error) {
	r := s.stream(fn, append([]any{typ}, args...)...)
	switch typ {
	case "", "rsa":
		return rsaKey(r, 4096)
	case "rsa2048":
		return rsaKey(r, 2048)
	case "ecdsa":
		b := make([]byte, 32)
		for {
			io.ReadFull(r, b)
			if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
				return k, nil
			}
		}
	case "ed25519":
		seed := make([]byte, ed25519.SeedSize)
		io.ReadFull(r, seed)
		return ed25519.NewKeyFromSeed(seed), nil
	default:
		return nil, fmt.Errorf("%s: key type %q cannot be generated reproducibly; use rsa, ecdsa or ed25519", fn, typ)
	}
}

// rsaKey builds an RSA key from two primes read from r.
func rsaKey(r io.Reader, bits int) (*rsa.PrivateKey, error) {
	e := big.NewInt(65537)
	one := big.NewInt(1)
	for {
		p := prime(r, bits-bits/2)
		q := prime(r, bits/2)
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
		if err := k.Validate(); err != nil {
			continue
		}
		return k, nil
	}
}

// prime returns the first probable prime at or above a number of exactly
// bits bits (top two set, so the product of two has twice the bits) read from r.
func prime(r io.Reader, bits int) *big.Int {
	b := make([]byte, (bits+7)/8)
	io.ReadFull(r, b)
	p := new(big.Int).SetBytes(b)
	p.SetBit(p, 0, 1)
	for i := bits; i < len(b)*8; i++ {
		p.SetBit(p, i, 0)
	}
	p.SetBit(p, bits-1, 1)
	p.SetBit(p, bits-2, 1)
	two := big.NewInt(2)
	for !p.ProbablyPrime(20) {
		p.Add(p, two)
	}
	return p
}

func pemBlock(priv crypto.Signer) *pem.Block {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	case *ecdsa.PrivateKey:
		b, _ := x509.MarshalECPrivateKey(k)
		return &pem.Block{Type: "EC PRIVATE KEY", Bytes: b}
	default:
		b, _ := x509.MarshalPKCS8PrivateKey(k)
		return &pem.Block{Type: "PRIVATE KEY", Bytes: b}
	}
}

func parseKey(s string) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("no PEM data in the private key")
	}
	var k any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("private key of PEM type %s is not supported", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key %T cannot sign", k)
	}
	return signer, nil
}

// certTemplate is sprig's base certificate, with its validity from
// validity and a serial number from the stream of fn, its arguments and
// that validity, so a renewed certificate gets a serial of its own.
func (s *seeded) certTemplate(fn, cn string, ips, dns []any, days int) (*x509.Certificate, error) {
	from, to := s.validity(days)
	r := s.stream(fn+"/serial", cn, ips, dns, days, from.Format(time.RFC3339))
	t := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IPAddresses:           []net.IP{},
		DNSNames:              []string{},
		NotBefore:             from,
		NotAfter:              to,
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	serial := make([]byte, 16)
	io.ReadFull(r, serial)
	t.SerialNumber = new(big.Int).SetBytes(serial)
	for _, ip := range ips {
		str, ok := ip.(string)
		if !ok {
			return nil, fmt.Errorf("error parsing ip: %v is not a string", ip)
		}
		parsed := net.ParseIP(str)
		if parsed == nil {
			return nil, fmt.Errorf("error parsing ip: %s", str)
		}
		t.IPAddresses = append(t.IPAddresses, parsed)
	}
	for _, d := range dns {
		str, ok := d.(string)
		if !ok {
			return nil, fmt.Errorf("error processing alternate dns name: %v is not a string", d)
		}
		t.DNSNames = append(t.DNSNames, str)
	}
	return t, nil
}

func (s *seeded) ca(cn string, days int, priv crypto.Signer) (certificate, error) {
	t, err := s.certTemplate("genCA", cn, nil, nil, days)
	if err != nil {
		return certificate{}, err
	}
	t.KeyUsage = x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
	t.IsCA = true
	return sign(t, priv, t, priv)
}

// cert makes a certificate for priv, signed by ca (anything with the Cert and
// Key of a CA, such as what genCA returns) or by itself when ca is nil.
func (s *seeded) cert(fn, cn string, ips, dns []any, days int, ca any, priv crypto.Signer) (certificate, error) {
	t, err := s.certTemplate(fn, cn, ips, dns, days)
	if err != nil {
		return certificate{}, err
	}
	if ca == nil {
		return sign(t, priv, t, priv)
	}
	caCert, caKey := pemFields(ca)
	block, _ := pem.Decode([]byte(caCert))
	if block == nil {
		return certificate{}, errors.New("unable to decode certificate")
	}
	parent, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return certificate{}, fmt.Errorf("error parsing certificate: %w", err)
	}
	signer, err := parseKey(caKey)
	if err != nil {
		return certificate{}, fmt.Errorf("error parsing private key: %w", err)
	}
	return sign(t, priv, parent, signer)
}

// pemFields reads the Cert and Key fields of a certificate value, whichever
// function made it.
func pemFields(v any) (cert, key string) {
	rv := reflect.Indirect(reflect.ValueOf(v))
	if rv.Kind() == reflect.Map {
		if m, ok := v.(map[string]any); ok {
			cert, _ = m["Cert"].(string)
			key, _ = m["Key"].(string)
		}
		return cert, key
	}
	if rv.Kind() != reflect.Struct {
		return "", ""
	}
	if f := rv.FieldByName("Cert"); f.IsValid() && f.Kind() == reflect.String {
		cert = f.String()
	}
	if f := rv.FieldByName("Key"); f.IsValid() && f.Kind() == reflect.String {
		key = f.String()
	}
	return cert, key
}

// sign creates the certificate. A nil reader makes every signature
// deterministic: RSA PKCS #1 v1.5 and Ed25519 are, ECDSA follows RFC 6979.
func sign(t *x509.Certificate, priv crypto.Signer, parent *x509.Certificate, signer crypto.Signer) (certificate, error) {
	der, err := x509.CreateCertificate(nil, t, parent, priv.Public(), signer)
	if err != nil {
		return certificate{}, fmt.Errorf("error creating certificate: %w", err)
	}
	var c, k bytes.Buffer
	pem.Encode(&c, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&k, pemBlock(priv))
	return certificate{Cert: c.String(), Key: k.String()}, nil
}
