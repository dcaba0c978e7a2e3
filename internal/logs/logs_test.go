package logs_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/logs"
	"berth.dev/berth/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

func deployment(ns, name string, replicas int32, containers ...string) *appsv1.Deployment {
	l := map[string]string{"app.kubernetes.io/name": name}
	var cs []corev1.Container
	for _, c := range containers {
		cs = append(cs, corev1.Container{Name: c, Image: "busybox"})
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: corev1.PodSpec{Containers: cs}},
		},
	}
}

// create makes the deployments and waits until each has its pods Running.
func create(t *testing.T, cs kubernetes.Interface, ds ...*appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	for _, d := range ds {
		if _, err := cs.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range ds {
		waitRunning(t, cs, d.Namespace, d.Name, int(*d.Spec.Replicas))
	}
}

func waitRunning(t *testing.T, cs kubernetes.Interface, ns, name string, n int) {
	t.Helper()
	testcluster.WaitFor(t, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + name})
		if err != nil {
			return false, "", err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		return running == n, "", nil
	})
}

func ref(ns, name string) apply.ObjectRef {
	return apply.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: ns, Name: name}
}

func podNames(t *testing.T, cs kubernetes.Interface, ns, name string) []string {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	return out
}

// TestFollowReadsEveryPodIncludingOneStartedAfterwards follows an app's logs,
// then scales it up: the new pod's lines arrive on the same stream, and the
// pods of another app in the namespace never do.
func TestFollowReadsEveryPodIncludingOneStartedAfterwards(t *testing.T) {
	cs := testcluster.Clientset(t)
	ns := testcluster.Namespace(t)
	create(t, cs, deployment(ns, "web", 2, "main", "sidecar"), deployment(ns, "other", 1, "main"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sel, err := logs.Select(ctx, cs, "shop", []apply.ObjectRef{ref(ns, "web")}, "")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := logs.Stream(ctx, cs, sel, logs.Options{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{} // pod/container that printed "ready"
	others := podNames(t, cs, ns, "other")
	await := func(pods []string) {
		t.Helper()
		for {
			done := true
			for _, p := range pods {
				done = done && ready[p+"/main"] && ready[p+"/sidecar"]
			}
			if done {
				return
			}
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream closed before every pod of %v printed; got %v", pods, ready)
				}
				if l.Err != nil {
					t.Fatalf("stream error: %v", l.Err)
				}
				for _, o := range others {
					if l.Pod == o {
						t.Fatalf("line from pod %s of another app: %q", o, l.Text)
					}
				}
				if l.Text == "ready" {
					ready[l.Pod+"/"+l.Container] = true
				}
			case <-ctx.Done():
				t.Fatalf("no lines from every pod of %v; got %v", pods, ready)
			}
		}
	}
	first := podNames(t, cs, ns, "web")
	await(first)

	if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, "web", "application/merge-patch+json", []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cs, ns, "web", 3)
	all := podNames(t, cs, ns, "web")
	var added []string
	for _, p := range all {
		if !strings.Contains(strings.Join(first, " "), p) {
			added = append(added, p)
		}
	}
	if len(added) != 1 {
		t.Fatalf("pods after scaling %v, before %v: want one new pod", all, first)
	}
	await(added)
	cancel()
	for range lines { // the stream closes once ctx ends
	}
}

// TestReadOnceIsOrderedByPodAndContainer reads without following: every
// container's whole log, one after another (pods by name, containers in the
// pod's order), then the end.
func TestReadOnceIsOrderedByPodAndContainer(t *testing.T) {
	cs := testcluster.Clientset(t)
	ns := testcluster.Namespace(t)
	create(t, cs, deployment(ns, "api", 2, "b", "a"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sel, err := logs.Select(ctx, cs, "shop", []apply.ObjectRef{ref(ns, "api")}, "api")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := logs.Stream(ctx, cs, sel, logs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	count := 0
	for l := range lines {
		if l.Err != nil {
			t.Fatal(l.Err)
		}
		count++
		if k := l.Pod + "/" + l.Container; len(order) == 0 || order[len(order)-1] != k {
			order = append(order, k)
		}
	}
	pods := podNames(t, cs, ns, "api")
	if len(pods) != 2 || pods[0] > pods[1] {
		pods[0], pods[1] = pods[1], pods[0]
	}
	want := []string{pods[0] + "/b", pods[0] + "/a", pods[1] + "/b", pods[1] + "/a"} // the pod's own container order
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("containers read in order %v, want %v", order, want)
	}
	if count != 4*4 {
		t.Errorf("read %d lines, want 16 (four simulated lines from each of four containers)", count)
	}
}

func TestSelectNamesTheWorkloadsOfAnUnknownComponent(t *testing.T) {
	cs := testcluster.Clientset(t)
	ns := testcluster.Namespace(t)
	create(t, cs, deployment(ns, "shop-web", 1, "main"))
	_, err := logs.Select(context.Background(), cs, "shop", []apply.ObjectRef{ref(ns, "shop-web")}, "worker")
	var nf *logs.ComponentNotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "deployment/shop-web") {
		t.Fatalf("Select(worker) = %v, want a ComponentNotFoundError naming deployment/shop-web", err)
	}
	sel, err := logs.Select(context.Background(), cs, "shop", []apply.ObjectRef{ref(ns, "shop-web")}, "web")
	if err != nil || len(sel.Workloads) != 1 {
		t.Fatalf("Select(web) = %+v, %v; want deployment shop-web (APP-COMPONENT)", sel, err)
	}
}

// TestEventsAreTheAppsOnly lists the Events of an app: its Deployment's, its
// ReplicaSet's and its pods', sorted by time, and none of another app's.
func TestEventsAreTheAppsOnly(t *testing.T) {
	cs := testcluster.Clientset(t)
	ns := testcluster.Namespace(t)
	create(t, cs, deployment(ns, "web", 1, "main"), deployment(ns, "other", 1, "main"))
	refs := []apply.ObjectRef{ref(ns, "web")}
	sel, err := logs.Select(context.Background(), cs, "shop", refs, "")
	if err != nil {
		t.Fatal(err)
	}
	var evs []logs.Event
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		evs, err = logs.Events(ctx, cs, refs, sel)
		if err != nil {
			return false, "", err
		}
		var seen []string
		kinds := map[string]bool{}
		for _, e := range evs {
			seen = append(seen, e.Object+":"+e.Reason)
			kinds[strings.SplitN(e.Object, "/", 2)[0]+":"+e.Reason] = true
		}
		return kinds["deployment:ScalingReplicaSet"] && kinds["replicaset:SuccessfulCreate"] && kinds["pod:Scheduled"], strings.Join(seen, ", "), nil
	})
	for i, e := range evs {
		if strings.Contains(e.Object, "other") {
			t.Errorf("event of another app: %+v", e)
		}
		if i > 0 && e.Time.Before(evs[i-1].Time) {
			t.Errorf("events not sorted by time: %v before %v", evs[i-1], e)
		}
	}
}
