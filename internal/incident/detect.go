package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/health"
)

// Cause is one thing that needs a person, as observed once.
type Cause struct {
	App       string
	Namespace string
	Cause     berthv1.IncidentCause
	// Object is the workload (kind/name), when the cause is about one.
	Object  string
	Message string
	// Fingerprint identifies this observation: seeing the same one again is
	// not a repetition.
	Fingerprint string
}

// Name is the Incident's name for the cause: deterministic, so a repeated
// cause finds its incident.
func (c Cause) Name() string {
	parts := []string{c.App, strings.ToLower(string(c.Cause))}
	if c.Object != "" {
		// alert/NAME says alert once: APP-alert-NAME.
		parts = append(parts, strings.ReplaceAll(strings.TrimPrefix(c.Object, "alert/"), "/", "-"))
	}
	name := strings.ToLower(strings.Join(parts, "-"))
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(name))
		name = strings.TrimRight(name[:54], "-.") + "-" + hex.EncodeToString(sum[:4])
	}
	return name
}

// Owner says which workload of the app a pod belongs to (kind/name), and
// whether it belongs to the app at all.
type Owner func(pod *corev1.Pod) (string, bool)

// RecentCrash is how recent a container's last crash must be for its restarts
// to count as climbing.
const RecentCrash = 10 * time.Minute

// Detect finds crash-looping and unschedulable workloads among pods at time
// now: a container waiting in CrashLoopBackOff, or one restarted
// health.CrashLoopFailures times or more whose last run ended in a crash less
// than RecentCrash ago (restarts climbing); a pod the scheduler reports
// Unschedulable. One cause per workload and kind of problem, naming its pods.
func Detect(app, namespace string, pods []corev1.Pod, owner Owner, now time.Time) []Cause {
	type key struct {
		cause  berthv1.IncidentCause
		object string
	}
	found := map[key][]string{}
	restarts := map[key]int32{}
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		object, ok := owner(p)
		if !ok {
			continue
		}
		if msg, n, ok := crashLooping(p, now); ok {
			k := key{berthv1.CauseCrashLooping, object}
			found[k] = append(found[k], msg)
			restarts[k] += n
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				k := key{berthv1.CauseUnschedulable, object}
				found[k] = append(found[k], fmt.Sprintf("pod %s cannot be scheduled: %s", p.Name, c.Message))
			}
		}
	}
	var out []Cause
	for k, msgs := range found {
		sort.Strings(msgs)
		c := Cause{App: app, Namespace: namespace, Cause: k.cause, Object: k.object, Message: k.object + ": " + strings.Join(msgs, "; ")}
		switch k.cause {
		case berthv1.CauseCrashLooping:
			// Climbing restarts are new observations.
			c.Fingerprint = fmt.Sprintf("restarts=%d", restarts[k])
		default:
			c.Fingerprint = strings.Join(msgs, "; ")
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// crashLooping reports a pod's crash-looping container, if any, and its
// restart count.
func crashLooping(p *corev1.Pod, now time.Time) (string, int32, bool) {
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		waiting := s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff"
		last := s.LastTerminationState.Terminated
		climbing := s.RestartCount >= health.CrashLoopFailures && last != nil && last.ExitCode != 0 && now.Sub(last.FinishedAt.Time) < RecentCrash
		if !waiting && !climbing {
			continue
		}
		msg := fmt.Sprintf("pod %s container %s restarted %d times", p.Name, s.Name, s.RestartCount)
		if waiting {
			msg += " (CrashLoopBackOff)"
		}
		if t := s.LastTerminationState.Terminated; t != nil {
			msg += fmt.Sprintf("; last exit code %d", t.ExitCode)
			if t.Reason != "" {
				msg += " (" + t.Reason + ")"
			}
		}
		return msg, s.RestartCount, true
	}
	return "", 0, false
}

// DeployFailed is the cause of a deploy of app at revision that failed.
func DeployFailed(app, namespace, revision, err string) Cause {
	return Cause{App: app, Namespace: namespace, Cause: berthv1.CauseDeployFailed,
		Message: fmt.Sprintf("deploy at revision %.8s failed: %s", revision, err), Fingerprint: revision + " " + err}
}
