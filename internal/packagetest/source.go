package packagetest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/resolve"
)

// CatalogName is the name the catalog of a tested package gets in the set
// Lint and Run resolve from; it comes before the built-in catalog, so the
// package under test wins over a built-in package of the same name.
const CatalogName = "under-test"

// subject is a package under lint or test, with the catalogs it resolves from.
type subject struct {
	dir string
	pkg *pkgspec.Package
	// root is the directory catalog holding the package: the catalog the
	// package is in (DIR is ROOT/NAME/VERSION), or a temporary copy.
	root string
	// inCatalog is true when root is the package's own catalog.
	inCatalog bool
	set       *catalog.Set
	cleanup   func()
}

// open loads the package in dir and the catalogs to resolve it from: its own
// catalog (or a temporary one holding only it) first, then the built-in one.
func open(dir string) (*subject, error) {
	pkg, err := pkgspec.Load(os.DirFS(dir), ".", filepath.Join(dir, pkgspec.FileName))
	if err != nil {
		return nil, err
	}
	s := &subject{dir: dir, pkg: pkg, cleanup: func() {}}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if filepath.Base(abs) == pkg.Version && filepath.Base(filepath.Dir(abs)) == pkg.Name {
		s.root, s.inCatalog = filepath.Dir(filepath.Dir(abs)), true
	} else {
		tmp, err := os.MkdirTemp("", "berth-package-")
		if err != nil {
			return nil, err
		}
		s.cleanup = func() { os.RemoveAll(tmp) }
		if err := os.CopyFS(filepath.Join(tmp, pkg.Name, pkg.Version), os.DirFS(abs)); err != nil {
			s.cleanup()
			return nil, fmt.Errorf("copying the package %s into a catalog: %w", dir, err)
		}
		s.root = tmp
	}
	refs := []catalog.Ref{
		{Name: CatalogName, Type: catalog.TypeDir, URL: s.root},
		{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin, URL: "embedded in berth"},
	}
	s.set = catalog.NewSet(refs, map[string]catalog.Source{CatalogName: catalog.NewDirSource(s.root), catalog.BuiltinName: catalog.Builtin()})
	return s, nil
}

// entry returns the package's entry in its catalog, with the problems the
// catalog found in it.
func (s *subject) entry(ctx context.Context) (*catalog.Entry, []catalog.Problem, error) {
	src, _ := s.set.Source(CatalogName)
	ix, err := src.Index(ctx)
	if err != nil {
		return nil, nil, err
	}
	var problems []catalog.Problem
	for _, p := range ix.Problems {
		if p.Package == s.pkg.Name {
			problems = append(problems, p)
		}
	}
	e, _ := ix.Entry(s.pkg.Name)
	return e, problems, nil
}

// renderOptions are the inputs of one rendering of the package.
type renderOptions struct {
	Values      map[string]any
	Charts      func(ctx context.Context, pkg *pkgspec.Package) (map[string][]byte, error)
	KubeVersion string
}

// render resolves the package with its components and renders it as an app.
func (s *subject) render(ctx context.Context, o renderOptions) (*render.AppResult, error) {
	u, prefer, err := s.set.Universe(ctx)
	if err != nil {
		return nil, err
	}
	app := s.pkg.Name
	sol, err := resolve.Solve(u, resolve.Input{Requests: []resolve.Request{{App: app, Package: s.pkg.Name, Constraint: "=" + s.pkg.Version}}, Prefer: prefer})
	if err != nil {
		return nil, err
	}
	seed := []byte("berth package lint and test")
	return render.RenderApp(ctx, s.set.Loader(), render.AppInput{
		Solution: sol, App: app, Namespace: app, Values: o.Values, KubeVersion: o.KubeVersion,
		Generator: func(scope string) pkgspec.Generator { return pkgspec.SeededGenerator(seed, scope) },
		Charts:    o.Charts, Seed: seed,
	})
}

// files returns the package's files.
func (s *subject) files() fs.FS { return os.DirFS(s.dir) }
