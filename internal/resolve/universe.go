package resolve

import (
	"fmt"
	"sort"

	"github.com/Masterminds/semver/v3"

	"berth.dev/berth/internal/pkgspec"
)

// Dependency is one dependency of a package version.
type Dependency struct {
	// Name is how the dependant refers to it; it defaults to Package.
	Name       string
	Package    string
	Constraint string
	Kind       pkgspec.DependencyKind
	// Optional marks a shared dependency that is used when the solution has
	// its shared instance for another reason, and never added for this one.
	Optional bool
}

func (d Dependency) key() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Package
}

// Candidate is one version of a package and what it depends on.
type Candidate struct {
	Version      string
	Dependencies []Dependency
}

// Universe is every version of every package the resolver may choose from,
// parsed and ordered once so that many solves can share it.
type Universe struct {
	pkgs map[string][]version
}

type version struct {
	v    *semver.Version
	deps []Dependency
	idx  int // position among the package's versions, newest first
}

// NewUniverse parses the versions of every package. It returns an error naming
// the package and version that does not parse.
func NewUniverse(pkgs map[string][]Candidate) (*Universe, error) {
	u := &Universe{pkgs: make(map[string][]version, len(pkgs))}
	for name, cands := range pkgs {
		vs := make([]version, 0, len(cands))
		for _, c := range cands {
			v, err := semver.NewVersion(c.Version)
			if err != nil {
				return nil, fmt.Errorf("package %s: version %q is not a semantic version: %w", name, c.Version, err)
			}
			vs = append(vs, version{v: v, deps: c.Dependencies})
		}
		// Newest first: the resolver prefers the newest version that fits.
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].v.GreaterThan(vs[j].v) })
		for i := range vs {
			vs[i].idx = i
		}
		u.pkgs[name] = vs
	}
	return u, nil
}

// Has reports whether the universe knows pkg.
func (u *Universe) Has(pkg string) bool { _, ok := u.pkgs[pkg]; return ok }
