package logs

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"berth.dev/berth/internal/apply"
)

// Event is one Kubernetes Event about one of an app's objects.
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Object    string    `json:"object"`
	Namespace string    `json:"namespace"`
	Message   string    `json:"message"`
	Count     int32     `json:"count"`
}

// Events lists the Events about an app's objects, oldest first: the objects
// of its inventory refs, the pods and claims of its workloads (sel), and the
// ReplicaSets and Jobs those workloads own.
func Events(ctx context.Context, cs kubernetes.Interface, refs []apply.ObjectRef, sel *Selection) ([]Event, error) {
	own := map[string]bool{}
	key := func(kind, ns, name string) string { return kind + "/" + ns + "/" + name }
	namespaces := map[string]bool{}
	for _, r := range refs {
		own[key(r.Kind, r.Namespace, r.Name)] = true
		if r.Namespace != "" {
			namespaces[r.Namespace] = true
		}
	}
	for _, ns := range sel.Namespaces() {
		namespaces[ns] = true
	}
	var out []Event
	for ns := range namespaces {
		if err := ownedObjects(ctx, cs, ns, sel, own, key); err != nil {
			return nil, err
		}
		list, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing events in namespace %s: %w", ns, err)
		}
		for _, ev := range list.Items {
			io := ev.InvolvedObject
			if !own[key(io.Kind, io.Namespace, io.Name)] {
				continue
			}
			out = append(out, Event{
				Time: eventTime(&ev), Type: ev.Type, Reason: ev.Reason, Namespace: ns,
				Object: lowerKind(io.Kind) + "/" + io.Name, Message: ev.Message, Count: max(ev.Count, 1),
			})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].Object < out[j].Object
	})
	return out, nil
}

// ownedObjects adds to own the pods and claims of the namespace that the
// app's workloads select, and the ReplicaSets and Jobs they own.
func ownedObjects(ctx context.Context, cs kubernetes.Interface, ns string, sel *Selection, own map[string]bool, key func(kind, ns, name string) string) error {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods in namespace %s: %w", ns, err)
	}
	for _, p := range pods.Items {
		if _, ok := sel.Owner(ns, p.Name, p.Labels); ok {
			own[key("Pod", ns, p.Name)] = true
		}
	}
	claims, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing persistentvolumeclaims in namespace %s: %w", ns, err)
	}
	for _, c := range claims.Items {
		if _, ok := sel.Owner(ns, c.Name, c.Labels); ok {
			own[key("PersistentVolumeClaim", ns, c.Name)] = true
		}
	}
	rs, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing replicasets in namespace %s: %w", ns, err)
	}
	for _, r := range rs.Items {
		if ownedBy(r.OwnerReferences, "Deployment", ns, own, key) {
			own[key("ReplicaSet", ns, r.Name)] = true
		}
	}
	jobs, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing jobs in namespace %s: %w", ns, err)
	}
	for _, j := range jobs.Items {
		if ownedBy(j.OwnerReferences, "CronJob", ns, own, key) {
			own[key("Job", ns, j.Name)] = true
		}
	}
	return nil
}

func ownedBy(refs []metav1.OwnerReference, kind, ns string, own map[string]bool, key func(kind, ns, name string) string) bool {
	for _, o := range refs {
		if o.Kind == kind && own[key(kind, ns, o.Name)] {
			return true
		}
	}
	return false
}

func eventTime(ev *corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	case !ev.FirstTimestamp.IsZero():
		return ev.FirstTimestamp.Time
	}
	return ev.CreationTimestamp.Time
}
