// Package pkgspec defines berth's package format (package.yaml): its types, its
// loading with line-precise validation errors, and the typed configuration schema
// that turns a user's values into a complete, checked configuration.
package pkgspec
