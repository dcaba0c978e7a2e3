// Package packagetest holds the tools a package author runs before publishing a
// package version: Lint checks it without a cluster, Run installs, redeploys,
// upgrades and uninstalls it on a cluster and records a Report next to it, and
// Promote moves a catalog channel only to a version whose report passed.
package packagetest
