// Package config embeds the Kubernetes manifests berth installs: the CRDs that
// controller-gen generates from api/v1alpha1 (go generate ./api/...) and the
// controller's namespace, RBAC, Deployment and Service.
package config

import _ "embed"

// WorkspaceCRD is the CustomResourceDefinition of berth.dev Workspaces.
//
//go:embed crd/berth.dev_workspaces.yaml
var WorkspaceCRD []byte

// WorkspaceAppCRD is the CustomResourceDefinition of berth.dev WorkspaceApps,
// the state of each app of a Workspace.
//
//go:embed crd/berth.dev_workspaceapps.yaml
var WorkspaceAppCRD []byte

// CRDs are the CustomResourceDefinitions of berth's API, as berth installs them.
var CRDs = [][]byte{WorkspaceCRD, WorkspaceAppCRD}

// ControllerTemplate is the controller's manifests as a text/template over
// .Namespace, .Image and .Replicas.
//
//go:embed bootstrap/controller.yaml
var ControllerTemplate string
