package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	builtin "berth.dev/berth/catalog"
	"berth.dev/berth/internal/pkgspec"
)

// BuiltinName is the name of the catalog embedded in berth.
const BuiltinName = "builtin"

// ConfigFile is where berth keeps the list of catalogs, below its home.
const ConfigFile = "catalogs.yaml"

// Type is how a catalog is read.
type Type string

// Catalog types.
const (
	TypeBuiltin Type = "builtin"
	TypeDir     Type = "dir"
	TypeGit     Type = "git"
	TypeHTTP    Type = "http"
)

func (t Type) String() string { return string(t) }

// Ref is one configured catalog.
type Ref struct {
	Name string `yaml:"name" json:"name"`
	Type Type   `yaml:"type" json:"type"`
	URL  string `yaml:"url" json:"url"`
}

type config struct {
	Catalogs []Ref `yaml:"catalogs"`
}

var catalogName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func loadConfig(home string) (*config, error) {
	p := filepath.Join(home, ConfigFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &config{}, nil
	}
	if err != nil {
		return nil, err
	}
	var c config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %v; fix the file or remove it to start over with the built-in catalog", p, err)
	}
	return &c, nil
}

func saveConfig(home string, c *config) error {
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(home, ConfigFile), b)
}

// Set is every catalog berth reads: the built-in one first, then those the
// user added, in the order they were added. A package name is looked up in
// that order; "CATALOG/NAME" picks a catalog.
type Set struct {
	Refs []Ref
	// OnProblem, when set, is called once for each entry of a catalog that was
	// left out because it cannot be used (see Problem), when the catalog's
	// index is first read.
	OnProblem func(Problem)

	sources  map[string]Source
	mu       sync.Mutex
	reported map[string]bool
}

// index returns the index of the catalog called name, reporting its problems.
func (s *Set) index(ctx context.Context, name string) (*Index, error) {
	ix, err := s.sources[name].Index(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ix.Problems) > 0 && !s.reported[name] && s.OnProblem != nil {
		if s.reported == nil {
			s.reported = map[string]bool{}
		}
		s.reported[name] = true
		for _, p := range ix.Problems {
			p.Catalog = name
			s.OnProblem(p)
		}
	}
	return ix, nil
}

// Problems reads every catalog's index and returns the entries left out
// because they cannot be used.
func (s *Set) Problems(ctx context.Context) ([]Problem, error) {
	var out []Problem
	for _, r := range s.Refs {
		ix, err := s.index(ctx, r.Name)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", r.Name, err)
		}
		for _, p := range ix.Problems {
			p.Catalog = r.Name
			out = append(out, p)
		}
	}
	return out, nil
}

// BuiltinEnv names the environment variable that replaces the catalog named
// builtin with a directory catalog: authors of the built-in catalog try their
// edits without rebuilding berth, and berth's own tests run against the
// fixture catalog in test/catalog (see test/catalog/catalog.go).
const BuiltinEnv = "BERTH_BUILTIN_CATALOG"

// Builtin returns the built-in catalog: the one embedded in berth, or the
// directory that BERTH_BUILTIN_CATALOG names.
func Builtin() Source {
	if dir := os.Getenv(BuiltinEnv); dir != "" {
		return NewDirSource(dir)
	}
	return Embedded()
}

// Embedded returns the catalog embedded in berth, whatever BERTH_BUILTIN_CATALOG says.
func Embedded() Source { return &FSSource{FS: builtin.FS, Where: "builtin:"} }

func cacheDir(home, name string) string { return filepath.Join(home, "catalogs", name) }

func source(home string, r Ref) Source {
	switch r.Type {
	case TypeDir:
		return NewDirSource(r.URL)
	case TypeGit:
		return &GitSource{URL: r.URL, Dir: filepath.Join(cacheDir(home, r.Name), "repo")}
	case TypeHTTP:
		return &HTTPSource{URL: r.URL, Cache: cacheDir(home, r.Name)}
	}
	return Builtin()
}

// Open returns the catalogs configured in home.
func Open(home string) (*Set, error) {
	c, err := loadConfig(home)
	if err != nil {
		return nil, err
	}
	s := &Set{sources: map[string]Source{}}
	s.Refs = append(s.Refs, Ref{Name: BuiltinName, Type: TypeBuiltin, URL: "embedded in berth"})
	s.sources[BuiltinName] = Builtin()
	for _, r := range c.Catalogs {
		s.Refs = append(s.Refs, r)
		s.sources[r.Name] = source(home, r)
	}
	return s, nil
}

