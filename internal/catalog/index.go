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
// tree in errors.
func BuildIndex(ctx context.Context, fsys fs.FS, where string) (*Index, error) {
	ix := &Index{APIVersion: pkgspec.APIVersion, Kind: "CatalogIndex"}
	names, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", where, err)
	}
	for _, n := range names {
		if !n.IsDir() || strings.HasPrefix(n.Name(), ".") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := buildEntry(fsys, where, n.Name())
		if err != nil {
			return nil, err
		}
		if e != nil {
			ix.Packages = append(ix.Packages, *e)
		}
	}
	sort.Slice(ix.Packages, func(i, j int) bool { return ix.Packages[i].Name < ix.Packages[j].Name })
	return ix, nil
}

func buildEntry(fsys fs.FS, where, name string) (*Entry, error) {
	dirs, err := fs.ReadDir(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", where, err)
	}
	e := &Entry{Name: name}
	type pv struct {
		v   *semver.Version
		ver Version
		pkg *pkgspec.Package
	}
	var vs []pv
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := path.Join(name, d.Name())
		if _, err := fs.Stat(fsys, path.Join(dir, pkgspec.FileName)); err != nil {
			continue
		}
		p, err := pkgspec.Load(fsys, dir, path.Join(where, dir, pkgspec.FileName))
		if err != nil {
			return nil, err
		}
		file := path.Join(where, dir, pkgspec.FileName)
		if p.Name != name {
			return nil, fmt.Errorf("%s: name is %q but the package is in directory %s; the directory must be named after the package", file, p.Name, name)
		}
		if p.Version != d.Name() {
			return nil, fmt.Errorf("%s: version is %q but the directory is %s; the directory must be named after the version", file, p.Version, d.Name())
		}
		v, _ := semver.NewVersion(p.Version)
		var deps []pkgspec.Dependency
		for _, dep := range p.Dependencies {
			dep.Config = nil
			deps = append(deps, dep)
		}
		vs = append(vs, pv{v: v, ver: Version{Version: p.Version, Description: p.Description, Dependencies: deps}, pkg: p})
	}
	if len(vs) == 0 {
		return nil, nil
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].v.GreaterThan(vs[j].v) })
	for _, v := range vs {
		e.Versions = append(e.Versions, v.ver)
	}
	newest := vs[0].pkg
	e.Description, e.Homepage, e.Keywords = newest.Description, newest.Homepage, newest.Keywords

	chFile := path.Join(name, ChannelsFile)
	b, err := fs.ReadFile(fsys, chFile)
	switch {
	case err == nil:
		var ch map[string]string
		if err := yaml.Unmarshal(b, &ch); err != nil {
			return nil, fmt.Errorf("%s: %v; write one line per channel, such as stable: 1.2.3", path.Join(where, chFile), err)
		}
		for c, v := range ch {
			if !channelName.MatchString(c) {
				return nil, fmt.Errorf("%s: %q is not a channel name; use lowercase letters such as stable, warm, latest", path.Join(where, chFile), c)
			}
			if _, ok := e.Version(v); !ok {
				return nil, fmt.Errorf("%s: channel %s points to %s, which is not a version of %s (versions: %s)", path.Join(where, chFile), c, v, name, versionList(e))
			}
		}
		e.Channels = ch
	case errorsIsNotExist(err):
		e.Channels = map[string]string{"latest": e.Latest()}
	default:
		return nil, fmt.Errorf("%s: %w", path.Join(where, chFile), err)
	}
	return e, nil
}

func versionList(e *Entry) string {
	s := make([]string, len(e.Versions))
	for i, v := range e.Versions {
		s[i] = v.Version
	}
	return strings.Join(s, ", ")
}
