package catalog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxIndexBytes bounds the size of a downloaded index.
const maxIndexBytes = 32 << 20

// HTTPSource is a catalog served over HTTP(S): an index file plus one archive
// per package version, each with its sha256 digest in the index. Downloads are
// cached in Cache, so the catalog works offline after an update.
type HTTPSource struct {
	// URL is the index's URL, or its directory (index.yaml is then appended).
	URL    string
	Cache  string
	Client *http.Client
	Limits Limits
}

func (s *HTTPSource) indexURL() string {
	if strings.HasSuffix(s.URL, ".yaml") || strings.HasSuffix(s.URL, ".yml") {
		return s.URL
	}
	return strings.TrimSuffix(s.URL, "/") + "/" + IndexFile
}

// defaultClient bounds every request, so a server that stops answering fails
// the command instead of hanging it.
var defaultClient = &http.Client{Timeout: 2 * time.Minute}

func (s *HTTPSource) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return defaultClient
}

func (s *HTTPSource) get(ctx context.Context, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w; check the URL and your network", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: the server answered %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("fetching %s: larger than %d bytes", u, limit)
	}
	return b, nil
}

// Update downloads the index and keeps a copy in the cache.
func (s *HTTPSource) Update(ctx context.Context) error {
	u := s.indexURL()
	b, err := s.get(ctx, u, maxIndexBytes)
	if err != nil {
		return err
	}
	if _, err := parseIndex(u, b); err != nil {
		return err
	}
	if err := os.MkdirAll(s.Cache, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.Cache, IndexFile), b)
}

func parseIndex(where string, b []byte) (*Index, error) {
	var ix Index
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&ix); err != nil {
		return nil, fmt.Errorf("%s: not a catalog index: %v", where, err)
	}
	if ix.Kind != "CatalogIndex" {
		return nil, fmt.Errorf("%s: kind is %q, expected CatalogIndex; is this a berth catalog?", where, ix.Kind)
	}
	for i := 1; i < len(ix.Packages); i++ {
		if ix.Packages[i-1].Name >= ix.Packages[i].Name {
			return nil, fmt.Errorf("%s: packages are not sorted by name, or %s appears twice", where, ix.Packages[i].Name)
		}
	}
	for _, e := range ix.Packages {
		for _, v := range e.Versions {
			if !sha256Digest(v.Digest) {
				return nil, fmt.Errorf("%s: %s %s has no sha256 digest; every archive needs one", where, e.Name, v.Version)
			}
		}
	}
	return &ix, nil
}

func sha256Digest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	return strings.Trim(h, "0123456789abcdef") == ""
}

// Index implements Source, reading the cached index (downloading it first if
// there is none yet).
func (s *HTTPSource) Index(ctx context.Context) (*Index, error) {
	p := filepath.Join(s.Cache, IndexFile)
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		if err := s.Update(ctx); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(p)
	}
	if err != nil {
		return nil, err
	}
	return parseIndex(s.indexURL(), b)
}

// Open implements Source: it downloads the version's archive, checks its
// digest, and extracts it safely into the cache.
func (s *HTTPSource) Open(ctx context.Context, name, version string) (fs.FS, error) {
	ix, err := s.Index(ctx)
	if err != nil {
		return nil, err
	}
	e, ok := ix.Entry(name)
	if !ok {
		return nil, &NotFoundError{Package: name}
	}
	v, ok := e.Version(version)
	if !ok {
		return nil, &NotFoundError{Package: name, Version: version, Available: versionList(e)}
	}
	digestHex := strings.TrimPrefix(v.Digest, "sha256:")
	dir := filepath.Join(s.Cache, "packages", name, version+"-"+digestHex[:16])
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return os.DirFS(dir), nil
	}
	base, err := url.Parse(s.indexURL())
	if err != nil {
		return nil, err
	}
	ref, err := url.Parse(v.URL)
	if err != nil || v.URL == "" {
		return nil, fmt.Errorf("%s: %s %s has an invalid archive URL %q", s.indexURL(), name, version, v.URL)
	}
	u := base.ResolveReference(ref).String()
	lim := s.Limits
	if lim.MaxTotal == 0 {
		lim = DefaultLimits()
	}
	b, err := s.get(ctx, u, lim.MaxTotal)
	if err != nil {
		return nil, err
	}
	if got := Digest(b); got != v.Digest {
		return nil, fmt.Errorf("archive %s has digest %s, but the index says %s: the archive was changed or corrupted in transit; run 'berth catalog update' and retry, and tell the catalog's maintainers if it persists", u, got, v.Digest)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".extract-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := Extract(bytes.NewReader(b), filepath.Join(tmp, "pkg"), lim); err != nil {
		return nil, fmt.Errorf("%s %s from %s: %w", name, version, u, err)
	}
	if err := os.Rename(filepath.Join(tmp, "pkg"), dir); err != nil && !os.IsExist(err) {
		return nil, err
	}
	return os.DirFS(dir), nil
}

// WriteHTTP writes the catalog tree in fsys as an HTTP catalog into out: an
// index.yaml and one archive per package version. Serve out with any static
// web server.
func WriteHTTP(ctx context.Context, fsys fs.FS, where, out string) (*Index, error) {
	ix, err := BuildIndex(ctx, fsys, where)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	for i := range ix.Packages {
		e := &ix.Packages[i]
		for j := range e.Versions {
			v := &e.Versions[j]
			var buf bytes.Buffer
			if err := Pack(&buf, fsys, path.Join(e.Name, v.Version)); err != nil {
				return nil, err
			}
			v.URL = fmt.Sprintf("%s-%s.tar.gz", e.Name, v.Version)
			v.Digest = Digest(buf.Bytes())
			if err := writeFileAtomic(filepath.Join(out, v.URL), buf.Bytes()); err != nil {
				return nil, err
			}
		}
	}
	b, err := yaml.Marshal(ix)
	if err != nil {
		return nil, err
	}
	return ix, writeFileAtomic(filepath.Join(out, IndexFile), b)
}

// writeFileAtomic writes a file through a temporary file and a rename, so a
// crash never leaves it half written.
func writeFileAtomic(name string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
