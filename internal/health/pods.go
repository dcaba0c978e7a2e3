package health

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// CrashLoopFailures is how many restarts make a crash-looping container a
// failure rather than a slow start: an app commonly crashes once or twice while
// a database it needs comes up, then recovers.
const CrashLoopFailures = 3

// PodProblem says why a pod keeps its workload from being ready, naming the
// pod, its container and the kubelet's or scheduler's reason; ok is false when
// the pod shows nothing a person could act on (it is starting, or running).
// A container crash-looping for CrashLoopFailures restarts or more, or one whose
// image cannot be pulled, has failed: waiting will not fix it.
func PodProblem(pod *unstructured.Unstructured) (r Result, ok bool) {
	name := "pod " + pod.GetName()
	if pod.GetDeletionTimestamp() != nil {
		return Result{}, false
	}
	for _, field := range []string{"initContainerStatuses", "containerStatuses"} {
		statuses, _, _ := unstructured.NestedSlice(pod.Object, "status", field)
		for _, s := range statuses {
			cs, _ := s.(map[string]any)
			reason, _, _ := unstructured.NestedString(cs, "state", "waiting", "reason")
			message, _, _ := unstructured.NestedString(cs, "state", "waiting", "message")
			container, _, _ := unstructured.NestedString(cs, "name")
			restarts, _, _ := unstructured.NestedInt64(cs, "restartCount")
			at := fmt.Sprintf("%s: container %s", name, container)
			switch reason {
			case "", "ContainerCreating", "PodInitializing":
				continue
			case "CrashLoopBackOff":
				msg := fmt.Sprintf("%s is in CrashLoopBackOff (restarted %d times)", at, restarts)
				if last := lastTermination(cs); last != "" {
					msg += "; last exit: " + last
				}
				if restarts >= CrashLoopFailures {
					return Result{Failed, msg}, true
				}
				return Result{InProgress, msg}, true
			case "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				return Result{Failed, withMessage(fmt.Sprintf("%s cannot pull its image (%s)", at, reason), message)}, true
			default: // ErrImagePull (retried), CreateContainerConfigError, ...
				return Result{InProgress, withMessage(fmt.Sprintf("%s is waiting: %s", at, reason), message)}, true
			}
		}
	}
	if c, found := condition(pod, "PodScheduled"); found && c.status == "False" {
		return Result{InProgress, withMessage(fmt.Sprintf("%s cannot be scheduled (%s)", name, c.reason), c.message)}, true
	}
	return Result{}, false
}

func withMessage(s, message string) string {
	if message == "" {
		return s
	}
	return s + ": " + message
}

func lastTermination(cs map[string]any) string {
	t, found, _ := unstructured.NestedMap(cs, "lastState", "terminated")
	if !found {
		return ""
	}
	reason, _ := t["reason"].(string)
	code, _, _ := unstructured.NestedInt64(t, "exitCode")
	if reason == "" {
		return fmt.Sprintf("exit code %d", code)
	}
	return fmt.Sprintf("%s, exit code %d", reason, code)
}

// IsWorkload reports whether obj's readiness depends on pods that PodProblem
// can explain: a Deployment, StatefulSet, DaemonSet or Job.
func IsWorkload(obj *unstructured.Unstructured) bool {
	gk := obj.GroupVersionKind().GroupKind()
	switch gk.Group + "/" + gk.Kind {
	case "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet", "batch/Job":
		return true
	}
	return false
}

// Explain adds the reason a pod gives to a workload's result: the workload
// takes the pod's status when it is worse (a failed pod fails its workload).
func Explain(workload, pod Result) Result {
	if workload.Status == Current {
		return workload
	}
	out := Result{Status: workload.Status, Message: pod.Message}
	if workload.Message != "" {
		out.Message = workload.Message + "; " + pod.Message
	}
	if pod.Status == Failed {
		out.Status = Failed
	}
	return out
}
