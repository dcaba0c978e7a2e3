package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/testcluster"
)

// installIncidentCRD installs berth's CRDs, the Incident's among them.
func installIncidentCRD(t *testing.T) { installCRD(t) }

func webDeployment(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"replicas": int64(1),
			"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "main", "image": "busybox"}}},
			},
		},
	}}
}

// waitIncident waits until the incident exists and cond holds.
func waitIncident(t *testing.T, c client.Client, ns, name string, cond func(*berthv1.Incident) bool) *berthv1.Incident {
	t.Helper()
	var inc berthv1.Incident
	testcluster.WaitFor(t, syncTimeout, func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &inc); err != nil {
			return false, err.Error(), nil
		}
		return cond(&inc), fmt.Sprintf("%+v", inc.Status), nil
	})
	return &inc
}

func state(s berthv1.IncidentState, count int32) func(*berthv1.Incident) bool {
	return func(i *berthv1.Incident) bool { return i.Status.State == s && i.Status.Count == count }
}

// crashLoop makes the app's pod crash-loop through the API, as a kubelet
// would report it, with that many restarts.
func crashLoop(t *testing.T, ns, app string, restarts int32) string {
	t.Helper()
	cs := testcluster.Clientset(t)
	ctx := context.Background()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of %s: %v %v", app, pods, err)
	}
	p := &pods.Items[0]
	st := &p.Status.ContainerStatuses[0]
	st.Ready, st.RestartCount = false, restarts
	st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off restarting failed container"}}
	st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: metav1.Now()}}
	for i, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			p.Status.Conditions[i].Status, p.Status.Conditions[i].LastTransitionTime = corev1.ConditionFalse, metav1.Now()
		}
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return p.Name
}

// TestIncidentsFromCrashLoopsAndFailedDeploys: a crash-looping workload opens
// one incident (named in the app's status), more restarts count on it, a
// healthy app resolves it; a failed deploy opens one, a failed deploy of the
// next commit updates the same one, and the fixed commit resolves it.
func TestIncidentsFromCrashLoopsAndFailedDeploys(t *testing.T) {
	installCRD(t)
	installIncidentCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	r.app("web", appNS, []*unstructured.Unstructured{webDeployment("web")}, nil)
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, func(ws *berthv1.Workspace) { ws.Spec.Timeout = metav1.Duration{Duration: 20 * time.Second} })
	startController(t, ns, nil)
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))

	// A crash loop opens an incident naming the workload, and not a second
	// one for the health check it fails.
	pod := crashLoop(t, appNS, "web", 5)
	annotate(t, k, ns, "main", berthv1.AnnotationReconcileRequestedAt)
	inc := waitIncident(t, k, ns, "web-crashlooping-deployment-web", state(berthv1.IncidentOpen, 1))
	if inc.Spec.Object != "deployment/web" || !strings.Contains(inc.Status.Message, "pod "+pod+" container main restarted 5 times (CrashLoopBackOff)") {
		t.Errorf("incident %+v %+v", inc.Spec, inc.Status)
	}
	ws := waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		a := appStatus(ws, "web")
		return a != nil && strings.Contains(a.LastError, "CrashLoopBackOff"), describe(ws)
	})
	if a := appStatus(ws, "web"); !strings.Contains(a.LastError, "deployment/web") || !strings.Contains(a.LastError, pod) {
		t.Errorf("the app's status does not name the crash-looping workload: %q", a.LastError)
	}
	var all berthv1.IncidentList
	if err := k.List(context.Background(), &all, client.InNamespace(ns)); err != nil || len(all.Items) != 1 {
		t.Errorf("incidents %+v, %v: want only the crash loop's", all.Items, err)
	}

	// Restarts climbing are a repetition of the same incident.
	crashLoop(t, appNS, "web", 9)
	annotate(t, k, ns, "main", berthv1.AnnotationReconcileRequestedAt)
	inc = waitIncident(t, k, ns, "web-crashlooping-deployment-web", state(berthv1.IncidentOpen, 2))
	if last := inc.Status.Timeline[len(inc.Status.Timeline)-1]; last.Type != "Repeated" || !strings.Contains(last.Message, "restarted 9 times") {
		t.Errorf("last timeline entry %+v", last)
	}

	// A new pod runs: the app is healthy again and the incident resolves.
	if err := testcluster.Clientset(t).CoreV1().Pods(appNS).Delete(context.Background(), pod, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, syncTimeout, func(ctx context.Context) (bool, string, error) {
		annotate(t, k, ns, "main", berthv1.AnnotationReconcileRequestedAt)
		var i berthv1.Incident
		err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-crashlooping-deployment-web"}, &i)
		return err == nil && i.Status.State == berthv1.IncidentResolved, fmt.Sprintf("%+v %v", i.Status, err), nil
	})

	// A failed deploy opens an incident; the next failing commit updates it.
	bad := func(key string) *unstructured.Unstructured {
		cm := configMap("settings", nil)
		cm.Object["data"] = map[string]any{key: "x"}
		return cm
	}
	r.app("web", appNS, []*unstructured.Unstructured{webDeployment("web"), bad("bad key!")}, nil)
	r.push()
	first := r.head()
	requestFetch(t, k, ns, "main")
	inc = waitIncident(t, k, ns, "web-deployfailed", state(berthv1.IncidentOpen, 1))
	if !strings.Contains(inc.Status.Message, first[:8]) || !strings.Contains(inc.Status.Message, "configmap/settings") {
		t.Errorf("deploy incident message %q", inc.Status.Message)
	}
	r.app("web", appNS, []*unstructured.Unstructured{webDeployment("web"), bad("worse key?")}, nil)
	r.push()
	requestFetch(t, k, ns, "main")
	inc = waitIncident(t, k, ns, "web-deployfailed", state(berthv1.IncidentOpen, 2))
	if !strings.Contains(inc.Status.Message, r.head()[:8]) {
		t.Errorf("the repeated incident does not name the new commit: %q", inc.Status.Message)
	}
	r.app("web", appNS, []*unstructured.Unstructured{webDeployment("web")}, nil)
	r.push()
	requestFetch(t, k, ns, "main")
	inc = waitIncident(t, k, ns, "web-deployfailed", func(i *berthv1.Incident) bool { return i.Status.State == berthv1.IncidentResolved })
	var types []string
	for _, e := range inc.Status.Timeline {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, " "); got != "Opened Repeated Resolved" {
		t.Errorf("deploy incident timeline %s", got)
	}
}
