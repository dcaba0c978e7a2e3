package catalog

import "berth.dev/berth/internal/pkgspec"

type pkgspecDependency = pkgspec.Dependency
