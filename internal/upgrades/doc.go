// Package upgrades brings new catalog versions to a workspace's apps under
// the team's policy: it polls the catalogs, decides per app (auto inside a
// maintenance window, approve, ignore; breaking versions only proposed),
// commits or proposes the upgrade through lifecycle's upgrade path in a clone
// of the workspace, watches automatic upgrades until healthy and rolls back
// the ones that are not. The controller and the CLI are thin callers.
package upgrades
