package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a Workspace and of each of its apps, following the
// Kubernetes API conventions (and kstatus): Ready is the summary, Reconciling
// says work is in progress, Stalled says it cannot progress without a change.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// Reasons of the conditions.
const (
	ReasonSucceeded          = "Succeeded"
	ReasonProgressing        = "Progressing"
	ReasonSuspended          = "Suspended"
	ReasonGitFetchFailed     = "GitFetchFailed"
	ReasonInvalidWorkspace   = "InvalidWorkspace"
	ReasonDecryptionFailed   = "DecryptionFailed"
	ReasonApplyFailed        = "ApplyFailed"
	ReasonHealthCheckFailed  = "HealthCheckFailed"
	ReasonDependencyNotReady = "DependencyNotReady"
	ReasonAppsFailed         = "AppsFailed"
	ReasonPruneFailed        = "PruneFailed"
)

// Annotations the controller reads.
const (
	// AnnotationReconcileRequestedAt, set to any new value (berth reconcile sets
	// the time), makes the controller fetch and reconcile at once.
	AnnotationReconcileRequestedAt = "berth.dev/reconcile-requested-at"
	// AnnotationFetchRequestedAt, set to any new value (the push webhook sets
	// it), makes the controller fetch at once and apply the apps that changed.
	AnnotationFetchRequestedAt = "berth.dev/fetch-requested-at"
	// AnnotationIgnoreFields on an object in the workspace lists fields, as
	// dot-separated paths separated by commas (e.g. "spec.replicas"), that
	// berth never applies, so another controller (an HPA) can own them and
	// berth never sees their changes as drift.
	AnnotationIgnoreFields = "berth.dev/ignore-fields"
)

// SecretKeys are the keys the controller reads in the Secrets a Workspace names.
const (
	// GitUsernameKey and GitPasswordKey hold HTTPS credentials (a token as
	// the password; username defaults to "git").
	GitUsernameKey = "username"
	GitPasswordKey = "password"
	// GitIdentityKey holds an SSH private key, GitKnownHostsKey the known_hosts
	// lines that the server's key must match.
	GitIdentityKey   = "identity"
	GitKnownHostsKey = "known_hosts"
	// DecryptionKeyKey holds the workspace's git-crypt key file.
	DecryptionKeyKey = "key"
	// WebhookTokenKey holds the shared secret that signs push webhooks.
	WebhookTokenKey = "token"
)

