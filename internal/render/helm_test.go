package render

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/pkgspec"
)

// renderTestdata renders the package in testdata/helm/<name>.
func renderTestdata(t *testing.T, name string, change func(*Input)) (*Result, error) {
	t.Helper()
	files := os.DirFS(filepath.Join("testdata", "helm", name))
	p, err := pkgspec.Load(files, ".", "")
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Package: p, Files: files, App: "demo", Namespace: "apps", Config: pkgspec.Config{}}
	if change != nil {
		change(&in)
	}
	return Render(in)
}

func ids(res *Result) []string {
	var out []string
	for _, o := range res.Objects {
		out = append(out, o.ID())
	}
	sort.Strings(out)
	return out
}

func find(t *testing.T, res *Result, id string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range res.Objects {
		if o.ID() == id {
			return o.Object
		}
	}
	t.Fatalf("no %s among %v", id, ids(res))
	return nil
}

func TestRenderDependencies(t *testing.T) {
	res, err := renderTestdata(t, "deps", nil)
	if err != nil {
		t.Fatal(err)
	}
	// windows is off by its condition, the second alias by its tag; the first
	// alias renders under its alias name.
	want := []string{"ConfigMap/apps/first", "ConfigMap/apps/parent"}
	if diff := cmp.Diff(want, ids(res)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	port, _, _ := unstructured.NestedString(find(t, res, "ConfigMap/apps/parent").Object, "data", "port")
	if port != "8080" {
		t.Errorf("imported value = %q, want the child's exports.port.value 8080", port)
	}
}

func TestRenderMissingDependency(t *testing.T) {
	_, err := renderTestdata(t, "missing", nil)
	if err == nil || !strings.Contains(err.Error(), "chart chart") || !strings.Contains(err.Error(), "redis") || !strings.Contains(err.Error(), "lonely") {
		t.Fatalf("Render error = %v, want one naming the chart lonely and its missing dependency redis", err)
	}
}

// TestRenderValuesHaveHelmTypes checks that a chart sees the values of its
// package's values template with the Go types helm gives a values file
// (every number a float64), as its templates compare, print and test them.
func TestRenderValuesHaveHelmTypes(t *testing.T) {
	res, err := renderTestdata(t, "kinds", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedMap(find(t, res, "ConfigMap/apps/kinds").Object, "data")
	want := map[string]any{"replicas": "float64", "ratio": "float64", "big": "1e+07", "port": "float64",
		"first": "float64", "name": "string", "fromChart": "float64", "isFloat": "true"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("types the chart sees (-want +got):\n%s", diff)
	}
	if testing.Short() {
		return
	}
	dir := filepath.Join("testdata", "helm", "kinds")
	cmd := exec.Command(helmCLI(t), "template", "demo", filepath.Join(dir, "chart"), "--namespace", "apps", "--values", filepath.Join(dir, "values.yaml"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	objs, err := decodeObjects("helm template", out)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("helm template printed %d objects, want 1", len(objs))
	}
	fromHelm, _, _ := unstructured.NestedMap(objs[0].Object, "data")
	if diff := cmp.Diff(fromHelm, got); diff != "" {
		t.Errorf("types the chart sees (-helm +berth):\n%s", diff)
	}
}

func TestRenderKeepsFinalNewline(t *testing.T) {
	res, err := renderTestdata(t, "newline", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedString(find(t, res, "ConfigMap/apps/config").Object, "data", "app.conf")
	if got != "a = 1\nb = 2\n" {
		t.Errorf("app.conf = %q, want the final newline helm keeps", got)
	}
}

func TestRenderCapabilitiesIgnoreAndNotes(t *testing.T) {
	tests := map[string]struct {
		versions []string
		want     map[string]any
	}{
		"built-in": {want: map[string]any{"monitoring": "false", "servicemonitor": "false", "apps": "true"}},
		"cluster": {versions: []string{"v1", "apps/v1", "monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"},
			want: map[string]any{"monitoring": "true", "servicemonitor": "true", "apps": "true"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := renderTestdata(t, "caps", func(in *Input) { in.APIVersions = tc.versions })
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"ConfigMap/apps/caps"}, ids(res)); diff != "" {
				t.Errorf("objects (-want +got); .helmignore must leave out templates/scratch.yaml:\n%s", diff)
			}
			data, _, _ := unstructured.NestedMap(find(t, res, "ConfigMap/apps/caps").Object, "data")
			if diff := cmp.Diff(tc.want, data); diff != "" {
				t.Errorf("capabilities (-want +got):\n%s", diff)
			}
			if res.Notes != "Release demo is installed in apps.\n" {
				t.Errorf("notes = %q", res.Notes)
			}
		})
	}
}

// renderNow is the present of the renders of testdata/random: a fixed time,
// so that two renders are in the same renewal period of its certificates.
var renderNow = time.Date(2027, time.March, 10, 12, 0, 0, 0, time.UTC)

func TestRenderRandomIsSeeded(t *testing.T) {
	render := func(seed string) *unstructured.Unstructured {
		res, err := renderTestdata(t, "random", func(in *Input) { in.Seed, in.Now = []byte(seed), renderNow })
		if err != nil {
			t.Fatal(err)
		}
		return find(t, res, "Secret/apps/generated")
	}
	yamlOf := func(u *unstructured.Unstructured) string {
		var b bytes.Buffer
		if err := (&Result{Objects: []Object{{Stage: StageMain, Object: u}}}).YAML(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	first := render("seed of app one, 32 bytes long..")
	if diff := cmp.Diff(yamlOf(first), yamlOf(render("seed of app one, 32 bytes long.."))); diff != "" {
		t.Fatalf("two renders of the same inputs differ (-first +second):\n%s", diff)
	}
	data, _, _ := unstructured.NestedStringMap(first.Object, "stringData")
	other, _, _ := unstructured.NestedStringMap(render("seed of app two, 32 bytes long..").Object, "stringData")
	for k, v := range data {
		if k == "derived" {
			continue // derivePassword is a function of its arguments alone
		}
		if other[k] == v {
			t.Errorf("%s is the same for two seeds", k)
		}
	}
	if data["password"] == data["second"] {
		t.Errorf("two calls of randAlphaNum 24 gave the same value %q", data["password"])
	}
	checks := map[string]func(string) bool{
		"password": func(s string) bool { return len(s) == 24 && strings.Trim(s, alphaNumChars) == "" },
		"alpha":    func(s string) bool { return len(s) == 12 && strings.Trim(s, alphaChars) == "" },
		"numeric":  func(s string) bool { return len(s) == 12 && strings.Trim(s, numericChars) == "" },
		"ascii":    func(s string) bool { return len(s) == 12 },
		"uuid":     func(s string) bool { return len(s) == 36 && s[14] == '4' },
	}
	for k, ok := range checks {
		if !ok(data[k]) {
			t.Errorf("%s = %q has not the form sprig gives", k, data[k])
		}
	}

	parse := func(k string) *x509.Certificate {
		t.Helper()
		b, _ := pem.Decode([]byte(data[k]))
		if b == nil {
			t.Fatalf("%s is not PEM: %q", k, data[k])
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return c
	}
	ca, leaf, self := parse("ca.crt"), parse("tls.crt"), parse("self.crt")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "random.svc", CurrentTime: renderNow}); err != nil {
		t.Errorf("the signed certificate does not verify against the CA: %v", err)
	}
	if !ca.IsCA || leaf.IsCA || self.Subject.CommonName != "self.svc" {
		t.Errorf("CA %v, leaf CA %v, self-signed CN %q", ca.IsCA, leaf.IsCA, self.Subject.CommonName)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 365*24*time.Hour {
		t.Errorf("leaf valid for %v, want the 365 days the chart asks", got)
	}
	for _, k := range []string{"tls.key", "ecdsa.key", "ed25519.key"} {
		b, _ := pem.Decode([]byte(data[k]))
		if b == nil {
			t.Fatalf("%s is not PEM", k)
		}
		var err error
		switch b.Type {
		case "RSA PRIVATE KEY":
			_, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			_, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			_, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		}
		if err != nil {
			t.Errorf("%s (%s): %v", k, b.Type, err)
		}
	}
}

func TestDecodeObjectsAsJSON(t *testing.T) {
	doc := `apiVersion: v1
kind: ConfigMap
metadata: {name: types, annotations: {when: 2024-01-01, at: 2001-12-14t21:59:43.10-05:00}}
data:
  int: 3
  big: 12345678901234567890
  negative: -7
  float: 1.5
  exp: 1e3
  hex: 0x10
  octal: 0o17
  yes: yes
  on: on
  nothing: null
  empty:
  bin: !!binary aGVsbG8=
  list: [1, "2", 3.0, true, ~]
  merged:
    <<: {a: 1}
    b: 2
`
	got, err := decodeObjects("doc", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want, err := decodeObjectsReference("doc", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decodeObjects differs from the JSON round trip (-round trip +decodeObjects):\n%s", diff)
	}
	for _, bad := range []string{"apiVersion: v1\nkind: K\nmetadata: {name: x}\nspec: {1: a}\n", "apiVersion: v1\nkind: K\nmetadata: {name: x}\nspec: {a: .inf}\n"} {
		if _, err := decodeObjects("bad.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "bad.yaml: document 1") {
			t.Errorf("decodeObjects(%q) error = %v; the round trip refuses it", bad, err)
		}
		if _, err := decodeObjectsReference("bad.yaml", []byte(bad)); err == nil {
			t.Errorf("the reference takes %q", bad)
		}
	}
}

func TestMarshalYAMLAsSigsYAML(t *testing.T) {
	objs, err := decodeObjects("doc", []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: types, annotations: {when: 2024-01-01, "1": one, "true": t, a10: x, a9: y, B: z}}
data:
  ints: [0, -1, 3, 9007199254740991, 9007199254740993, 9223372036854775807, -9223372036854775808]
  floats: [1.5, -0.25, 1e-7, 1e21, 1e300, 123456789012345678901, 12345678901234567890]
  strings: ["yes", "on", "null", "1", "0x10", "a: b", "- x", "multi\nline\n", "<&>", "", " lead", "trail "]
  empty: {}
  none: []
  nothing: null
`))
	if err != nil {
		t.Fatal(err)
	}
	checkMarshalYAML(t, objs[0].Object)
	objs[0].Object["bad"] = "\xff"
	checkMarshalYAML(t, objs[0].Object)
}

func TestRenderUnknownHookIsSkipped(t *testing.T) {
	files := fstest.MapFS{
		"package.yaml":           {Data: []byte("apiVersion: berth.dev/v1alpha1\nkind: Package\nname: hooks\nversion: 1.0.0\ndescription: d\ncharts:\n  - path: chart\n")},
		"chart/Chart.yaml":       {Data: []byte("apiVersion: v2\nname: hooks\nversion: 1.0.0\n")},
		"chart/templates/a.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo, annotations: {helm.sh/hook: pre-instal}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, annotations: {helm.sh/hook: \" Pre-Install \", helm.sh/hook-weight: nine}}\n")},
	}
	p, err := pkgspec.Load(files, ".", "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(Input{Package: p, Files: files, App: "h", Namespace: "ns", Config: pkgspec.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Objects {
		got = append(got, fmt.Sprintf("%s %d %s", o.Stage, o.Weight, o.ID()))
	}
	if diff := cmp.Diff([]string{"pre 0 ConfigMap/ns/kept"}, got); diff != "" {
		t.Errorf("objects (-want +got); helm trims and lowercases events and reads a bad weight as 0:\n%s", diff)
	}
	if diff := cmp.Diff([]string{`ConfigMap typo (unknown hook "pre-instal")`}, res.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
}

// TestSeededCertificateValidity checks the validity of seeded certificates
// made at times over two decades: valid when made, with at least half their
// days left, the same within a renewal period, periods offset per app.
func TestSeededCertificateValidity(t *testing.T) {
	one := newSeeded([]byte("seed of app one, 32 bytes long.."), "apps/demo/chart", time.Time{})
	two := newSeeded([]byte("seed of app two, 32 bytes long.."), "apps/demo/chart", time.Time{})
	start := time.Date(2026, time.December, 7, 0, 0, 0, 0, time.UTC)
	for _, days := range []int{0, 1, 30, 365, 3650} {
		offsetsDiffer := false
		for now := start; now.Before(start.AddDate(20, 0, 0)); now = now.Add(37*time.Hour + 11*time.Minute) {
			one.now, two.now = now, now
			from, to := one.validity(days)
			life := to.Sub(from)
			if now.Before(from) || days > 0 && to.Sub(now) < life/2 || life != time.Duration(days)*24*time.Hour {
				t.Fatalf("%d days made at %s: valid from %s to %s; want valid now, for the days asked, half of them left", days, now, from, to)
			}
			if from != from.Truncate(time.Second) {
				t.Fatalf("%d days made at %s: valid from %s, not a whole second", days, now, from)
			}
			one.now = from
			if again, _ := one.validity(days); !again.Equal(from) {
				t.Fatalf("%d days: made at %s valid from %s, made at its start valid from %s", days, now, from, again)
			}
			if other, _ := two.validity(days); !other.Equal(from) {
				offsetsDiffer = true
			}
		}
		if !offsetsDiffer {
			t.Errorf("%d days: two apps renew their certificates at the same times", days)
		}
	}
}

// TestSeededCertificatesStayValid renders testdata/random (a CA of 3650
// days, certificates of 365) now, in a year and in nine: every certificate
// is valid when rendered, with at least half its days left; renders in the
// same renewal period give the same bytes, the next period a certificate
// with a serial of its own.
func TestSeededCertificatesStayValid(t *testing.T) {
	certs := func(now time.Time) map[string]*x509.Certificate {
		t.Helper()
		res, err := renderTestdata(t, "random", func(in *Input) { in.Seed, in.Now = []byte("seed of app one, 32 bytes long.."), now })
		if err != nil {
			t.Fatal(err)
		}
		data, _, _ := unstructured.NestedStringMap(find(t, res, "Secret/apps/generated").Object, "stringData")
		out := map[string]*x509.Certificate{}
		for _, k := range []string{"ca.crt", "tls.crt", "self.crt"} {
			b, _ := pem.Decode([]byte(data[k]))
			if b == nil {
				t.Fatalf("%s is not PEM", k)
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			out[k] = c
		}
		return out
	}
	start := time.Date(2026, time.December, 7, 0, 0, 0, 0, time.UTC)
	for _, now := range []time.Time{start, start.AddDate(1, 1, 0), start.AddDate(9, 5, 0)} {
		got := certs(now)
		for k, c := range got {
			life := c.NotAfter.Sub(c.NotBefore)
			if now.Before(c.NotBefore) || c.NotAfter.Sub(now) < life/2 {
				t.Fatalf("rendered at %s, %s is valid from %s to %s: not valid now with half its life left", now, k, c.NotBefore, c.NotAfter)
			}
		}
		pool := x509.NewCertPool()
		pool.AddCert(got["ca.crt"])
		if _, err := got["tls.crt"].Verify(x509.VerifyOptions{Roots: pool, DNSName: "random.svc", CurrentTime: now}); err != nil {
			t.Fatalf("rendered at %s: %v", now, err)
		}
	}

	leaf := certs(start)["tls.crt"]
	period := leaf.NotAfter.Sub(leaf.NotBefore) / 2
	same := certs(leaf.NotBefore.Add(period - time.Minute))["tls.crt"]
	if !bytes.Equal(same.Raw, leaf.Raw) {
		t.Errorf("two renders in the renewal period from %s differ", leaf.NotBefore)
	}
	next := certs(leaf.NotBefore.Add(period))["tls.crt"]
	if !next.NotBefore.Equal(leaf.NotBefore.Add(period)) || next.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Errorf("renewed certificate: from %s serial %s; the previous one from %s serial %s", next.NotBefore, next.SerialNumber, leaf.NotBefore, leaf.SerialNumber)
	}
}
