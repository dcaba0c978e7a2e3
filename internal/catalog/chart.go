package catalog

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"berth.dev/berth/internal/pkgspec"
)

// maxChartBytes bounds a downloaded chart archive.
const maxChartBytes = 64 << 20

// ChartFetcher downloads the charts packages pin in Helm chart repositories and
// keeps them in Cache by digest, so a chart is downloaded once and the bytes
// rendered never change.
type ChartFetcher struct {
	Cache  string
	Client *http.Client
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

func (f *ChartFetcher) fetch(ctx context.Context, c pkgspec.Chart) ([]byte, error) {
	cached := filepath.Join(f.Cache, strings.ReplaceAll(c.Digest, ":", "-")+".tgz")
	if b, err := os.ReadFile(cached); err == nil && Digest(b) == c.Digest {
		return b, nil
	}
	if strings.HasPrefix(c.Repo, "oci://") {
		return f.fetchOCI(ctx, c, cached)
	}
	h := &HTTPSource{Client: f.Client}
	indexURL := strings.TrimSuffix(c.Repo, "/") + "/index.yaml"
	b, err := h.get(ctx, indexURL, maxIndexBytes)
	if err != nil {
		return nil, err
	}
	var ix helmIndex
	if err := yaml.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("%s is not a Helm repository index: %v", indexURL, err)
	}
	var archive string
	for _, e := range ix.Entries[c.Chart] {
		if e.Version == c.Version && len(e.URLs) > 0 {
			archive = e.URLs[0]
		}
	}
	if archive == "" {
		return nil, fmt.Errorf("the repository %s has no chart %s version %s; check the chart and version fields of the package", c.Repo, c.Chart, c.Version)
	}
	base, err := url.Parse(indexURL)
	if err != nil {
		return nil, err
	}
	ref, err := url.Parse(archive)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid chart URL %q", indexURL, archive)
	}
	u := base.ResolveReference(ref).String()
	b, err = h.get(ctx, u, maxChartBytes)
	if err != nil {
		return nil, err
	}
	if got := Digest(b); got != c.Digest {
		return nil, fmt.Errorf("%s has digest %s, but the package pins %s: the chart changed upstream or in transit; check it and update digest: if the change is expected", u, got, c.Digest)
	}
	if err := os.MkdirAll(f.Cache, 0o755); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(cached, b); err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}
