package catalog

import (
	"context"
	"errors"
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

func TestMirrorsFor(t *testing.T) {
	ms := Mirrors{
		{Upstream: AnyUpstream, Location: "/m"},
		{Upstream: "https://charts.example.com/stable", Location: "https://mirror.example.com/stable-copy/"},
	}
	cases := map[string]string{
		"https://charts.jetstack.io/index.yaml":                "/m/charts.jetstack.io/index.yaml",
		"oci://registry-1.docker.io/bitnamicharts/index.yaml":  "/m/registry-1.docker.io/bitnamicharts/index.yaml",
		"https://charts.example.com/stable/index.yaml":         "https://mirror.example.com/stable-copy/index.yaml",
		"https://charts.example.com/stable/charts/a-1.0.0.tgz": "https://mirror.example.com/stable-copy/charts/a-1.0.0.tgz",
		"https://charts.example.com/stable-other/index.yaml":   "/m/charts.example.com/stable-other/index.yaml",
		"https://charts.example.com/stable":                    "https://mirror.example.com/stable-copy/",
	}
	for u, want := range cases {
		if got := ms.For(u); got != want {
			t.Errorf("For(%q) = %q, want %q", u, got, want)
		}
	}
	if got := ms[1:].For("https://elsewhere.example.com/index.yaml"); got != "" {
		t.Errorf("an upstream no mirror serves was mapped to %q", got)
	}
}

func TestParseMirrorEnv(t *testing.T) {
	ms, err := ParseMirrorEnv("rel/dir")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if len(ms) != 1 || ms[0].Upstream != AnyUpstream || ms[0].Location != filepath.Join(wd, "rel/dir") {
		t.Errorf("ParseMirrorEnv(rel/dir) = %+v", ms)
	}
	ms, err = ParseMirrorEnv("https://a.example.com/charts=/x, oci://r.example.com/c=https://m.example.com/c")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Upstream != "https://a.example.com/charts" || ms[1].Location != "https://m.example.com/c" {
		t.Errorf("ParseMirrorEnv(pairs) = %+v", ms)
	}
	for _, bad := range []string{"ftp://x=/y", "https://a.example.com=", "https://a.example.com=git://x"} {
		if _, err := ParseMirrorEnv(bad); err == nil || !strings.Contains(err.Error(), MirrorEnv) {
			t.Errorf("ParseMirrorEnv(%q) error = %v, want one naming %s", bad, err, MirrorEnv)
		}
	}
}

// sharedMirror is the project's offline copy of upstream chart repositories.
func sharedMirror(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{os.Getenv(MirrorEnv), "../../../shared/charts", "/work/shared/charts"} {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "README.md")); err == nil {
			return dir
		}
	}
	t.Fatalf("no offline chart mirror: set %s", MirrorEnv)
	return ""
}

func TestChartFetcherReadsTheMirror(t *testing.T) {
	ms := Mirrors{{Upstream: AnyUpstream, Location: sharedMirror(t)}}
	// The digests the mirror's README lists for its own archives.
	cases := map[string]struct {
		chart  pkgspec.Chart
		digest string
	}{
		"oci": {pkgspec.Chart{Repo: "oci://registry-1.docker.io/bitnamicharts", Chart: "postgresql", Version: "16.7.26"},
			"sha256:f431512560b1a7d78ee79bbf19544bb4e20175a34892e1467387602666247f52"},
		"archives in a folder": {pkgspec.Chart{Repo: "https://charts.jetstack.io", Chart: "cert-manager", Version: "v1.19.2"},
			"sha256:6ded2c5b5aa31f08382e093a9df341b44893bb9af89e597633c1c2513a00eeb7"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := &ChartFetcher{Mirrors: ms}
			got, err := f.Fetch(context.Background(), &pkgspec.Package{File: "p/package.yaml", Charts: []pkgspec.Chart{tc.chart}})
			if err != nil {
				t.Fatal(err)
			}
			if d := Digest(got[tc.chart.Chart]); d != tc.digest {
				t.Errorf("archive digest %s, want %s", d, tc.digest)
			}
			ref := ChartRef{Repo: tc.chart.Repo, Chart: tc.chart.Chart, Version: tc.chart.Version}
			if r := f.Resolved(); r[ref] != tc.digest || len(r) != 1 {
				t.Errorf("Resolved() = %v, want only %s: %s", r, ref, tc.digest)
			}
		})
	}

	_, err := (&ChartFetcher{Mirrors: ms}).Fetch(context.Background(), &pkgspec.Package{File: "p/package.yaml",
		Charts: []pkgspec.Chart{{Repo: "https://charts.unknown.example.com", Chart: "x", Version: "1.0.0"}}})
	var me *MirrorError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "charts.unknown.example.com/index.yaml") {
		t.Errorf("an upstream the mirror lacks: error %v, want a MirrorError naming the path", err)
	}
}

func TestChartFetcherChecksTheLockedDigest(t *testing.T) {
	srv, digest := helmRepo(t)
	ctx := context.Background()
	ref := ChartRef{Repo: srv.URL + "/repo", Chart: "hello", Version: "0.3.0"}
	pkg := &pkgspec.Package{File: "p/package.yaml", Charts: []pkgspec.Chart{{Repo: ref.Repo, Chart: ref.Chart, Version: ref.Version}}}

	// Recorded the first time.
	f := &ChartFetcher{}
	if _, err := f.Fetch(ctx, pkg); err != nil {
		t.Fatal(err)
	}
	if got := f.Resolved()[ref]; got != digest {
		t.Fatalf("first fetch recorded %q, want %s", got, digest)
	}
	// The same archive is accepted later; another one is refused.
	if _, err := (&ChartFetcher{Locked: map[ChartRef]string{ref: digest}}).Fetch(ctx, pkg); err != nil {
		t.Errorf("fetch with the recorded digest: %v", err)
	}
	other := "sha256:" + strings.Repeat("ab", 32)
	_, err := (&ChartFetcher{Locked: map[ChartRef]string{ref: other}}).Fetch(ctx, pkg)
	var de *ChartDigestError
	if !errors.As(err, &de) || de.Pinned || de.Got != digest || de.Want != other || !strings.Contains(err.Error(), "berth.lock recorded") {
		t.Errorf("fetch of another archive than the lock's: error %v, want a ChartDigestError naming berth.lock", err)
	}
	// A pinned digest wins over the lock.
	pinned := &pkgspec.Package{File: "p/package.yaml", Charts: []pkgspec.Chart{{Repo: ref.Repo, Chart: ref.Chart, Version: ref.Version, Digest: other}}}
	_, err = (&ChartFetcher{Locked: map[ChartRef]string{ref: digest}}).Fetch(ctx, pinned)
	if !errors.As(err, &de) || !de.Pinned {
		t.Errorf("fetch against a pinned digest: error %v, want a pinned ChartDigestError", err)
	}
}
