// Package render turns a package, its configuration and the outputs of its
// dependencies into Kubernetes objects: Helm charts render in process with the
// Helm SDK, plain manifests are read as they are. Rendering is a pure function:
// the same input gives byte-identical output.
package render
