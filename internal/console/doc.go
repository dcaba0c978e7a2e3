// Package console serves berth's operations console: server-rendered pages
// (html/template and htmx) over the workspace and its cluster, live through
// server-sent events, signed in with a one-time URL or OpenID Connect. It
// reads the cluster only through informer caches and changes the workspace
// only through internal/lifecycle, each change a commit by the signed-in
// person.
package console
