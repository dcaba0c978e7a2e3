package catalog

import (
	"context"
	"io/fs"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
)

// Universe gives the resolver every version of every package in the set, with
// the dependencies the catalogs' indexes record, without opening any package.
func (s *Set) Universe(ctx context.Context) (*resolve.Universe, error) {
	all, err := s.Packages(ctx)
	if err != nil {
		return nil, err
	}
	pkgs := map[string][]resolve.Candidate{}
	for _, f := range all {
		for _, v := range f.Entry.Versions {
			c := resolve.Candidate{Version: v.Version}
			for _, d := range v.Dependencies {
				c.Dependencies = append(c.Dependencies, resolve.Dependency{Name: d.Key(), Package: d.Package, Constraint: d.Version, Kind: d.Kind})
			}
			pkgs[f.Entry.Name] = append(pkgs[f.Entry.Name], c)
		}
	}
	return resolve.NewUniverse(pkgs)
}

// Loader returns the set as a loader of package versions by name (the
// render.Loader interface).
func (s *Set) Loader() PackageLoader { return PackageLoader{set: s} }

// PackageLoader loads a package version by name from a Set.
type PackageLoader struct{ set *Set }

// Load finds the package called name and opens the given version of it.
func (l PackageLoader) Load(ctx context.Context, name, version string) (*pkgspec.Package, fs.FS, error) {
	f, err := l.set.Find(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return l.set.Load(ctx, f, version)
}
