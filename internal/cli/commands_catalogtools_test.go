package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testcluster"
)

// TestCatalogIndexServesAnHTTPCatalog: a directory catalog indexed with
// 'catalog index' and served by a plain file server is an HTTP catalog berth
// adds, resolves and renders packages from.
func TestCatalogIndexServesAnHTTPCatalog(t *testing.T) {
	for name, withURL := range map[string]bool{"relative": false, "--url": true} {
		t.Run(name, func(t *testing.T) {
			home := t.TempDir()
			cat := t.TempDir()
			write(t, cat, "hello/1.0.0/package.yaml", helloPackage)
			write(t, cat, "hello/1.0.0/greeting.yaml", helloManifest)
			write(t, cat, "hello/1.1.0/package.yaml", strings.Replace(helloPackage, "version: 1.0.0", "version: 1.1.0", 1))
			write(t, cat, "hello/1.1.0/greeting.yaml", strings.Replace(helloManifest, "greeting: hi", "greeting: hello", 1))
			write(t, cat, "hello/channels.yaml", "stable: 1.0.0\nlatest: 1.1.0\n")
			out := filepath.Join(t.TempDir(), "public")

			mux := http.NewServeMux()
			mux.Handle("/cat/", http.StripPrefix("/cat/", http.FileServer(http.Dir(out))))
			// With --url the archives live elsewhere than the index.
			mux.Handle("/archives/", http.StripPrefix("/archives/", http.FileServer(http.Dir(out))))
			srv := httptest.NewServer(mux)
			defer srv.Close()

			args := []string{"catalog", "index", cat, "-o", out}
			if withURL {
				args = append(args, "--url", srv.URL+"/archives/")
			}
			if got := mustBerth(t, home, args...); !strings.Contains(got, "1 packages and 2 archives") {
				t.Errorf("catalog index printed %q", got)
			}
			index := read(t, out, "index.yaml")
			if withURL != strings.Contains(index, srv.URL+"/archives/hello-1.0.0.tar.gz") {
				t.Errorf("index.yaml archive URLs (--url %v):\n%s", withURL, index)
			}

			mustBerth(t, home, "catalog", "add", "web", srv.URL+"/cat/index.yaml")
			if got := mustBerth(t, home, "show", "hello"); !strings.Contains(got, "1.1.0") {
				t.Errorf("show hello from the HTTP catalog:\n%s", got)
			}
			got := mustBerth(t, home, "template", "web/hello@latest")
			if !strings.Contains(got, "kind: ConfigMap") || !strings.Contains(got, "greeting: hello") {
				t.Errorf("template hello@latest from the HTTP catalog:\n%s", got)
			}
		})
	}
}

func TestCatalogIndexRefusesABrokenCatalog(t *testing.T) {
	cat := t.TempDir()
	write(t, cat, "hello/1.0.0/package.yaml", strings.Replace(helloPackage, "kind: Package", "kind: Pakage", 1))
	write(t, cat, "hello/1.0.0/greeting.yaml", helloManifest)
	out := filepath.Join(t.TempDir(), "public")
	r := berth(t, t.TempDir(), "catalog", "index", cat, "-o", out)
	if r.code == 0 || !strings.Contains(r.err, filepath.Join(cat, "hello/1.0.0/package.yaml")) || !strings.Contains(r.err, "kind") {
		t.Errorf("catalog index of a broken package: exit %d\n%s", r.code, r.err)
	}
	if _, err := os.Stat(filepath.Join(out, "index.yaml")); !os.IsNotExist(err) {
		t.Errorf("a refused index wrote index.yaml: %v", err)
	}
}

// TestCatalogPromoteRefusesAnUntestedVersion: without a passing report the
// channel stays where it was and the error says how to get one.
func TestCatalogPromoteRefusesAnUntestedVersion(t *testing.T) {
	cat := t.TempDir()
	write(t, cat, "hello/1.0.0/package.yaml", helloPackage)
	write(t, cat, "hello/1.0.0/greeting.yaml", helloManifest)
	write(t, cat, "hello/channels.yaml", "latest: 1.0.0\n")
	r := berth(t, t.TempDir(), "catalog", "promote", "hello", "1.0.0", "--channel", "stable", "--catalog", cat)
	if r.code == 0 || !strings.Contains(r.err, "it has no test report") || !strings.Contains(r.err, "berth package test "+filepath.Join(cat, "hello", "1.0.0")) {
		t.Errorf("promote without a report: exit %d\n%s", r.code, r.err)
	}
	if got := read(t, cat, "hello/channels.yaml"); got != "latest: 1.0.0\n" {
		t.Errorf("a refused promotion changed channels.yaml:\n%s", got)
	}
}

