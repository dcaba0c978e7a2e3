package catalog

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"

	"berth.dev/berth/internal/pkgspec"
)

// ChannelsFile is the file beside a package's versions that maps channels to versions.
const ChannelsFile = "channels.yaml"

// IndexFile is the file at the root of an HTTP catalog.
const IndexFile = "index.yaml"

// Channels are the usual channels, from the most to the least conservative.
var Channels = []string{"stable", "warm", "latest"}

// Index lists the packages of a catalog.
type Index struct {
	APIVersion string  `yaml:"apiVersion" json:"apiVersion"`
	Kind       string  `yaml:"kind" json:"kind"`
	Packages   []Entry `yaml:"packages" json:"packages"`
	// Problems are the entries left out because they cannot be used; they are
	// never part of a published index.
	Problems []Problem `yaml:"-" json:"problems,omitempty"`
}

// Entry is one package of an index.
type Entry struct {
	Name        string            `yaml:"name" json:"name"`
	Description string            `yaml:"description" json:"description"`
	Homepage    string            `yaml:"homepage,omitempty" json:"homepage,omitempty"`
	Keywords    []string          `yaml:"keywords,omitempty" json:"keywords,omitempty"`
	Channels    map[string]string `yaml:"channels,omitempty" json:"channels,omitempty"`
	// Versions are newest first.
	Versions []Version `yaml:"versions" json:"versions"`
}

// Version is one version of a package in an index.
type Version struct {
	Version      string               `yaml:"version" json:"version"`
	Description  string               `yaml:"description,omitempty" json:"description,omitempty"`
	Dependencies []pkgspec.Dependency `yaml:"dependencies,omitempty" json:"dependencies,omitempty"`
	// URL and Digest locate the version's archive in an HTTP catalog; URL is
	// relative to the index.
	URL    string `yaml:"url,omitempty" json:"url,omitempty"`
	Digest string `yaml:"digest,omitempty" json:"digest,omitempty"`
}

// Entry returns the package called name.
func (ix *Index) Entry(name string) (*Entry, bool) {
	i := sort.Search(len(ix.Packages), func(i int) bool { return ix.Packages[i].Name >= name })
	if i < len(ix.Packages) && ix.Packages[i].Name == name {
		return &ix.Packages[i], true
	}
	return nil, false
}

// Version returns the entry's version v.
func (e *Entry) Version(v string) (*Version, bool) {
	for i := range e.Versions {
		if e.Versions[i].Version == v {
			return &e.Versions[i], true
		}
	}
	return nil, false
}

// Latest returns the newest version.
func (e *Entry) Latest() string {
	if len(e.Versions) == 0 {
		return ""
	}
	return e.Versions[0].Version
}

