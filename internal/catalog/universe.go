package catalog

import (
	"context"
	"io/fs"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
)

// Universe gives the resolver every version of every package in the set, with
// the dependencies the catalogs' indexes record, without opening any package;
// and, for resolve.Input.Prefer, each package's stable version, so that what is
// not pinned otherwise follows the stable channel.
func (s *Set) Universe(ctx context.Context) (*resolve.Universe, map[string]string, error) {
	all, err := s.Packages(ctx)
	if err != nil {
		return nil, nil, err
	}
	pkgs := map[string][]resolve.Candidate{}
	prefer := map[string]string{}
	for _, f := range all {
		if v, ok := f.Entry.Channels["stable"]; ok {
			prefer[f.Entry.Name] = v
		}
		for _, v := range f.Entry.Versions {
			c := resolve.Candidate{Version: v.Version}
			for _, d := range v.Dependencies {
				c.Dependencies = append(c.Dependencies, resolve.Dependency{Name: d.Key(), Package: d.Package, Constraint: d.Version, Kind: d.Kind, Optional: d.Optional})
			}
			pkgs[f.Entry.Name] = append(pkgs[f.Entry.Name], c)
		}
	}
	u, err := resolve.NewUniverse(pkgs)
	return u, prefer, err
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
