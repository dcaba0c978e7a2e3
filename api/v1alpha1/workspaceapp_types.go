package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelWorkspace on a WorkspaceApp names the Workspace it belongs to.
const LabelWorkspace = "berth.dev/workspace"

// WorkspaceAppName is the name of the WorkspaceApp of app in workspace ws:
// both are DNS labels, so the name is unique and a valid object name.
func WorkspaceAppName(ws, app string) string { return ws + "." + app }

// WorkspaceAppSpec says which app of which Workspace the object reports on.
type WorkspaceAppSpec struct {
	// Workspace is the name of the Workspace, in the same namespace.
	Workspace string `json:"workspace"`
	// App is the app's name in the workspace.
	App string `json:"app"`
}

// WorkspaceApp is the state of one app of a Workspace. The controller keeps
// one per app, owned by the Workspace, so a workspace's size is not bound by
// what one object can hold; it writes one only when the app's state changes.
// It has no status subresource: the controller is its only writer, so a new
// app's state is created with the object in one request instead of two (on a
// first sync of many apps, one write per app less).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=bapp,categories=berth
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspace`
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.app`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.appliedRevision`
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.health`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
type WorkspaceApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WorkspaceAppSpec `json:"spec"`
	Status AppStatus        `json:"status,omitempty"`
}

// WorkspaceAppList is a list of WorkspaceApps.
//
// +kubebuilder:object:root=true
type WorkspaceAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkspaceApp `json:"items"`
}
