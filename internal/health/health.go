package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Status is how ready an object is.
type Status string

// Statuses.
const (
	// Current: the object is ready and its controller has seen its latest spec.
	Current Status = "Current"
	// InProgress: the object is getting ready; waiting may help.
	InProgress Status = "InProgress"
	// Failed: the object will not become ready without a change.
	Failed Status = "Failed"
)

func (s Status) String() string { return string(s) }

// Result is the health of an object, with a message a person can act on.
type Result struct {
	Status  Status `json:"status"`
	Message string `json:"message"`
}

// Compute returns the health of obj: by the rules for its kind, and then by the
// conditions its AnnotationCondition requires, when it has one.
func Compute(obj *unstructured.Unstructured) Result {
	r := byKind(obj)
	if r.Status != Current {
		return r
	}
	if rr, ok := rules(obj); ok {
		return rr
	}
	return r
}

func byKind(obj *unstructured.Unstructured) Result {
	if obj.GetDeletionTimestamp() != nil {
		return Result{InProgress, "being deleted"}
	}
	gk := obj.GroupVersionKind().GroupKind()
	// A controller that has not seen the latest spec cannot vouch for it.
	if gen := obj.GetGeneration(); gen > 0 {
		if og, found, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration"); found && og < gen {
			return Result{InProgress, fmt.Sprintf("waiting for the controller to observe generation %d (seen %d)", gen, og)}
		}
	}
	if gk.Group == "apps" && gk.Kind != "ControllerRevision" && !hasStatus(obj, "observedGeneration") {
		return Result{InProgress, "waiting for the controller"}
	}
	switch gk.Group + "/" + gk.Kind {
	case "apps/Deployment":
		return deployment(obj)
	case "apps/StatefulSet":
		return statefulSet(obj)
	case "apps/DaemonSet":
		return daemonSet(obj)
	case "apps/ReplicaSet":
		return replicaSet(obj)
	case "batch/Job":
		return job(obj)
	case "/Pod":
		return pod(obj)
	case "/PersistentVolumeClaim":
		phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
		if phase == "Bound" {
			return Result{Current, "bound"}
		}
		if phase == "Lost" {
			return Result{Failed, "its volume is lost"}
		}
		return Result{InProgress, "waiting to be bound to a volume"}
	case "/Service":
		typ, _, _ := unstructured.NestedString(obj.Object, "spec", "type")
		if typ == "LoadBalancer" {
			ing, _, _ := unstructured.NestedSlice(obj.Object, "status", "loadBalancer", "ingress")
			if len(ing) == 0 {
				return Result{InProgress, "waiting for a load balancer address"}
			}
		}
		return Result{Current, ""}
	case "/Namespace":
		phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
		if phase == "Terminating" {
			return Result{InProgress, "terminating"}
		}
		return Result{Current, ""}
	case "apiextensions.k8s.io/CustomResourceDefinition":
		if c, ok := condition(obj, "NamesAccepted"); ok && c.status == "False" {
			return Result{Failed, "names not accepted: " + c.message}
		}
		if c, ok := condition(obj, "Established"); ok && c.status == "True" {
			return Result{Current, "established"}
		}
		return Result{InProgress, "waiting to be established"}
	}
	return generic(obj)
}

// generic judges kinds without rules of their own by the conventions of
// conditions: Stalled means failed, Reconciling means in progress, and a Ready
// condition decides.
func generic(obj *unstructured.Unstructured) Result {
	if c, ok := condition(obj, "Stalled"); ok && c.status == "True" {
		return Result{Failed, c.describe()}
	}
	if c, ok := condition(obj, "Reconciling"); ok && c.status == "True" {
		return Result{InProgress, c.describe()}
	}
	for _, t := range []string{"Ready", "Available"} {
		if c, ok := condition(obj, t); ok {
			if c.status == "True" {
				return Result{Current, ""}
			}
			return Result{InProgress, c.describe()}
		}
	}
	return Result{Current, ""}
}

func deployment(obj *unstructured.Unstructured) Result {
	if c, ok := condition(obj, "Progressing"); ok && c.status == "False" && c.reason == "ProgressDeadlineExceeded" {
		return Result{Failed, "progress deadline exceeded: " + c.message}
	}
	if c, ok := condition(obj, "ReplicaFailure"); ok && c.status == "True" {
		return Result{InProgress, "replica failure: " + c.message}
	}
	want := replicas(obj)
	updated := statusInt(obj, "updatedReplicas")
	avail := statusInt(obj, "availableReplicas")
	total := statusInt(obj, "replicas")
	msg := fmt.Sprintf("%d/%d available", avail, want)
	switch {
	case updated < want:
		return Result{InProgress, fmt.Sprintf("%s, %d/%d updated", msg, updated, want)}
	case total > updated:
		return Result{InProgress, fmt.Sprintf("%s, %d old replicas terminating", msg, total-updated)}
	case avail < want:
		return Result{InProgress, msg}
	}
	return Result{Current, msg}
}

