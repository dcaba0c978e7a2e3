package controller

import (
	"context"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/incident"
)

// perNamespaceLists is how many app namespaces the controller lists pods in
// one by one; beyond it, one list of every pod is cheaper.
const perNamespaceLists = 20

// observeIncidents opens an Incident (in the Workspace's namespace) for each
// app whose deploy failed and for each crash-looping or unschedulable
// workload, records repetitions on the same one, and resolves an app's
// incidents once it is ready with no such workload. Failures are logged: an
// incident must never stop a reconcile.
func (r *reconciler) observeIncidents(ctx context.Context, ws *berthv1.Workspace, snap *snapshot, outcomes map[string]*appOutcome) {
	logger := log.FromContext(ctx).WithName("incidents")
	rec := &incident.Recorder{Client: r.client, Reader: r.reader}
	pods, err := r.appPods(ctx, snap)
	if err != nil {
		logger.Error(err, "listing the pods of the apps")
		return
	}
	// One LIST of the workspace's incidents, not one per app.
	all, err := rec.List(ctx, ws.Namespace, "")
	if err != nil {
		logger.Error(err, "listing the incidents")
		return
	}
	incidents := map[string][]berthv1.Incident{}
	for _, inc := range all {
		if app := inc.Labels[berthv1.LabelIncidentApp]; app != "" {
			incidents[app] = append(incidents[app], inc)
		}
	}
	for _, a := range snap.Apps {
		o := outcomes[a.Name]
		if o == nil || o.state == stateSuspended {
			continue
		}
		active := incident.Detect(a.Name, ws.Namespace, pods[a.Namespace], workloadsOf(a), time.Now())
		// A deploy that failed its health check because of a workload found
		// above is that workload's incident, not a second one.
		if (o.state == stateStalled || o.state == stateFailed) && (o.reason != berthv1.ReasonHealthCheckFailed || len(active) == 0) {
			active = append(active, incident.DeployFailed(a.Name, ws.Namespace, snap.Revision, o.msg))
		}
		for _, c := range active {
			if _, err := rec.Observe(ctx, c); err != nil {
				logger.Error(err, "recording an incident", "app", a.Name, "cause", c.Cause)
			}
		}
		if o.state == stateReady {
			if _, err := rec.ResolveAmong(ctx, incidents[a.Name], active, "the app is ready at revision "+short(snap.Revision)); err != nil {
				logger.Error(err, "resolving incidents", "app", a.Name)
			}
		}
	}
}

// appPods lists the pods of the namespaces the snapshot's apps live in.
func (r *reconciler) appPods(ctx context.Context, snap *snapshot) (map[string][]corev1.Pod, error) {
	namespaces := map[string]bool{}
	for _, a := range snap.Apps {
		namespaces[a.Namespace] = true
	}
	out := map[string][]corev1.Pod{}
	if len(namespaces) > perNamespaceLists {
		var list corev1.PodList
		if err := r.reader.List(ctx, &list); err != nil {
			return nil, err
		}
		for _, p := range list.Items {
			if namespaces[p.Namespace] {
				out[p.Namespace] = append(out[p.Namespace], p)
			}
		}
		return out, nil
	}
	for ns := range namespaces {
		var list corev1.PodList
		if err := r.reader.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		out[ns] = list.Items
	}
	return out, nil
}

// workloadsOf says which of an app's workloads (as the workspace holds them)
// a pod belongs to, from its controller: a ReplicaSet stands for its
// Deployment (named without the pod-template-hash).
func workloadsOf(a *appSpec) incident.Owner {
	own := map[string]bool{}
	for _, o := range a.Objects {
		if o.GetNamespace() == "" || o.GetNamespace() == a.Namespace {
			own[o.GetKind()+"/"+o.GetName()] = true
		}
	}
	return func(p *corev1.Pod) (string, bool) {
		kind, name := "Pod", p.Name
		for _, ref := range p.OwnerReferences {
			if ref.Controller != nil && *ref.Controller {
				kind, name = ref.Kind, ref.Name
			}
		}
		if kind == "ReplicaSet" {
			if hash := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; hash != "" && own["Deployment/"+strings.TrimSuffix(name, "-"+hash)] {
				kind, name = "Deployment", strings.TrimSuffix(name, "-"+hash)
			}
		}
		if !own[kind+"/"+name] {
			return "", false
		}
		return strings.ToLower(kind) + "/" + name, true
	}
}
