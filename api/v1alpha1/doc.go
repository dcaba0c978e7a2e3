// Package v1alpha1 holds berth's Kubernetes API (group berth.dev, version
// v1alpha1): the Workspace, a git repository that the berth controller keeps a
// cluster equal to, and the Incident, something about an app that needs a person.
//
// +kubebuilder:object:generate=true
// +groupName=berth.dev
package v1alpha1

//go:generate go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0 object paths=. crd:crdVersions=v1 output:crd:artifacts:config=../../config/crd
