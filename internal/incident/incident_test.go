package incident_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/incident"
	"berth.dev/berth/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

var now = time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)

func pod(name, owner string, statuses ...corev1.ContainerStatus) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"owner": owner}},
		Status:     corev1.PodStatus{ContainerStatuses: statuses},
	}
}

func byLabel(p *corev1.Pod) (string, bool) {
	o := p.Labels["owner"]
	return o, o != ""
}

func TestDetect(t *testing.T) {
	crashing := corev1.ContainerStatus{Name: "main", RestartCount: 7,
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: metav1.NewTime(now.Add(-time.Minute))}}}
	climbing := corev1.ContainerStatus{Name: "main", RestartCount: 4, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, FinishedAt: metav1.NewTime(now.Add(-time.Minute))}}}
	recovered := climbing
	recovered.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, FinishedAt: metav1.NewTime(now.Add(-time.Hour))}
	running := corev1.ContainerStatus{Name: "main", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	unschedulable := pod("db-0", "statefulset/db")
	unschedulable.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available"}}
	tests := map[string]struct {
		pods []corev1.Pod
		want []string // name: message fragment
	}{
		"healthy":           {[]corev1.Pod{pod("web-1", "deployment/web", running)}, nil},
		"crash loop":        {[]corev1.Pod{pod("web-1", "deployment/web", crashing), pod("web-2", "deployment/web", crashing)}, []string{"shop-crashlooping-deployment-web: deployment/web: pod web-1 container main restarted 7 times (CrashLoopBackOff); last exit code 1 (Error); pod web-2"}},
		"restarts climbing": {[]corev1.Pod{pod("web-1", "deployment/web", climbing)}, []string{"shop-crashlooping-deployment-web: deployment/web: pod web-1 container main restarted 4 times; last exit code 137"}},
		"old restarts":      {[]corev1.Pod{pod("web-1", "deployment/web", recovered)}, nil},
		"unschedulable":     {[]corev1.Pod{unschedulable}, []string{"shop-unschedulable-statefulset-db: statefulset/db: pod db-0 cannot be scheduled: 0/3 nodes are available"}},
		"not the app's":     {[]corev1.Pod{pod("other", "", crashing)}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := incident.Detect("shop", "ns", tc.pods, byLabel, now)
			if len(got) != len(tc.want) {
				t.Fatalf("Detect = %+v, want %d causes", got, len(tc.want))
			}
			for i, c := range got {
				if s := c.Name() + ": " + c.Message; !strings.HasPrefix(s, tc.want[i]) {
					t.Errorf("cause %d = %q, want it to start with %q", i, s, tc.want[i])
				}
			}
		})
	}
	// Restarts climbing are new observations; the same count is not.
	a := incident.Detect("shop", "ns", []corev1.Pod{pod("web-1", "deployment/web", crashing)}, byLabel, now)
	more := crashing
	more.RestartCount = 8
	b := incident.Detect("shop", "ns", []corev1.Pod{pod("web-1", "deployment/web", more)}, byLabel, now)
	if a[0].Name() != b[0].Name() || a[0].Fingerprint == b[0].Fingerprint {
		t.Errorf("fingerprints %q and %q for 7 and 8 restarts of one workload", a[0].Fingerprint, b[0].Fingerprint)
	}
}

func TestNameIsAValidObjectName(t *testing.T) {
	c := incident.Cause{App: strings.Repeat("a", 50), Cause: berthv1.CauseCrashLooping, Object: "statefulset/" + strings.Repeat("b", 60)}
	if n := c.Name(); len(n) > 63 || n != c.Name() {
		t.Errorf("name %q (%d characters)", n, len(n))
	}
}

// installCRD installs berth's CRDs, the Incident's among them.
func installCRD(t *testing.T) { testcluster.InstallCRDs(t, testcluster.Config(t)) }

func newClient(t *testing.T) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := berthv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(testcluster.Config(t), client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRecorderOneIncidentPerCause: the first observation opens an incident,
// the same observation again changes nothing, a new one counts a repetition
// on the same incident, resolution by health and reopening keep its
// timeline, and acknowledgement records who.
func TestRecorderOneIncidentPerCause(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	clock := now
	rec := &incident.Recorder{Client: newClient(t), Now: func() time.Time { return clock }}
	ctx := context.Background()
	c := incident.DeployFailed("shop", ns, "aaaaaaaa11", "configmap/x: invalid")

	inc, err := rec.Observe(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if inc.Status.State != berthv1.IncidentOpen || inc.Status.Count != 1 || inc.Name != "shop-deployfailed" {
		t.Fatalf("opened %s: %+v", inc.Name, inc.Status)
	}
	clock = clock.Add(time.Minute)
	if inc, err = rec.Observe(ctx, c); err != nil || inc.Status.Count != 1 {
		t.Fatalf("the same observation again: %+v, %v", inc.Status, err)
	}
	if inc, err = rec.Observe(ctx, incident.DeployFailed("shop", ns, "bbbbbbbb22", "configmap/x: invalid")); err != nil || inc.Status.Count != 2 {
		t.Fatalf("a repetition: %+v, %v", inc.Status, err)
	}
	if _, err := rec.Acknowledge(ctx, ns, inc.Name, "alice", "looking"); err != nil {
		t.Fatal(err)
	}
	resolved, err := rec.ResolveExcept(ctx, "shop", ns, nil, "the app is ready")
	if err != nil || len(resolved) != 1 {
		t.Fatalf("resolve: %v %v", resolved, err)
	}
	if inc, err = rec.Observe(ctx, c); err != nil || inc.Status.State != berthv1.IncidentOpen || inc.Status.Count != 3 {
		t.Fatalf("reopened: %+v, %v", inc.Status, err)
	}
	list, err := rec.List(ctx, ns, "shop")
	if err != nil || len(list) != 1 {
		t.Fatalf("incidents %v, %v: want one", list, err)
	}
	var types []string
	for _, e := range list[0].Status.Timeline {
		types = append(types, e.Type+"/"+e.By)
	}
	if got := strings.Join(types, " "); got != "Opened/ Repeated/ Acknowledged/alice Resolved/ Reopened/" {
		t.Errorf("timeline %s", got)
	}
	if !list[0].Status.FirstSeen.Time.Equal(now) || !list[0].Status.LastSeen.Time.Equal(clock) {
		t.Errorf("first seen %v, last seen %v", list[0].Status.FirstSeen, list[0].Status.LastSeen)
	}
}
