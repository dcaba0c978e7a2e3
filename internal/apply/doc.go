// Package apply is berth's deploy engine: it applies a set of Kubernetes objects
// for an app with server-side apply, in stages, records what it applied in an
// inventory stored in the cluster, prunes what the set no longer holds, waits for
// health, and plans changes as diffs. It never logs; it returns results and
// streams events.
package apply
