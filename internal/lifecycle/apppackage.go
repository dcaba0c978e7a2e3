package lifecycle

import (
	"context"
	"fmt"
	"io/fs"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/workspace"
)

// InstalledApp is an app with the package it is installed from.
type InstalledApp struct {
	App *workspace.App
	// Package is the package at the app's locked version; Files are its files.
	Package *pkgspec.Package
	Files   fs.FS
	// Config is the app's configuration with defaults filled in, without its
	// secret parameters (they stay in the encrypted secrets file).
	Config pkgspec.Config
}

// Installed returns app with its package at the locked version and its
// non-secret configuration, for what operates on an installed app (runbooks).
func (e *Env) Installed(ctx context.Context, app string) (*InstalledApp, error) {
	a, err := e.WS.App(app)
	if err != nil {
		return nil, err
	}
	lock, err := e.WS.Lock()
	if err != nil {
		return nil, err
	}
	in, ok := lock.Get(resolve.AppKey(app))
	if !ok {
		return nil, fmt.Errorf("app %s has no entry in %s; run 'berth build %s'", app, workspace.LockFile, app)
	}
	f, err := e.Catalogs.Find(ctx, a.Package)
	if err != nil {
		return nil, err
	}
	pkg, files, err := e.Catalogs.Load(ctx, f, in.Version)
	if err != nil {
		return nil, err
	}
	plain := map[string]any{}
	for k, v := range a.Values {
		if q, ok := pkg.Param(k); ok && !q.IsSecret() {
			plain[k] = v
		}
	}
	cfg, err := pkg.Configure(pkgspec.ConfigureOptions{Values: plain, Generator: pkgspec.SeededGenerator([]byte("berth: defaults only"), pkg.Name)})
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app, err)
	}
	for _, q := range pkg.Config {
		if q.IsSecret() {
			delete(cfg, q.Name)
		}
	}
	return &InstalledApp{App: a, Package: pkg, Files: files, Config: cfg}, nil
}
