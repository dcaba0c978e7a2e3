package catalog

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"berth.dev/berth/internal/pkgspec"
)

// maxChartBytes bounds a downloaded chart archive.
const maxChartBytes = 64 << 20

// ChartRef names a chart in a chart repository at an exact version.
type ChartRef struct {
	Repo    string `json:"repo"`
	Chart   string `json:"chart"`
	Version string `json:"version"`
}

func (r ChartRef) String() string {
	return fmt.Sprintf("%s %s from %s", r.Chart, r.Version, r.Repo)
}

// ChartFetcher downloads the charts packages name in Helm chart repositories
// (or reads them from a mirror) and keeps them in Cache by digest, so a chart
// is downloaded once and the bytes rendered never change.
//
// An archive is checked against the package's digest when it pins one, and
// against Locked (berth.lock's record) when that knows the chart; an archive
// seen for the first time is accepted and recorded, so that every later fetch
// must return the same bytes (as go.sum and Helm's Chart.lock do).
type ChartFetcher struct {
	Cache   string
	Client  *http.Client
	Mirrors Mirrors
	// Locked holds the digests recorded for charts before this fetcher ran.
	Locked map[ChartRef]string

	mu       sync.Mutex
	resolved map[ChartRef]string
}

// ChartDigestError means a chart archive is not the one the package or the
// lock expects.
type ChartDigestError struct {
	Chart ChartRef
	// From is where the archive was read.
	From      string
	Got, Want string
	// Pinned is true when the package pins Want, false when the lock
	// recorded it.
	Pinned bool
}

func (e *ChartDigestError) Error() string {
	if e.Pinned {
		return fmt.Sprintf("chart %s: %s has digest %s, but the package pins %s: the chart changed upstream or in transit; check it and update digest: if the change is expected", e.Chart, e.From, e.Got, e.Want)
	}
	return fmt.Sprintf("chart %s: %s has digest %s, but berth.lock recorded %s when the chart was first resolved: the archive changed upstream, in the mirror or in transit; check it, and if the change is expected remove the chart's entry from charts: in berth.lock so it is recorded afresh", e.Chart, e.From, e.Got, e.Want)
}

// Resolved returns the digest of every chart this fetcher returned.
func (f *ChartFetcher) Resolved() map[ChartRef]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.resolved)
}

func (f *ChartFetcher) record(r ChartRef, digest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resolved == nil {
		f.resolved = map[ChartRef]string{}
	}
	f.resolved[r] = digest
}

// Fetch returns the archives of pkg's charts from chart repositories, by chart
// name; charts inside the package are skipped.
func (f *ChartFetcher) Fetch(ctx context.Context, pkg *pkgspec.Package) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, c := range pkg.Charts {
		if c.Repo == "" {
			continue
		}
		b, err := f.fetch(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s: chart %s: %w", pkg.File, c.ChartName(), err)
		}
		out[c.ChartName()] = b
	}
	return out, nil
}

type helmIndex struct {
	Entries map[string][]struct {
		Version string   `yaml:"version"`
		URLs    []string `yaml:"urls"`
	} `yaml:"entries"`
}

// expected returns the digest the archive of c must have, and whether the
// package pins it (else the lock recorded it); "" when nothing is known yet.
func (f *ChartFetcher) expected(c pkgspec.Chart) (want string, pinned bool) {
	if c.Digest != "" {
		return c.Digest, true
	}
	return f.Locked[ChartRef{Repo: c.Repo, Chart: c.Chart, Version: c.Version}], false
}

func (f *ChartFetcher) fetch(ctx context.Context, c pkgspec.Chart) ([]byte, error) {
	ref := ChartRef{Repo: c.Repo, Chart: c.Chart, Version: c.Version}
	want, pinned := f.expected(c)
	if want != "" && f.Cache != "" {
		cached := filepath.Join(f.Cache, strings.ReplaceAll(want, ":", "-")+".tgz")
		if b, err := os.ReadFile(cached); err == nil && Digest(b) == want {
			f.record(ref, want)
			return b, nil
		}
	}
	b, from, err := f.download(ctx, c)
	if err != nil {
		return nil, err
	}
	got := Digest(b)
	if want != "" && got != want {
		return nil, &ChartDigestError{Chart: ref, From: from, Got: got, Want: want, Pinned: pinned}
	}
	if f.Cache != "" {
		if err := os.MkdirAll(f.Cache, 0o755); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(f.Cache, strings.ReplaceAll(got, ":", "-")+".tgz"), b); err != nil {
			return nil, err
		}
	}
	f.record(ref, got)
	return b, nil
}

// get reads upstream URL u, from its mirror when one serves it.
func (f *ChartFetcher) get(ctx context.Context, u string, limit int64) (b []byte, from string, err error) {
	b, mirrored, err := f.readMirrored(ctx, u, limit)
	if mirrored {
		return b, f.Mirrors.For(u), err
	}
	if strings.HasPrefix(u, "oci://") {
		return nil, u, fmt.Errorf("%s: an archive in an OCI registry is pulled by chart name, not by URL; name the registry as the package's repo: (oci://HOST/PATH)", u)
	}
	b, err = (&HTTPSource{Client: f.Client}).get(ctx, u, limit)
	return b, u, err
}

// download reads the archive of c through its repository's index, or from
// its OCI registry through Helm's registry client when no mirror serves it.
func (f *ChartFetcher) download(ctx context.Context, c pkgspec.Chart) ([]byte, string, error) {
	indexURL := strings.TrimSuffix(c.Repo, "/") + "/index.yaml"
	if strings.HasPrefix(c.Repo, "oci://") && f.Mirrors.For(indexURL) == "" {
		b, ref, err := f.pullOCI(ctx, c)
		return b, "oci://" + ref, err
	}
	b, from, err := f.get(ctx, indexURL, maxIndexBytes)
	if err != nil {
		return nil, from, err
	}
	var ix helmIndex
	if err := yaml.Unmarshal(b, &ix); err != nil {
		return nil, from, fmt.Errorf("%s is not a Helm repository index: %v", from, err)
	}
	var archive string
	for _, e := range ix.Entries[c.Chart] {
		if e.Version == c.Version && len(e.URLs) > 0 {
			archive = e.URLs[0]
		}
	}
	if archive == "" {
		return nil, from, fmt.Errorf("the repository %s (index %s) has no chart %s version %s; check the chart and version fields of the package", c.Repo, from, c.Chart, c.Version)
	}
	base, err := url.Parse(indexURL)
	if err != nil {
		return nil, from, err
	}
	ref, err := url.Parse(archive)
	if err != nil {
		return nil, from, fmt.Errorf("%s: invalid chart URL %q", from, archive)
	}
	return f.get(ctx, base.ResolveReference(ref).String(), maxChartBytes)
}
