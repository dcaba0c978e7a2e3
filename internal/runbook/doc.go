// Package runbook runs a package's executable runbooks against an installed
// app: it checks the parameters and preconditions before anything changes,
// runs the steps in order (configuration commits, deploys, Jobs, scaling,
// volume expansion), stops at the first failure saying what state things are
// in and how to go on, and records every run as a committed file of the
// workspace.
package runbook
