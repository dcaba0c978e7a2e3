// Package deploy is berth's one deploy path: it brings a cluster to a
// workspace's apps in dependency order, each app phase by phase (its
// components, then crds, pre hooks, main and post hooks), each phase healthy
// before the next, pruning on the last, and removes the apps a workspace no
// longer has. The CLI and the controller both call it; it never logs, it
// streams Events and returns a Result.
package deploy