// OpenRefs returns the built-in catalog followed by refs (a workspace's
// catalogs), in order, with caches below home. A directory catalog's relative
// URL is relative to base (the workspace's root), so every clone finds it.
func OpenRefs(home, base string, refs []Ref) (*Set, error) {
	s := &Set{sources: map[string]Source{}}
	s.Refs = append(s.Refs, Ref{Name: BuiltinName, Type: TypeBuiltin, URL: "embedded in berth"})
	s.sources[BuiltinName] = Builtin()
	for _, r := range refs {
		if !catalogName.MatchString(r.Name) || r.Name == BuiltinName {
			return nil, fmt.Errorf("catalog name %q is invalid or reserved; use lowercase letters, digits and '-'", r.Name)
		}
		if _, dup := s.sources[r.Name]; dup {
			return nil, fmt.Errorf("two catalogs are named %s", r.Name)
		}
		if r.Type == "" {
			r.Type = detectType(r.URL)
		}
		open := r
		if open.Type == TypeDir && !filepath.IsAbs(open.URL) {
			open.URL = filepath.Join(base, filepath.FromSlash(open.URL))
		}
		// Cached per name and location: two workspaces may give one name to
		// different catalogs.
		sum := sha256.Sum256([]byte(string(r.Type) + " " + r.URL))
		open.Name = r.Name + "-" + hex.EncodeToString(sum[:4])
		s.Refs = append(s.Refs, r)
		s.sources[r.Name] = source(home, open)
	}
	return s, nil
}

// NewSet returns a set of the given sources, in order; for tests and embedding.
func NewSet(refs []Ref, sources map[string]Source) *Set {
	return &Set{Refs: refs, sources: sources}
}

// Source returns the catalog called name.
func (s *Set) Source(name string) (Source, bool) {
	src, ok := s.sources[name]
	return src, ok
}

// Found is a package found in a catalog.
type Found struct {
	Catalog string `json:"catalog"`
	Entry   *Entry `json:"package"`
}

// Find looks a package up by name, or by "CATALOG/NAME".
func (s *Set) Find(ctx context.Context, name string) (Found, error) {
	want := s.Refs
	if cat, pkg, ok := strings.Cut(name, "/"); ok {
		if _, found := s.sources[cat]; !found {
			return Found{}, fmt.Errorf("no catalog is called %s; list them with 'berth catalog list'", cat)
		}
		ix, err := s.index(ctx, cat)
		if err != nil {
			return Found{}, err
		}
		if e, ok := ix.Entry(pkg); ok {
			return Found{Catalog: cat, Entry: e}, nil
		}
		return Found{}, &NotFoundError{Package: name}
	}
	for _, r := range want {
		ix, err := s.index(ctx, r.Name)
		if err != nil {
			return Found{}, fmt.Errorf("catalog %s: %w", r.Name, err)
		}
		if e, ok := ix.Entry(name); ok {
			return Found{Catalog: r.Name, Entry: e}, nil
		}
	}
	return Found{}, &NotFoundError{Package: name}
}

// Load opens and validates a package version found with Find.
func (s *Set) Load(ctx context.Context, f Found, version string) (*pkgspec.Package, fs.FS, error) {
	src := s.sources[f.Catalog]
	files, err := src.Open(ctx, f.Entry.Name, version)
	if err != nil {
		return nil, nil, err
	}
	where := path.Join(f.Catalog+":", f.Entry.Name, version, pkgspec.FileName)
	p, err := pkgspec.Load(files, ".", where)
	if err != nil {
		return nil, nil, err
	}
	if p.Name != f.Entry.Name || p.Version != version {
		return nil, nil, fmt.Errorf("%s: the package says %s %s, but the catalog lists it as %s %s", where, p.Name, p.Version, f.Entry.Name, version)
	}
	return p, files, nil
}

// Packages returns every package of every catalog; a name in an earlier
// catalog hides the same name in later ones.
func (s *Set) Packages(ctx context.Context) ([]Found, error) {
	seen := map[string]bool{}
	var out []Found
	for _, r := range s.Refs {
		ix, err := s.index(ctx, r.Name)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", r.Name, err)
		}
		for i := range ix.Packages {
			e := &ix.Packages[i]
			if seen[e.Name] {
				continue
			}
			seen[e.Name] = true
			out = append(out, Found{Catalog: r.Name, Entry: e})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Entry.Name < out[j].Entry.Name })
	return out, nil
}

// Search returns the packages whose name, description or keywords contain
// text (case-insensitive), names matching first; empty text matches all.
func (s *Set) Search(ctx context.Context, text string) ([]Found, error) {
	all, err := s.Packages(ctx)
	if err != nil {
		return nil, err
	}
	q := strings.ToLower(strings.TrimSpace(text))
	var byName, byText []Found
	for _, f := range all {
		e := f.Entry
		switch {
		case q == "" || strings.Contains(e.Name, q):
			byName = append(byName, f)
		case strings.Contains(strings.ToLower(e.Description), q) || strings.Contains(strings.ToLower(strings.Join(e.Keywords, " ")), q):
			byText = append(byText, f)
		}
	}
	return append(byName, byText...), nil
}