// ChannelNames returns the entry's channels, usual ones first.
func (e *Entry) ChannelNames() []string {
	var out []string
	for _, c := range Channels {
		if _, ok := e.Channels[c]; ok {
			out = append(out, c)
		}
	}
	var rest []string
	for c := range e.Channels {
		if !containsStr(Channels, c) {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var channelName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// BuildIndex scans a catalog tree (NAME/VERSION/package.yaml and
// NAME/channels.yaml), loading and validating every package. where names the
// tree in errors. A package version that cannot be used (it does not load, it
// holds a link or a special file) is left out and recorded in the index's
// Problems, so one bad entry never hides the rest of the catalog.
func BuildIndex(ctx context.Context, fsys fs.FS, where string) (*Index, error) {
	ix := &Index{APIVersion: pkgspec.APIVersion, Kind: "CatalogIndex"}
	names, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", where, err)
	}
	for _, n := range names {
		if strings.HasPrefix(n.Name(), ".") {
			continue
		}
		if n.Type()&fs.ModeSymlink != 0 {
			ix.Problems = append(ix.Problems, Problem{Where: where, Package: n.Name(), Reason: n.Name() + " is a symbolic link; a catalog may hold only regular files and directories"})
			continue
		}
		if !n.IsDir() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, problems := buildEntry(fsys, where, n.Name())
		ix.Problems = append(ix.Problems, problems...)
		if e != nil {
			ix.Packages = append(ix.Packages, *e)
		}
	}
	sort.Slice(ix.Packages, func(i, j int) bool { return ix.Packages[i].Name < ix.Packages[j].Name })
	return ix, nil
}

// Strict returns the index's first problem as an error, for those who publish
// a catalog and must not leave a package out silently.
func (ix *Index) Strict() error {
	if len(ix.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s (and %d more problems)", ix.Problems[0], len(ix.Problems)-1)
}

// buildEntry reads one package's versions and channels; it returns nil when
// none of its versions can be used.
func buildEntry(fsys fs.FS, where, name string) (*Entry, []Problem) {
	var problems []Problem
	bad := func(version, reason string) {
		problems = append(problems, Problem{Where: where, Package: name, Version: version, Reason: reason})
	}
	dirs, err := fs.ReadDir(fsys, name)
	if err != nil {
		bad("", err.Error())
		return nil, problems
	}
	e := &Entry{Name: name}
	type pv struct {
		v   *semver.Version
		ver Version
		pkg *pkgspec.Package
	}
	var vs []pv
	for _, d := range dirs {
		if d.Type()&fs.ModeSymlink != 0 {
			bad(d.Name(), path.Join(where, name, d.Name())+" is a symbolic link; a catalog may hold only regular files and directories")
			continue
		}
		if !d.IsDir() {
			continue
		}
		dir := path.Join(name, d.Name())
		if _, err := fs.Lstat(fsys, path.Join(dir, pkgspec.FileName)); err != nil {
			continue // not a package version
		}
		if err := checkTree(fsys, dir, LinkError{Catalog: where, Package: name, Version: d.Name()}); err != nil {
			bad(d.Name(), err.Error())
			continue
		}
		p, err := pkgspec.Load(fsys, dir, path.Join(where, dir, pkgspec.FileName))
		if err != nil {
			bad(d.Name(), err.Error())
			continue
		}
		file := path.Join(where, dir, pkgspec.FileName)
		if p.Name != name {
			bad(d.Name(), fmt.Sprintf("%s: name is %q but the package is in directory %s; the directory must be named after the package", file, p.Name, name))
			continue
		}
		if p.Version != d.Name() {
			bad(d.Name(), fmt.Sprintf("%s: version is %q but the directory is %s; the directory must be named after the version", file, p.Version, d.Name()))
			continue
		}
		v, err := semver.NewVersion(p.Version)
		if err != nil {
			bad(d.Name(), fmt.Sprintf("%s: version %q is not a semantic version", file, p.Version))
			continue
		}
		var deps []pkgspec.Dependency
		for _, dep := range p.Dependencies {
			dep.Config = nil
			deps = append(deps, dep)
		}
		vs = append(vs, pv{v: v, ver: Version{Version: p.Version, Description: p.Description, Dependencies: deps}, pkg: p})
	}
	if len(vs) == 0 {
		return nil, problems
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].v.GreaterThan(vs[j].v) })
	for _, v := range vs {
		e.Versions = append(e.Versions, v.ver)
	}
	newest := vs[0].pkg
	e.Description, e.Homepage, e.Keywords = newest.Description, newest.Homepage, newest.Keywords

	chFile := path.Join(name, ChannelsFile)
	fi, err := fs.Lstat(fsys, chFile)
	if err == nil && !fi.Mode().IsRegular() {
		// Channels say what is tested: a package whose channels cannot be read
		// is left out rather than offered on a channel nobody set.
		bad("", path.Join(where, chFile)+" is not a regular file (a symbolic link?); a catalog may hold only regular files and directories")
		return nil, problems
	}
	b, err := fs.ReadFile(fsys, chFile)
	switch {
	case err == nil:
		var ch map[string]string
		if err := yaml.Unmarshal(b, &ch); err != nil {
			bad("", fmt.Sprintf("%s: %v; write one line per channel, such as stable: 1.2.3", path.Join(where, chFile), err))
			return nil, problems
		}
		e.Channels = map[string]string{}
		for c, v := range ch {
			switch {
			case !channelName.MatchString(c):
				problems = append(problems, Problem{Where: where, Package: name, Channel: c, Reason: fmt.Sprintf("%s: %q is not a channel name; use lowercase letters such as stable, warm, latest", path.Join(where, chFile), c)})
			case !hasVersion(e, v):
				problems = append(problems, Problem{Where: where, Package: name, Channel: c, Reason: fmt.Sprintf("%s: channel %s points to %s, which is not a usable version of %s (versions: %s)", path.Join(where, chFile), c, v, name, versionList(e))})
			default:
				e.Channels[c] = v
			}
		}
	case errorsIsNotExist(err):
		e.Channels = map[string]string{"latest": e.Latest()}
	default:
		bad("", fmt.Sprintf("%s: %v", path.Join(where, chFile), err))
		return nil, problems
	}
	return e, problems
}

func hasVersion(e *Entry, v string) bool {
	_, ok := e.Version(v)
	return ok
}

func versionList(e *Entry) string {
	s := make([]string, len(e.Versions))
	for i, v := range e.Versions {
		s[i] = v.Version
	}
	return strings.Join(s, ", ")
}