func statefulSet(obj *unstructured.Unstructured) Result {
	want := replicas(obj)
	ready := statusInt(obj, "readyReplicas")
	msg := fmt.Sprintf("%d/%d ready", ready, want)
	strategy, _, _ := unstructured.NestedString(obj.Object, "spec", "updateStrategy", "type")
	if strategy != "OnDelete" {
		cur, _, _ := unstructured.NestedString(obj.Object, "status", "currentRevision")
		upd, _, _ := unstructured.NestedString(obj.Object, "status", "updateRevision")
		partition, _, _ := unstructured.NestedInt64(obj.Object, "spec", "updateStrategy", "rollingUpdate", "partition")
		if partition == 0 && upd != "" && cur != upd {
			return Result{InProgress, fmt.Sprintf("%s, %d/%d updated", msg, statusInt(obj, "updatedReplicas"), want)}
		}
	}
	if ready < want || statusInt(obj, "availableReplicas") < want && hasStatus(obj, "availableReplicas") {
		return Result{InProgress, msg}
	}
	return Result{Current, msg}
}

func daemonSet(obj *unstructured.Unstructured) Result {
	want := statusInt(obj, "desiredNumberScheduled")
	avail := statusInt(obj, "numberAvailable")
	upd := statusInt(obj, "updatedNumberScheduled")
	msg := fmt.Sprintf("%d/%d available", avail, want)
	if !hasStatus(obj, "desiredNumberScheduled") {
		return Result{InProgress, "waiting for the controller"}
	}
	if upd < want {
		return Result{InProgress, fmt.Sprintf("%s, %d/%d updated", msg, upd, want)}
	}
	if avail < want {
		return Result{InProgress, msg}
	}
	return Result{Current, msg}
}

func replicaSet(obj *unstructured.Unstructured) Result {
	want := replicas(obj)
	avail := statusInt(obj, "availableReplicas")
	msg := fmt.Sprintf("%d/%d available", avail, want)
	if avail < want {
		return Result{InProgress, msg}
	}
	return Result{Current, msg}
}

// job is ready when complete; kstatus calls a running Job Current.
func job(obj *unstructured.Unstructured) Result {
	if c, ok := condition(obj, "Failed"); ok && c.status == "True" {
		return Result{Failed, "failed: " + c.describe()}
	}
	if c, ok := condition(obj, "Complete"); ok && c.status == "True" {
		return Result{Current, "complete"}
	}
	if c, ok := condition(obj, "Suspended"); ok && c.status == "True" {
		return Result{Current, "suspended"}
	}
	active := statusInt(obj, "active")
	failed := statusInt(obj, "failed")
	msg := fmt.Sprintf("running (%d active, %d succeeded", active, statusInt(obj, "succeeded"))
	if failed > 0 {
		msg += fmt.Sprintf(", %d failed", failed)
	}
	return Result{InProgress, msg + ")"}
}

func pod(obj *unstructured.Unstructured) Result {
	phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
	switch phase {
	case "Succeeded":
		return Result{Current, "succeeded"}
	case "Failed":
		return Result{Failed, "failed"}
	case "Running":
		if c, ok := condition(obj, "Ready"); ok && c.status == "True" {
			return Result{Current, "running"}
		}
		return Result{InProgress, "running, not ready"}
	}
	if c, ok := condition(obj, "PodScheduled"); ok && c.status == "False" {
		return Result{InProgress, "not scheduled: " + c.message}
	}
	return Result{InProgress, strings.ToLower(phase)}
}

func replicas(obj *unstructured.Unstructured) int64 {
	n, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	if !found {
		return 1
	}
	return n
}

func statusInt(obj *unstructured.Unstructured, field string) int64 {
	n, _, _ := unstructured.NestedInt64(obj.Object, "status", field)
	return n
}

func hasStatus(obj *unstructured.Unstructured, field string) bool {
	_, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "status", field)
	return found
}

type cond struct{ status, reason, message string }

func (c cond) describe() string {
	switch {
	case c.reason != "" && c.message != "":
		return c.reason + ": " + c.message
	case c.message != "":
		return c.message
	}
	return c.reason
}

func condition(obj *unstructured.Unstructured, typ string) (cond, bool) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		s := func(k string) string { v, _ := m[k].(string); return v }
		return cond{status: s("status"), reason: s("reason"), message: s("message")}, true
	}
	return cond{}, false
}
