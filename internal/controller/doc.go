// Package controller is berth's GitOps controller: it keeps a cluster equal to
// the workspaces (git repositories) that Workspace objects name, applying apps
// in dependency order with the deploy engine, and repairs drift of the objects
// it applied within a second of it happening, from metadata-only watches.
package controller
