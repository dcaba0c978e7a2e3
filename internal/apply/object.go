package apply

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Labels berth puts on every object it applies.
const (
	LabelApp       = "berth.dev/app"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "berth"
	// AnnotationPrune set to "allow" on a PersistentVolumeClaim lets berth prune
	// it; without it a claim (and the data behind it) is kept.
	AnnotationPrune = "berth.dev/prune"
	PruneAllow      = "allow"
)

// Annotations of Helm's resource policy, which berth honours as Helm does.
const (
	// AnnotationResourcePolicy set to ResourcePolicyKeep on an object means
	// that neither pruning nor Delete ever deletes it.
	AnnotationResourcePolicy = "helm.sh/resource-policy"
	ResourcePolicyKeep       = "keep"
	// AnnotationChartCRD set to "true" marks a CustomResourceDefinition that
	// came from a chart's crds/ folder: Helm never deletes those (deleting one
	// deletes every resource of its kind), and neither does berth.
	AnnotationChartCRD = "berth.dev/chart-crd"
)

// keepReason says why an object must never be deleted, from its annotations;
// "" when it may be.
func keepReason(ref ObjectRef, annotations map[string]string) string {
	if annotations[AnnotationResourcePolicy] == ResourcePolicyKeep {
		return "annotated " + AnnotationResourcePolicy + "=" + ResourcePolicyKeep + ": never deleted, as Helm does"
	}
	if isCRD(ref) && annotations[AnnotationChartCRD] == "true" {
		return "a CustomResourceDefinition from a chart's crds/ folder: never deleted, as Helm does (deleting it would delete every resource of its kind)"
	}
	return ""
}

// ObjectRef identifies an object in a cluster.
type ObjectRef struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RefOf returns the reference of obj.
func RefOf(obj *unstructured.Unstructured) ObjectRef {
	gvk := obj.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// GroupKind returns the ref's group and kind.
func (r ObjectRef) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: r.Group, Kind: r.Kind}
}

// GroupVersionKind returns the ref's group, version and kind.
func (r ObjectRef) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// String returns the ref as kubectl names objects: "deployment/web",
// "certificate.cert-manager.io/tls", prefixed with the namespace when it has one.
func (r ObjectRef) String() string {
	k := strings.ToLower(r.Kind)
	if r.Group != "" && !wellKnownGroups[r.Group] {
		k += "." + r.Group
	}
	if r.Namespace != "" {
		return fmt.Sprintf("%s/%s (namespace %s)", k, r.Name, r.Namespace)
	}
	return k + "/" + r.Name
}

// ShortString is String without the namespace.
func (r ObjectRef) ShortString() string {
	r.Namespace = ""
	return r.String()
}

// key identifies the object regardless of the API version it is served at.
func (r ObjectRef) key() string {
	return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

var wellKnownGroups = map[string]bool{
	"apps": true, "batch": true, "rbac.authorization.k8s.io": true, "networking.k8s.io": true,
	"policy": true, "autoscaling": true, "storage.k8s.io": true, "apiextensions.k8s.io": true,
	"admissionregistration.k8s.io": true, "scheduling.k8s.io": true, "coordination.k8s.io": true,
}

// Stage is a step of an apply; objects of one stage are applied in parallel, and
// a stage starts when the previous one is done. Pruning runs in reverse order.
type Stage int

// Stages in apply order.
const (
	StageCRDs Stage = iota
	StageNamespaces
	StageClusterWide
	StageObjects
	StageWebhooks
	numStages
)

func (s Stage) String() string {
	switch s {
	case StageCRDs:
		return "custom resource definitions"
	case StageNamespaces:
		return "namespaces"
	case StageClusterWide:
		return "cluster roles and classes"
	case StageObjects:
		return "objects"
	case StageWebhooks:
		return "webhook configurations"
	}
	return fmt.Sprintf("stage %d", int(s))
}

// StageOf returns the stage an object of the given group and kind is applied in.
func StageOf(gk schema.GroupKind) Stage {
	switch {
	case gk == schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return StageCRDs
	case gk == schema.GroupKind{Kind: "Namespace"}:
		return StageNamespaces
	case gk.Group == "rbac.authorization.k8s.io" && (gk.Kind == "ClusterRole" || gk.Kind == "ClusterRoleBinding"):
		return StageClusterWide
	case strings.HasSuffix(gk.Kind, "Class"):
		return StageClusterWide
	case gk.Group == "admissionregistration.k8s.io":
		return StageWebhooks
	}
	return StageObjects
}

func isCRD(r ObjectRef) bool {
	return r.Group == "apiextensions.k8s.io" && r.Kind == "CustomResourceDefinition"
}

// canonicalFields re-encodes a managedFields (FieldsV1) set with its keys in
// one order. The API server serialises a set in its own order (list entries
// keyed by number, such as ports 80 and 443, are not in alphabetical order),
// while a copy decoded and encoded again has its keys sorted: hashing either
// as it comes would see a change where there is none.
func canonicalFields(raw []byte) []byte {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}
