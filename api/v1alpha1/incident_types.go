package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IncidentState is where an incident stands.
type IncidentState string

// Incident states.
const (
	IncidentOpen         IncidentState = "Open"
	IncidentAcknowledged IncidentState = "Acknowledged"
	IncidentResolved     IncidentState = "Resolved"
)

// IncidentCause is what opened an incident.
type IncidentCause string

// Incident causes.
const (
	// CauseDeployFailed: the controller could not apply the app, or it did
	// not become healthy.
	CauseDeployFailed IncidentCause = "DeployFailed"
	// CauseCrashLooping: a container of a workload keeps restarting.
	CauseCrashLooping IncidentCause = "CrashLooping"
	// CauseUnschedulable: a pod of a workload cannot be scheduled.
	CauseUnschedulable IncidentCause = "Unschedulable"
	// CauseAlert: an alert fired (Alertmanager's webhook).
	CauseAlert IncidentCause = "Alert"
)

// LabelIncidentApp labels an Incident with the app it is about.
const LabelIncidentApp = "berth.dev/incident-app"

// IncidentSpec is the cause of an incident: one incident per cause, however
// often it repeats.
type IncidentSpec struct {
	// App the incident is about.
	// +kubebuilder:validation:MinLength=1
	App string `json:"app"`
	// Cause is what opened it: DeployFailed, CrashLooping, Unschedulable or Alert.
	// +kubebuilder:validation:Enum=DeployFailed;CrashLooping;Unschedulable;Alert
	Cause IncidentCause `json:"cause"`
	// Object is the workload (kind/name) the cause is about, or the alert's
	// name (alert/NAME), when there is one.
	// +optional
	Object string `json:"object,omitempty"`
}

// IncidentEvent is one entry of an incident's timeline.
type IncidentEvent struct {
	// Time of the entry.
	Time metav1.Time `json:"time"`
	// Type is Opened, Repeated, Acknowledged, Resolved or Reopened.
	Type string `json:"type"`
	// Message says what happened.
	// +optional
	Message string `json:"message,omitempty"`
	// By is who acknowledged or resolved it, when a person did.
	// +optional
	By string `json:"by,omitempty"`
}

// IncidentStatus is the incident's state and history.
type IncidentStatus struct {
	// State is Open, Acknowledged or Resolved.
	// +optional
	State IncidentState `json:"state,omitempty"`
	// Message is the latest description of the cause.
	// +optional
	Message string `json:"message,omitempty"`
	// Count is how many times the cause was seen (distinct observations).
	// +optional
	Count int32 `json:"count,omitempty"`
	// FirstSeen and LastSeen bound the observations.
	// +optional
	FirstSeen *metav1.Time `json:"firstSeen,omitempty"`
	// +optional
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`
	// Fingerprint identifies the last observation (a revision and error, a
	// restart count), so the same one seen again is not a repetition.
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`
	// ResolvedAt is when it was last resolved.
	// +optional
	ResolvedAt *metav1.Time `json:"resolvedAt,omitempty"`
	// Timeline is what happened, oldest first (the latest entries are kept).
	// +optional
	Timeline []IncidentEvent `json:"timeline,omitempty"`
}

// Incident is something about an app that needs a person: a failed deploy, a
// crash-looping or unschedulable workload, a firing alert. The controller opens it, records
// each repetition on it, and resolves it when the app is healthy again.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bin,categories=berth
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.app`
// +kubebuilder:printcolumn:name="Cause",type=string,JSONPath=`.spec.cause`
// +kubebuilder:printcolumn:name="Object",type=string,JSONPath=`.spec.object`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Count",type=integer,JSONPath=`.status.count`
// +kubebuilder:printcolumn:name="Last Seen",type=date,JSONPath=`.status.lastSeen`
type Incident struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IncidentSpec   `json:"spec,omitempty"`
	Status IncidentStatus `json:"status,omitempty"`
}

// IncidentList is a list of Incidents.
//
// +kubebuilder:object:root=true
type IncidentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Incident `json:"items"`
}
