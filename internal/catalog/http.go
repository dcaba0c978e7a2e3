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
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
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

// parseIndex reads an HTTP catalog's index. A broken file is an error; an entry
// that cannot be used (a version that is not semantic, an archive without a
// digest, a dependency constraint that does not parse, a channel to nowhere, a
// package listed twice) is left out and recorded in the index's Problems.
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
	sort.SliceStable(ix.Packages, func(i, j int) bool { return ix.Packages[i].Name < ix.Packages[j].Name })
	var pkgs []Entry
	for i, e := range ix.Packages {
		if i > 0 && ix.Packages[i-1].Name == e.Name {
			ix.Problems = append(ix.Problems, Problem{Where: where, Package: e.Name, Reason: "the package is listed twice; the first entry is used"})
			continue
		}
		if e, ok := checkEntry(where, e, &ix.Problems); ok {
			pkgs = append(pkgs, e)
		}
	}
	ix.Packages = pkgs
	return &ix, nil
}

// checkEntry keeps the usable versions and channels of an index entry, newest
// version first, and reports false when none is left.
func checkEntry(where string, e Entry, problems *[]Problem) (Entry, bool) {
	bad := func(version, reason string) {
		*problems = append(*problems, Problem{Where: where, Package: e.Name, Version: version, Reason: reason})
	}
	if !packageName.MatchString(e.Name) {
		bad("", fmt.Sprintf("%q is not a package name", e.Name))
		return e, false
	}
	type pv struct {
		v   *semver.Version
		ver Version
	}
	var vs []pv
	seen := map[string]bool{}
versions:
	for _, v := range e.Versions {
		sv, err := semver.StrictNewVersion(v.Version)
		switch {
		case err != nil:
			bad(v.Version, fmt.Sprintf("%q is not a semantic version (such as 1.2.3)", v.Version))
			continue
		case seen[v.Version]:
			bad(v.Version, "the version is listed twice; the first entry is used")
			continue
		case !sha256Digest(v.Digest):
			bad(v.Version, "the archive has no sha256 digest; every archive needs one")
			continue
		}
		for _, d := range v.Dependencies {
			if _, err := semver.NewConstraint(d.Version); d.Version != "" && err != nil {
				bad(v.Version, fmt.Sprintf("dependency %s: %q is not a version constraint", d.Package, d.Version))
				continue versions
			}
		}
		seen[v.Version] = true
		vs = append(vs, pv{v: sv, ver: v})
	}
	if len(vs) == 0 {
		bad("", "it has no usable version")
		return e, false
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].v.GreaterThan(vs[j].v) })
	e.Versions = nil
	for _, v := range vs {
		e.Versions = append(e.Versions, v.ver)
	}
	channels := map[string]string{}
	for c, v := range e.Channels {
		switch {
		case !channelName.MatchString(c):
			*problems = append(*problems, Problem{Where: where, Package: e.Name, Channel: c, Reason: fmt.Sprintf("%q is not a channel name", c)})
		case !hasVersion(&e, v):
			*problems = append(*problems, Problem{Where: where, Package: e.Name, Channel: c, Reason: fmt.Sprintf("it points to %s, which is not a usable version (versions: %s)", v, versionList(&e))})
		default:
			channels[c] = v
		}
	}
	if len(e.Channels) == 0 {
		channels["latest"] = e.Latest()
	}
	e.Channels = channels
	return e, true
}

var packageName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

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
	return WriteHTTPAt(ctx, fsys, where, out, "")
}

// WriteHTTPAt is WriteHTTP with the archives' URLs under base (such as
// https://charts.example.com/berth/) instead of relative to the index.
func WriteHTTPAt(ctx context.Context, fsys fs.FS, where, out, base string) (*Index, error) {
	ix, err := BuildIndex(ctx, fsys, where)
	if err != nil {
		return nil, err
	}
	if err := ix.Strict(); err != nil {
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
			file := fmt.Sprintf("%s-%s.tar.gz", e.Name, v.Version)
			v.URL = file
			if base != "" {
				v.URL = strings.TrimSuffix(base, "/") + "/" + file
			}
			v.Digest = Digest(buf.Bytes())
			if err := writeFileAtomic(filepath.Join(out, file), buf.Bytes()); err != nil {
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