// Add adds a catalog to home's configuration after checking that it can be
// read. typ may be empty: a directory that exists is a directory catalog, a
// URL ending in .git (or an ssh address) a git repository, any other http(s)
// URL an HTTP catalog.
func Add(ctx context.Context, home string, r Ref) (Ref, error) {
	c, err := loadConfig(home)
	if err != nil {
		return r, err
	}
	r, err = Check(ctx, home, r, c.Catalogs)
	if err != nil {
		return r, err
	}
	c.Catalogs = append(c.Catalogs, r)
	return r, saveConfig(home, c)
}

// Check validates a catalog to be added next to have, completes its type and
// (for a directory) makes its path absolute, and reads it once (filling its
// cache in home), so that a catalog that cannot be read is never added.
func Check(ctx context.Context, home string, r Ref, have []Ref) (Ref, error) {
	if !catalogName.MatchString(r.Name) {
		return r, fmt.Errorf("%q is not a valid catalog name; use lowercase letters, digits and '-'", r.Name)
	}
	if r.Name == BuiltinName {
		return r, fmt.Errorf("the name %s is reserved for the catalog embedded in berth; choose another", BuiltinName)
	}
	for _, h := range have {
		if h.Name == r.Name {
			return r, fmt.Errorf("a catalog named %s already exists (%s); remove it first with 'berth catalog remove %s'", r.Name, h.URL, r.Name)
		}
	}
	if r.Type == "" {
		r.Type = detectType(r.URL)
	}
	switch r.Type {
	case TypeDir:
		abs, err := filepath.Abs(r.URL)
		if err != nil {
			return r, err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return r, fmt.Errorf("catalog directory %s does not exist; give the path of a directory holding NAME/VERSION/package.yaml", r.URL)
		}
		r.URL = abs
	case TypeGit, TypeHTTP:
	default:
		return r, fmt.Errorf("%q is not a catalog type; use dir, git or http", r.Type)
	}
	_ = os.RemoveAll(cacheDir(home, r.Name))
	src := source(home, r)
	if err := update(ctx, src); err != nil {
		_ = os.RemoveAll(cacheDir(home, r.Name))
		return r, err
	}
	ix, err := src.Index(ctx)
	if err == nil && len(ix.Packages) == 0 && len(ix.Problems) > 0 {
		err = fmt.Errorf("it has no usable package: %w", ix.Strict())
	}
	if err != nil {
		_ = os.RemoveAll(cacheDir(home, r.Name))
		return r, fmt.Errorf("catalog %s cannot be read: %w", r.Name, err)
	}
	return r, nil
}

func detectType(u string) Type {
	switch {
	case strings.HasSuffix(u, ".git"), strings.HasPrefix(u, "git@"), strings.HasPrefix(u, "ssh://"), strings.HasPrefix(u, "git://"), strings.HasPrefix(u, "file://"):
		return TypeGit
	case strings.HasPrefix(u, "http://"), strings.HasPrefix(u, "https://"):
		return TypeHTTP
	}
	return TypeDir
}

type updater interface {
	Update(ctx context.Context) error
}

func update(ctx context.Context, src Source) error {
	if u, ok := src.(updater); ok {
		return u.Update(ctx)
	}
	return nil
}

// Update refreshes the named catalogs (all when names is empty): git catalogs
// fetch, HTTP catalogs download their index again. Directory and built-in
// catalogs are always current.
func (s *Set) Update(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		for _, r := range s.Refs {
			names = append(names, r.Name)
		}
	}
	for _, n := range names {
		src, ok := s.sources[n]
		if !ok {
			return fmt.Errorf("no catalog is called %s; list them with 'berth catalog list'", n)
		}
		if err := update(ctx, src); err != nil {
			return fmt.Errorf("catalog %s: %w", n, err)
		}
		if _, err := src.Index(ctx); err != nil {
			return fmt.Errorf("catalog %s: %w", n, err)
		}
	}
	return nil
}

// Remove removes a catalog from home's configuration and deletes its cache.
func Remove(home, name string) error {
	if name == BuiltinName {
		return fmt.Errorf("the built-in catalog cannot be removed")
	}
	c, err := loadConfig(home)
	if err != nil {
		return err
	}
	for i, r := range c.Catalogs {
		if r.Name == name {
			c.Catalogs = append(c.Catalogs[:i], c.Catalogs[i+1:]...)
			if err := saveConfig(home, c); err != nil {
				return err
			}
			return os.RemoveAll(cacheDir(home, name))
		}
	}
	return fmt.Errorf("no catalog is called %s; list them with 'berth catalog list'", name)
}
