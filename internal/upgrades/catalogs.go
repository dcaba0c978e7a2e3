package upgrades

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/atomicfile"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/gitcmd"
	"berth.dev/berth/internal/workspace"
)

// maxIndexBytes bounds a downloaded catalog index.
const maxIndexBytes = 32 << 20

// Catalogs polls a workspace's catalogs cheaply and keeps each one's index in
// memory between polls: an HTTP catalog with a conditional request (ETag,
// If-Modified-Since: an unchanged index costs one 304), a git catalog by
// asking the remote for its head (and fetching only when it moved), a
// directory by a digest of its files' names, sizes and times.
type Catalogs struct {
	// Cache holds the downloaded indexes, archives and clones.
	Cache string
	// Client makes the HTTP requests; a client with a 2 minute timeout when nil.
	Client *http.Client

	mu      sync.Mutex
	state   map[string]*polled
	builtin catalog.Source
}

// polled is what is known of one catalog since its last poll.
type polled struct {
	ix       *catalog.Index
	open     func(ctx context.Context, name, version string) (fs.FS, error)
	etag     string
	modified string
	version  string // git head or directory digest
	http     *catalog.HTTPSource
	git      *catalog.GitSource
}

// memSource serves a polled index from memory: the index as the poll left
// it, so a later poll does not change it under a running check.
type memSource struct {
	ix   *catalog.Index
	open func(ctx context.Context, name, version string) (fs.FS, error)
}

func (m memSource) Index(context.Context) (*catalog.Index, error) { return m.ix, nil }
func (m memSource) Open(ctx context.Context, name, version string) (fs.FS, error) {
	return m.open(ctx, name, version)
}

// failedSource is a catalog that could never be read.
type failedSource struct{ err error }

func (f failedSource) Index(context.Context) (*catalog.Index, error) { return nil, f.err }
func (f failedSource) Open(context.Context, string, string) (fs.FS, error) {
	return nil, f.err
}

// Poll is the outcome of one poll of a workspace's catalogs.
type Poll struct {
	// Set reads the built-in catalog and the workspace's, from memory.
	Set *catalog.Set
	// Changed names the catalogs whose index changed since the last poll.
	Changed []string
	// Failed are the catalogs that could not be polled (their last index,
	// if any, is kept), each error naming the catalog.
	Failed []error
	// Fingerprint changes when any catalog's content does.
	Fingerprint string
}

// Poll polls the catalogs refs of the workspace at root (a directory
// catalog's relative URL is relative to it).
func (c *Catalogs) Poll(ctx context.Context, root string, refs []workspace.CatalogRef) *Poll {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		c.state = map[string]*polled{}
		// Built into this binary: read once.
		c.builtin = catalog.Builtin()
	}
	out := &Poll{}
	crefs := []catalog.Ref{{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin, URL: "embedded in berth"}}
	sources := map[string]catalog.Source{catalog.BuiltinName: c.builtin}
	for _, r := range refs {
		ref := catalog.Ref{Name: r.Name, Type: catalog.Type(r.Type), URL: r.URL}
		if ref.Type == "" {
			ref.Type = detectType(r.URL)
		}
		loc := ref.URL
		if ref.Type == catalog.TypeDir && !filepath.IsAbs(loc) {
			loc = filepath.Join(root, filepath.FromSlash(loc))
		}
		sum := sha256.Sum256([]byte(string(ref.Type) + " " + loc))
		key := r.Name + "-" + hex.EncodeToString(sum[:6])
		p := c.state[key]
		if p == nil {
			p = &polled{}
			c.state[key] = p
		}
		changed, err := c.poll(ctx, p, ref.Type, loc, filepath.Join(c.Cache, key))
		crefs = append(crefs, ref)
		switch {
		case err != nil && p.ix == nil:
			err = fmt.Errorf("catalog %s (%s) cannot be read: %w", r.Name, r.URL, err)
			out.Failed = append(out.Failed, err)
			sources[r.Name] = failedSource{err}
			continue
		case err != nil:
			out.Failed = append(out.Failed, fmt.Errorf("catalog %s (%s) cannot be polled, its last index is used: %w", r.Name, r.URL, err))
		case changed:
			out.Changed = append(out.Changed, r.Name)
		}
		src := memSource{ix: p.ix, open: p.open}
		if p.http != nil {
			// Archives are found in this index, not in one read again.
			h, ix := p.http, p.ix
			src.open = func(ctx context.Context, name, version string) (fs.FS, error) {
				return h.OpenIn(ctx, ix, name, version)
			}
		}
		sources[r.Name] = src
		out.Fingerprint += key + "=" + p.version + ";"
	}
	out.Set = catalog.NewSet(crefs, sources)
	return out
}

