package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// MirrorEnv names the environment variable that sets chart mirrors for a
// process: a directory or URL laid out by upstream repository URL (it then
// serves every upstream), or a comma-separated list of UPSTREAM=LOCATION pairs.
const MirrorEnv = "BERTH_CHART_MIRROR"

// AnyUpstream is the upstream of a mirror that serves every chart repository.
const AnyUpstream = "*"

// Mirror says where the charts of an upstream chart repository are read from
// instead of the upstream itself. Location is a directory or an http(s) URL.
// For AnyUpstream, Location is laid out by upstream repository URL: the URL
// without its scheme is the path below Location
// (https://charts.jetstack.io/index.yaml is LOCATION/charts.jetstack.io/index.yaml,
// oci://registry-1.docker.io/bitnamicharts/ is
// LOCATION/registry-1.docker.io/bitnamicharts/). For an upstream URL prefix,
// what follows the prefix is the path below Location.
type Mirror struct {
	Upstream string `json:"upstream"`
	Location string `json:"location"`
}

// Mirrors maps upstream URLs to mirrors; the longest matching upstream wins,
// AnyUpstream matching last.
type Mirrors []Mirror

// ParseMirrorEnv parses the value of MirrorEnv; relative directories are
// relative to the working directory.
func ParseMirrorEnv(v string) (Mirrors, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	var out Mirrors
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		up, loc, pair := strings.Cut(part, "=")
		if !pair {
			up, loc = AnyUpstream, part
		}
		m := Mirror{Upstream: strings.TrimSpace(up), Location: strings.TrimSpace(loc)}
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", MirrorEnv, err)
		}
		if !isURL(m.Location) {
			abs, err := filepath.Abs(m.Location)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", MirrorEnv, err)
			}
			m.Location = abs
		}
		out = append(out, m)
	}
	return out, nil
}

// MirrorsFromEnv returns the mirrors MirrorEnv sets.
func MirrorsFromEnv() (Mirrors, error) { return ParseMirrorEnv(os.Getenv(MirrorEnv)) }

// ValidateMirror checks one configured mirror; base is the directory relative
// locations are relative to, and the returned mirror has them made absolute.
func ValidateMirror(m Mirror, base string) (Mirror, error) {
	if err := m.validate(); err != nil {
		return m, err
	}
	if !isURL(m.Location) && !filepath.IsAbs(m.Location) {
		m.Location = filepath.Join(base, m.Location)
	}
	return m, nil
}

func (m Mirror) validate() error {
	if m.Location == "" {
		return errors.New("location is empty: name a directory or an http(s) URL laid out by upstream repository URL")
	}
	if m.Upstream != AnyUpstream {
		u, err := url.Parse(m.Upstream)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "oci") {
			return fmt.Errorf("upstream %q is neither %q nor an https://, http:// or oci:// repository URL", m.Upstream, AnyUpstream)
		}
	}
	if strings.Contains(m.Location, "://") && !isURL(m.Location) {
		return fmt.Errorf("location %q: only directories and http(s) URLs can serve as mirrors", m.Location)
	}
	return nil
}

func isURL(s string) bool { return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") }

// For returns where upstream URL u is read from: the mirror's location of it,
// or "" when no mirror serves it.
func (ms Mirrors) For(u string) string {
	best, bestLen := -1, -1
	for i, m := range ms {
		n := -1
		switch {
		case m.Upstream == AnyUpstream:
			n = 0
		case strings.HasPrefix(u, strings.TrimSuffix(m.Upstream, "/")+"/") || u == strings.TrimSuffix(m.Upstream, "/"):
			n = len(m.Upstream)
		}
		if n > bestLen {
			best, bestLen = i, n
		}
	}
	if best < 0 {
		return ""
	}
	m := ms[best]
	var rest string
	if m.Upstream == AnyUpstream {
		_, rest, _ = strings.Cut(u, "://")
	} else {
		rest = strings.TrimPrefix(u, strings.TrimSuffix(m.Upstream, "/"))
	}
	rest = strings.TrimPrefix(rest, "/")
	if isURL(m.Location) {
		return strings.TrimSuffix(m.Location, "/") + "/" + rest
	}
	return filepath.Join(m.Location, filepath.FromSlash(rest))
}

// MirrorError says a mirror does not hold what an upstream URL names.
type MirrorError struct {
	Upstream string
	Location string
	Err      error
}

func (e *MirrorError) Error() string {
	return fmt.Sprintf("%s is mirrored at %s, which cannot be read: %v; add it to the mirror or remove the mirror", e.Upstream, e.Location, e.Err)
}

func (e *MirrorError) Unwrap() error { return e.Err }

// readMirrored reads upstream URL u from its mirror; ok is false when no
// mirror serves u.
func (f *ChartFetcher) readMirrored(ctx context.Context, u string, limit int64) (b []byte, ok bool, err error) {
	loc := f.Mirrors.For(u)
	if loc == "" {
		return nil, false, nil
	}
	if isURL(loc) {
		b, err = (&HTTPSource{Client: f.Client}).get(ctx, loc, limit)
	} else {
		b, err = readFileLimit(loc, limit)
	}
	if err != nil {
		return nil, true, &MirrorError{Upstream: u, Location: loc, Err: err}
	}
	return b, true, nil
}

func readFileLimit(name string, limit int64) ([]byte, error) {
	st, err := os.Stat(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("no such file")
		}
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return os.ReadFile(name)
}
