package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a Workspace's upgrades (status.upgrades.conditions).
const (
	// ConditionCatalogsReachable is False while a catalog of the workspace
	// cannot be polled; the message names it.
	ConditionCatalogsReachable = "CatalogsReachable"
	// ConditionGitWritable is False while the controller cannot push
	// upgrades (no credential, or a read-only one).
	ConditionGitWritable = "GitWritable"
	// ConditionPoliciesValid is False while an upgrade rule or an app's
	// upgrade settings are wrong; the message names the field.
	ConditionPoliciesValid = "PoliciesValid"
)

// Reasons of the upgrade conditions.
const (
	ReasonCatalogUnreachable = "CatalogUnreachable"
	ReasonReadOnlyCredential = "ReadOnlyCredential"
	ReasonNoCredential       = "NoCredential"
	ReasonInvalidPolicy      = "InvalidPolicy"
	ReasonUnmatchedRule      = "UnmatchedRule"
)

// AnnotationUpgradeCheckRequestedAt, set to any new value (the catalog
// webhook and 'berth upgrades --check' set the time), makes the controller
// poll the Workspace's catalogs at once.
const AnnotationUpgradeCheckRequestedAt = "berth.dev/upgrade-check-requested-at"

// UpgradesSpec configures upgrades over the air for a Workspace.
type UpgradesSpec struct {
	// Suspend stops upgrades: catalogs are still polled and available
	// versions listed, but nothing is committed or proposed.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// WriteSecretRef names a Secret with git credentials allowed to push
	// (username and password, a token, for HTTPS; identity and known_hosts
	// for SSH); spec.secretRef's when empty.
	// +optional
	WriteSecretRef *LocalSecretReference `json:"writeSecretRef,omitempty"`
	// Interval between polls of the catalogs; berth.yaml's upgrades.interval,
	// else 5m, when empty.
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`
}

// UpgradePlan counts the objects an upgrade creates, changes and deletes.
type UpgradePlan struct {
	Created int `json:"created"`
	Changed int `json:"changed"`
	Deleted int `json:"deleted"`
}

// AvailableUpgrade is a newer version an app's channel or constraint allows.
type AvailableUpgrade struct {
	App     string `json:"app"`
	Package string `json:"package"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Channel the app follows, or its version constraint.
	Channel string `json:"channel,omitempty"`
	// Policy that applies: auto, approve or ignore.
	Policy string `json:"policy"`
	// Breaking says the version crosses a breaking boundary: only proposed.
	// +optional
	Breaking bool `json:"breaking,omitempty"`
	// State: proposed, waiting (for a window), applying, ignored,
	// rejected, held (rolled back), failed.
	State string `json:"state"`
	// NextWindow is when a waiting auto upgrade lands.
	// +optional
	NextWindow *metav1.Time `json:"nextWindow,omitempty"`
	// Message says why, in words.
	// +optional
	Message string `json:"message,omitempty"`
}

// UpgradeProposal is an upgrade waiting for approval: a branch pushed to the
// workspace's remote with one commit.
type UpgradeProposal struct {
	App     string `json:"app"`
	Package string `json:"package"`
	From    string `json:"from"`
	To      string `json:"to"`
	// +optional
	Channel string `json:"channel,omitempty"`
	// +optional
	Breaking bool `json:"breaking,omitempty"`
	// BreakingReason names the boundary and the package's upgrade note.
	// +optional
	BreakingReason string `json:"breakingReason,omitempty"`
	// ReleaseNotes are the package's notes for the new version.
	// +optional
	ReleaseNotes string `json:"releaseNotes,omitempty"`
	// Branch is berth/upgrade/APP/VERSION.
	Branch string `json:"branch"`
	// Commit is the proposal's commit, Base the branch head it was made on.
	Commit string `json:"commit"`
	Base   string `json:"base"`
	// Plan counts the rendered objects the upgrade creates, changes and deletes.
	Plan UpgradePlan `json:"plan"`
}

// UpgradeInFlight is an automatic upgrade committed and not yet healthy.
type UpgradeInFlight struct {
	App    string `json:"app"`
	From   string `json:"from"`
	To     string `json:"to"`
	Commit string `json:"commit"`
	// Since is when it was committed; Deadline when it is rolled back
	// (with rollback auto) unless healthy.
	Since    metav1.Time `json:"since"`
	Deadline metav1.Time `json:"deadline"`
	// Rollback is auto or manual.
	Rollback string `json:"rollback"`
}

// UpgradesStatus is what the controller knows about upgrades.
type UpgradesStatus struct {
	// Conditions: CatalogsReachable, GitWritable, PoliciesValid.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Available lists, per app, the newest version it may move to.
	// +optional
	Available []AvailableUpgrade `json:"available,omitempty"`
	// Proposals wait for 'berth approve' or 'berth reject'.
	// +optional
	Proposals []UpgradeProposal `json:"proposals,omitempty"`
	// InFlight are automatic upgrades watched until healthy.
	// +optional
	InFlight []UpgradeInFlight `json:"inFlight,omitempty"`
}
