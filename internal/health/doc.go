// Package health judges whether a Kubernetes object is ready, from the object
// alone: pure computation, no I/O. It follows kstatus's conventions and closes
// its known gaps: a running Job is not ready, a Deployment past its progress
// deadline has failed, and a custom resource is judged by its Ready condition.
package health
