// Package config embeds the Kubernetes manifests berth installs: the CRDs that
// controller-gen generates from api/v1alpha1 and the controller's deployment.
package config

import _ "embed"

// WorkspaceCRD is the CustomResourceDefinition of berth.dev Workspaces.
//
//go:embed crd/berth.dev_workspaces.yaml
var WorkspaceCRD []byte
