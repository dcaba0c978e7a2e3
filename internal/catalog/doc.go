// Package catalog reads catalogs of packages: directory trees, git repositories
// and HTTP indexes with per-version archives, plus the built-in catalog
// embedded in the binary. It knows which versions each package has and which
// version each channel points to.
package catalog