func TestPackageLint(t *testing.T) {
	home := t.TempDir()
	if r := berth(t, home, "package", "lint", filepath.Join("..", "..", "catalog", "redis", "22.0.4")); r.code != 0 || !strings.Contains(r.out, "0 errors, 0 warnings") {
		t.Errorf("package lint of the built-in redis: exit %d\n%s%s", r.code, r.out, r.err)
	}
	dir := t.TempDir()
	write(t, dir, "package.yaml", helloPackage+"health:\n  - {apiVersion: apps/v1, kind: Deployment, condition: Available}\n")
	write(t, dir, "greeting.yaml", helloManifest)
	r := berth(t, home, "package", "lint", dir)
	if r.code != 1 || !strings.Contains(r.out, filepath.Join(dir, "package.yaml")+":13: error: health[0]: the package neither renders nor defines Deployment apps/v1") ||
		!strings.Contains(r.out, "error: config[0] (greeting): no values template or output uses the parameter") {
		t.Errorf("package lint of a package with problems: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = berth(t, home, "package", "lint", dir, "-o", "json")
	var res struct {
		Findings []struct{ Check, Severity, Field string }
	}
	if err := json.Unmarshal([]byte(r.out), &res); err != nil || r.code != 1 || len(res.Findings) != 2 {
		t.Errorf("package lint -o json: exit %d, %v\n%s", r.code, err, r.out)
	}
}

// TestPackageTestThenPromote is the author's path on the test cluster: test a
// package version, promote it, and be refused once the package is edited.
func TestPackageTestThenPromote(t *testing.T) {
	cryptoEnv(t)
	home := t.TempDir()
	cat := t.TempDir()
	for _, v := range []string{"1.0.0", "1.1.0"} {
		write(t, cat, "hello/"+v+"/package.yaml", strings.Replace(helloPackage, "version: 1.0.0", "version: "+v, 1)+"outputs:\n  - {name: greeting, value: \"{{ .config.greeting }}\"}\n")
		write(t, cat, "hello/"+v+"/greeting.yaml", helloManifest)
	}
	write(t, cat, "hello/channels.yaml", "stable: 1.0.0\nlatest: 1.1.0\n")
	dir := filepath.Join(cat, "hello", "1.1.0")
	kc := testcluster.Kubeconfig(t)

	r := berth(t, home, "package", "test", dir, "--kubeconfig", kc, "-o", "json")
	if r.code != 0 {
		t.Fatalf("package test: exit %d\n%s%s", r.code, r.out, r.err)
	}
	var rep struct {
		Status, From, Digest string
		Steps                []struct{ Name, Status string }
	}
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil || rep.Status != "passed" || rep.From != "1.0.0" || len(rep.Steps) != 6 {
		t.Fatalf("package test -o json = %+v (%v)\n%s", rep, err, r.out)
	}
	if saved := read(t, cat, "hello/1.1.0.test-report.json"); !strings.Contains(saved, rep.Digest) {
		t.Errorf("the report next to the package does not record digest %s:\n%s", rep.Digest, saved)
	}

	if out := mustBerth(t, home, "catalog", "promote", "hello", "1.1.0", "--channel", "stable", "--catalog", cat); !strings.Contains(out, "stable of hello: 1.0.0 -> 1.1.0") {
		t.Errorf("catalog promote printed %q", out)
	}
	if got := read(t, cat, "hello/channels.yaml"); got != "stable: 1.1.0\nlatest: 1.1.0\n" {
		t.Errorf("channels.yaml after promote:\n%s", got)
	}

	write(t, cat, "hello/1.1.0/greeting.yaml", strings.Replace(helloManifest, "greeting: hi", "greeting: edited", 1))
	r = berth(t, home, "catalog", "promote", "hello", "1.1.0", "--channel", "warm", "--catalog", cat)
	if r.code == 0 || !strings.Contains(r.err, "the package changed after its test") {
		t.Errorf("promote of an edited package: exit %d\n%s", r.code, r.err)
	}
}
