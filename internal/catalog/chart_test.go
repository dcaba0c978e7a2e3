package catalog

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"berth.dev/berth/internal/pkgspec"
)

// helmRepo serves a Helm chart repository holding one chart, and returns its
// URL and the archive's digest.
func helmRepo(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	ch, err := chartloader.LoadFiles([]*archive.BufferedFile{
		{Name: "Chart.yaml", Data: []byte("apiVersion: v2\nname: hello\nversion: 0.3.0\n")},
		{Name: "templates/cm.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tgz, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	index := "apiVersion: v1\nentries:\n  hello:\n    - version: 0.3.0\n      urls: [charts/hello-0.3.0.tgz]\n    - version: 0.2.0\n      urls: [charts/hello-0.2.0.tgz]\n"
	mux := http.NewServeMux()
	mux.HandleFunc("/repo/index.yaml", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(index)) })
	mux.HandleFunc("/repo/charts/hello-0.3.0.tgz", func(w http.ResponseWriter, r *http.Request) { w.Write(b) })
	mux.HandleFunc("/repo/charts/hello-0.2.0.tgz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("tampered")) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, Digest(b)
}

func TestChartFetcher(t *testing.T) {
	srv, digest := helmRepo(t)
	ctx := context.Background()
	chart := func(version, digest string) *pkgspec.Package {
		return &pkgspec.Package{File: "p/package.yaml", Charts: []pkgspec.Chart{{Path: "local"}, {Repo: srv.URL + "/repo", Chart: "hello", Version: version, Digest: digest}}}
	}
	f := &ChartFetcher{Cache: t.TempDir()}
	got, err := f.Fetch(ctx, chart("0.3.0", digest))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || Digest(got["hello"]) != digest {
		t.Fatalf("Fetch returned %d archives; hello has digest %s, want %s", len(got), Digest(got["hello"]), digest)
	}
	if _, err := os.Stat(filepath.Join(f.Cache, strings.ReplaceAll(digest, ":", "-")+".tgz")); err != nil {
		t.Errorf("the archive was not cached: %v", err)
	}

	errs := map[string]struct {
		pkg  *pkgspec.Package
		want string
	}{
		"tampered":        {chart("0.2.0", digest), "but the package pins " + digest},
		"missing version": {chart("9.9.9", digest), "has no chart hello version 9.9.9"},
	}
	for name, tc := range errs {
		t.Run(name, func(t *testing.T) {
			_, err := (&ChartFetcher{Cache: t.TempDir()}).Fetch(ctx, tc.pkg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Fetch error = %v, want it to contain %q", err, tc.want)
			}
		})
	}

	// The cache serves the chart when the repository is gone.
	srv.Close()
	if _, err := f.Fetch(ctx, chart("0.3.0", digest)); err != nil {
		t.Errorf("Fetch from the cache: %v", err)
	}
}