func (c *Catalogs) poll(ctx context.Context, p *polled, typ catalog.Type, loc, cache string) (bool, error) {
	switch typ {
	case catalog.TypeHTTP:
		return c.pollHTTP(ctx, p, loc, cache)
	case catalog.TypeGit:
		return pollGit(ctx, p, loc, cache)
	case catalog.TypeDir:
		return pollDir(ctx, p, loc)
	}
	return false, fmt.Errorf("%q is not a catalog type; use dir, git or http", typ)
}

func (c *Catalogs) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return defaultClient
}

var defaultClient = &http.Client{Timeout: 2 * time.Minute}

// pollHTTP asks for the index only if it changed since the copy in memory.
func (c *Catalogs) pollHTTP(ctx context.Context, p *polled, u, cache string) (bool, error) {
	if p.http == nil {
		p.http = &catalog.HTTPSource{URL: u, Cache: cache, Client: c.Client}
	}
	iu := u
	if !strings.HasSuffix(iu, ".yaml") && !strings.HasSuffix(iu, ".yml") {
		iu = strings.TrimSuffix(iu, "/") + "/" + catalog.IndexFile
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, iu, nil)
	if err != nil {
		return false, err
	}
	if p.ix != nil {
		if p.etag != "" {
			req.Header.Set("If-None-Match", p.etag)
		}
		if p.modified != "" {
			req.Header.Set("If-Modified-Since", p.modified)
		}
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return false, fmt.Errorf("fetching %s: %w", iu, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		if p.ix != nil {
			return false, nil
		}
		return false, fmt.Errorf("fetching %s: the server answered %s to a first request", iu, resp.Status)
	case http.StatusOK:
	default:
		return false, fmt.Errorf("fetching %s: the server answered %s", iu, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxIndexBytes+1))
	if err != nil {
		return false, fmt.Errorf("fetching %s: %w", iu, err)
	}
	if len(b) > maxIndexBytes {
		return false, fmt.Errorf("fetching %s: larger than %d bytes", iu, maxIndexBytes)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return false, err
	}
	// The HTTP source reads (and parses) the index where it caches it.
	if err := atomicfile.Write(filepath.Join(cache, catalog.IndexFile), b, 0o644); err != nil {
		return false, err
	}
	ix, err := p.http.Index(ctx)
	if err != nil {
		return false, err
	}
	p.etag, p.modified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	changed := p.ix == nil || p.version != digestOf(b)
	p.ix, p.version = ix, digestOf(b)
	return changed, nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pollGit asks the remote for its head and fetches only when it moved.
func pollGit(ctx context.Context, p *polled, u, cache string) (bool, error) {
	if p.git == nil {
		p.git = &catalog.GitSource{URL: u, Dir: filepath.Join(cache, "repo")}
		p.open = p.git.Open
	}
	out, err := gitcmd.Run(ctx, "", nil, "ls-remote", "--", u, "HEAD")
	if err != nil {
		return false, fmt.Errorf("asking %s for its head: %w", u, err)
	}
	head, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\t")
	if p.ix != nil && head != "" && head == p.version {
		return false, nil
	}
	if err := p.git.Update(ctx); err != nil {
		return false, err
	}
	ix, err := p.git.Index(ctx)
	if err != nil {
		return false, err
	}
	p.ix, p.version = ix, head
	return true, nil
}

// pollDir reads a directory catalog again when its files changed (by name,
// size and modification time).
func pollDir(ctx context.Context, p *polled, dir string) (bool, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", path, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return false, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if p.ix != nil && sum == p.version {
		return false, nil
	}
	src := catalog.NewDirSource(dir)
	ix, err := src.Index(ctx)
	if err != nil {
		return false, err
	}
	p.ix, p.version, p.open = ix, sum, src.Open
	return true, nil
}

// detectType guesses a catalog's type from its URL as the catalog package does.
func detectType(u string) catalog.Type {
	switch {
	case strings.HasSuffix(u, ".git"), strings.HasPrefix(u, "git@"), strings.HasPrefix(u, "ssh://"), strings.HasPrefix(u, "git://"), strings.HasPrefix(u, "file://"):
		return catalog.TypeGit
	case strings.HasPrefix(u, "http://"), strings.HasPrefix(u, "https://"):
		return catalog.TypeHTTP
	}
	return catalog.TypeDir
}
