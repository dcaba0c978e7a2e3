package logs

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"berth.dev/berth/internal/apply"
)

// Workload is one of an app's objects that runs pods, and how to know its pods.
type Workload struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// selector matches the workload's pods (and a StatefulSet's claims, which
	// carry its selector's labels); nil for a bare Pod, matched by name.
	selector labels.Selector
}

// String is kind/name as kubectl writes it.
func (w Workload) String() string { return lowerKind(w.Kind) + "/" + w.Name }

// Selection is which pods belong to an app.
type Selection struct {
	App       string
	Workloads []Workload
}

// Namespaces returns the namespaces the selection's pods live in, sorted.
func (s *Selection) Namespaces() []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range s.Workloads {
		if !seen[w.Namespace] {
			seen[w.Namespace] = true
			out = append(out, w.Namespace)
		}
	}
	sort.Strings(out)
	return out
}

// Owner returns the workload an object (a pod, or a claim) belongs to.
func (s *Selection) Owner(namespace, name string, objLabels map[string]string) (Workload, bool) {
	for _, w := range s.Workloads {
		if w.Namespace != namespace {
			continue
		}
		if w.selector == nil {
			if w.Kind == "Pod" && w.Name == name {
				return w, true
			}
			continue
		}
		if w.selector.Matches(labels.Set(objLabels)) {
			return w, true
		}
	}
	return Workload{}, false
}

// ComponentNotFoundError means no workload of the app answers to a component.
type ComponentNotFoundError struct {
	App, Component string
	Workloads      []string
}

func (e *ComponentNotFoundError) Error() string {
	return fmt.Sprintf("app %s has no component %q; its workloads are %v", e.App, e.Component, e.Workloads)
}

// Select reads the workloads among an app's inventory refs and their pod
// selectors. A component, when not empty, keeps the workloads named
// component or APP-component, or labelled app.kubernetes.io/component=component.
func Select(ctx context.Context, cs kubernetes.Interface, app string, refs []apply.ObjectRef, component string) (*Selection, error) {
	sel := &Selection{App: app}
	var names []string
	for _, r := range refs {
		w, meta, ok, err := workload(ctx, cs, r)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		names = append(names, w.String())
		if component != "" && w.Name != component && w.Name != app+"-"+component && meta.Labels["app.kubernetes.io/component"] != component {
			continue
		}
		sel.Workloads = append(sel.Workloads, w)
	}
	if component != "" && len(sel.Workloads) == 0 {
		sort.Strings(names)
		return nil, &ComponentNotFoundError{App: app, Component: component, Workloads: names}
	}
	return sel, nil
}

// workload reads the object of r when it runs pods. An object the inventory
// lists but the cluster no longer has runs no pods.
func workload(ctx context.Context, cs kubernetes.Interface, r apply.ObjectRef) (Workload, metav1.ObjectMeta, bool, error) {
	w := Workload{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
	var meta metav1.ObjectMeta
	var ls *metav1.LabelSelector
	var err error
	opts := metav1.GetOptions{}
	switch {
	case r.Group == "apps" && r.Kind == "Deployment":
		d, e := cs.AppsV1().Deployments(r.Namespace).Get(ctx, r.Name, opts)
		err = e
		if e == nil {
			meta, ls = d.ObjectMeta, d.Spec.Selector
		}
	case r.Group == "apps" && r.Kind == "StatefulSet":
		s, e := cs.AppsV1().StatefulSets(r.Namespace).Get(ctx, r.Name, opts)
		err = e
		if e == nil {
			meta, ls = s.ObjectMeta, s.Spec.Selector
		}
	case r.Group == "apps" && r.Kind == "DaemonSet":
		d, e := cs.AppsV1().DaemonSets(r.Namespace).Get(ctx, r.Name, opts)
		err = e
		if e == nil {
			meta, ls = d.ObjectMeta, d.Spec.Selector
		}
	case r.Group == "apps" && r.Kind == "ReplicaSet":
		d, e := cs.AppsV1().ReplicaSets(r.Namespace).Get(ctx, r.Name, opts)
		err = e
		if e == nil {
			meta, ls = d.ObjectMeta, d.Spec.Selector
		}
	case r.Group == "batch" && r.Kind == "Job":
		j, e := cs.BatchV1().Jobs(r.Namespace).Get(ctx, r.Name, opts)
		err = e
		if e == nil {
			meta, ls = j.ObjectMeta, j.Spec.Selector
		}
	case r.Group == "batch" && r.Kind == "CronJob":
		// The pods of a CronJob's Jobs carry its job template's pod labels.
		c, e := cs.BatchV1().CronJobs(r.Namespace).Get(ctx, r.Name, opts)
		err = e
		if e == nil {
			meta = c.ObjectMeta
			if l := c.Spec.JobTemplate.Spec.Template.Labels; len(l) > 0 {
				ls = &metav1.LabelSelector{MatchLabels: l}
			}
		}
	case r.Group == "" && r.Kind == "Pod":
		p, e := cs.CoreV1().Pods(r.Namespace).Get(ctx, r.Name, opts)
		if e == nil {
			return w, p.ObjectMeta, true, nil
		}
		err = e
	default:
		return w, meta, false, nil
	}
	if apierrors.IsNotFound(err) {
		return w, meta, false, nil
	}
	if err != nil {
		return w, meta, false, fmt.Errorf("reading %s: %w", w, err)
	}
	if ls == nil {
		return w, meta, false, nil
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return w, meta, false, fmt.Errorf("%s: selector: %w", w, err)
	}
	if s.Empty() {
		// An empty selector would take every pod of the namespace.
		return w, meta, false, nil
	}
	w.selector = s
	return w, meta, true, nil
}

func lowerKind(k string) string {
	b := []byte(k)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// podContainers lists the containers of a pod whose logs can be read: those
// that have started (running or ended), init containers first. With previous,
// those that have ended once before.
func podContainers(p *corev1.Pod, previous bool) []string {
	var out []string
	add := func(statuses []corev1.ContainerStatus) {
		for _, s := range statuses {
			switch {
			case previous && (s.RestartCount > 0 || s.LastTerminationState.Terminated != nil):
				out = append(out, s.Name)
			case !previous && (s.State.Running != nil || s.State.Terminated != nil):
				out = append(out, s.Name)
			}
		}
	}
	add(p.Status.InitContainerStatuses)
	add(p.Status.ContainerStatuses)
	return out
}
