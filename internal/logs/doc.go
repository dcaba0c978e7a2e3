// Package logs reads an app's pod logs and Kubernetes Events through the API
// server: Select finds the app's pods from its inventory (the selectors of its
// workloads, never by name), Stream merges the logs of every pod and container
// (following pods that come and go), and Events lists what happened to the
// app's objects. It prints nothing; the CLI and the console format the results.
package logs