// LocalSecretReference names a Secret in the Workspace's namespace.
type LocalSecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// WorkspaceSpec says which git repository to keep the cluster equal to.
type WorkspaceSpec struct {
	// URL of the git repository: https://, http://, ssh://, user@host:path or file://.
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Branch to follow.
	// +kubebuilder:default=main
	// +optional
	Branch string `json:"branch,omitempty"`
	// Path of the workspace (the directory holding berth.yaml) inside the
	// repository; the top level when empty.
	// +optional
	Path string `json:"path,omitempty"`
	// Cluster is this cluster's name in a fleet workspace (berth.yaml
	// clusters:): the controller applies the apps rendered for it under
	// rendered/CLUSTER/ and no others. Empty for a workspace without clusters.
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?)?$`
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Interval between polls of the branch. A webhook (/hooks/git) makes a
	// push visible at once; polling is the fallback.
	// +kubebuilder:default="1m"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
	// Timeout bounds the wait for one app's objects to become healthy.
	// +kubebuilder:default="5m"
	// +optional
	Timeout metav1.Duration `json:"timeout,omitempty"`
	// SecretRef names a Secret with git credentials: username and password
	// (a token) for HTTPS, identity and known_hosts for SSH.
	// +optional
	SecretRef *LocalSecretReference `json:"secretRef,omitempty"`
	// DecryptionRef names a Secret whose "key" holds the workspace's
	// git-crypt key, which decrypts rendered Secret objects in memory.
	// +optional
	DecryptionRef *LocalSecretReference `json:"decryptionRef,omitempty"`
	// WebhookSecretRef names a Secret whose "token" signs push webhooks;
	// without it the webhook is refused.
	// +optional
	WebhookSecretRef *LocalSecretReference `json:"webhookSecretRef,omitempty"`
	// Suspend stops reconciliation and drift repair of every app.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// SuspendedApps are apps left alone: neither applied nor repaired.
	// +optional
	// +listType=set
	SuspendedApps []string `json:"suspendedApps,omitempty"`
	// Upgrades configures upgrades over the air (docs/upgrades.md).
	// +optional
	Upgrades *UpgradesSpec `json:"upgrades,omitempty"`
}

// InventorySummary counts what berth applied for an app.
type InventorySummary struct {
	// Objects is how many objects the app's inventory holds.
	Objects int `json:"objects"`
	// Applied is how many objects the last apply wrote (created or updated).
	Applied int `json:"applied"`
	// Failed is how many objects the last apply failed on.
	Failed int `json:"failed,omitempty"`
}

// AppStatus is the state of one app of the workspace, the status of its
// WorkspaceApp.
type AppStatus struct {
	// Name of the app.
	Name string `json:"name"`
	// Namespace holding the app's inventory.
	Namespace string `json:"namespace"`
	// AppliedRevision is the commit whose manifests the app last applied
	// successfully. A later commit that leaves the app's manifests as they
	// are (Digest is the same) does not move it.
	// +optional
	AppliedRevision string `json:"appliedRevision,omitempty"`
	// Digest hashes the app's manifests as last applied.
	// +optional
	Digest string `json:"digest,omitempty"`
	// Health is the app's health after the last apply: Current, InProgress or Failed.
	// +optional
	Health string `json:"health,omitempty"`
	// Suspended reports that the app is left alone.
	// +optional
	Suspended bool `json:"suspended,omitempty"`
	// LastError is the error of the last attempt, if it failed.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// Inventory summarises the app's objects.
	// +optional
	Inventory InventorySummary `json:"inventory"`
	// Conditions of the app: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WorkspaceStatus is what the controller observed and did.
type WorkspaceStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions of the workspace: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastFetchedRevision is the commit of the branch at the last fetch.
	// +optional
	LastFetchedRevision string `json:"lastFetchedRevision,omitempty"`
	// LastAppliedRevision is the last commit every app was applied from.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// LastHandledReconcileAt is the value of the reconcile-requested-at
	// annotation last handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
	// LastFullSyncTime is when every app was last applied in full (reads
	// only when nothing changed), the safety net behind event-driven repair.
	// +optional
	LastFullSyncTime *metav1.Time `json:"lastFullSyncTime,omitempty"`
	// InstallingRevision is the commit whose new apps the controller is
	// installing, noted before it writes any of their objects and cleared
	// once each has an inventory: a first install writes its inventory
	// after its objects, so a controller that starts and finds this set
	// reads the commit to learn what an interrupted install may have left,
	// and prunes it.
	// +optional
	InstallingRevision string `json:"installingRevision,omitempty"`
	// Apps counts the workspace's apps by state; each app's own state is in
	// its WorkspaceApp (label berth.dev/workspace=NAME).
	// +optional
	Apps AppCounts `json:"apps,omitempty"`
	// Upgrades lists available versions, proposals and upgrades in flight.
	// +optional
	Upgrades *UpgradesStatus `json:"upgrades,omitempty"`
}

// AppCounts counts a workspace's apps by state.
type AppCounts struct {
	Total       int `json:"total"`
	Ready       int `json:"ready"`
	Progressing int `json:"progressing,omitempty"`
	Blocked     int `json:"blocked,omitempty"`
	Failed      int `json:"failed,omitempty"`
	Stalled     int `json:"stalled,omitempty"`
	Suspended   int `json:"suspended,omitempty"`
}

// Workspace is a git repository holding a berth workspace, which the controller
// keeps the cluster equal to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bws,categories=berth
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`
// +kubebuilder:printcolumn:name="Apps",type=integer,JSONPath=`.status.apps.total`
// +kubebuilder:printcolumn:name="Apps ready",type=integer,JSONPath=`.status.apps.ready`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Workspace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WorkspaceSpec   `json:"spec,omitempty"`
	Status WorkspaceStatus `json:"status,omitempty"`
}

// WorkspaceList is a list of Workspaces.
//
// +kubebuilder:object:root=true
type WorkspaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Workspace `json:"items"`
}

// AppSuspended reports whether the workspace leaves app alone.
func (w *Workspace) AppSuspended(app string) bool {
	if w.Spec.Suspend {
		return true
	}
	for _, a := range w.Spec.SuspendedApps {
		if a == app {
			return true
		}
	}
	return false
}
