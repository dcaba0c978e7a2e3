package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/incident"
	"berth.dev/berth/internal/testcluster"
)

// day2App installs the runbook test package (a StatefulSet with a claim
// template) from its own catalog, deployed; it returns berth's home, the
// workspace and the app (also its namespace).
func day2App(t *testing.T) (home, ws, name string) {
	t.Helper()
	cryptoEnv(t)
	kc := kubeconfig(t)
	home = t.TempDir()
	name = testcluster.UniqueName(t, 20)
	ws = filepath.Join(t.TempDir(), "ws")
	cat, err := filepath.Abs("../runbook/testdata/catalog")
	if err != nil {
		t.Fatal(err)
	}
	mustBerth(t, home, "init", ws, "--kubeconfig", kc)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	mustBerth(t, home, "catalog", "add", "team", cat, "-C", ws)
	mustBerth(t, home, "install", "stash", "--name", name, "-n", name, "--yes", "-C", ws, "--timeout", "2m")
	return home, ws, name
}

// TestLogsAndEventsOfAnApp prints every container's lines prefixed with
// pod/container, follows a pod started after 'logs -f' began, and lists the
// app's Events.
func TestLogsAndEventsOfAnApp(t *testing.T) {
	home, ws, name := day2App(t)
	out := mustBerth(t, home, "logs", name, "-C", ws)
	if !strings.Contains(out, name+"-0/stash starting") || !strings.Contains(out, name+"-0/stash ready") {
		t.Errorf("logs:\n%s", out)
	}
	out = mustBerth(t, home, "logs", name, "-o", "json", "-C", ws)
	var first struct{ Pod, Container, Line string }
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first); err != nil || first.Pod != name+"-0" || first.Container != "stash" || first.Line == "" {
		t.Errorf("logs -o json first line %+v (%v):\n%s", first, err, out)
	}
	if r := berth(t, home, "logs", name, "worker", "-C", ws); r.code == 0 || !strings.Contains(r.err, `no component "worker"; its workloads are [statefulset/`+name+"]") {
		t.Errorf("logs of an unknown component: exit %d\n%s", r.code, r.err)
	}

	// Follow, then start a second replica: its lines join the stream.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- Execute(ctx, &App{Out: &stdout, Err: &stderr, Home: home}, []string{"logs", name, "-f", "-C", ws})
	}()
	testcluster.WaitFor(t, time.Minute, func(context.Context) (bool, string, error) {
		return strings.Contains(stdout.String(), name+"-0/stash ready"), stdout.String(), nil
	})
	cs := testcluster.Clientset(t)
	if _, err := cs.AppsV1().StatefulSets(name).Patch(context.Background(), name, types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 2*time.Minute, func(context.Context) (bool, string, error) {
		return strings.Contains(stdout.String(), name+"-1/stash ready"), stdout.String() + stderr.String(), nil
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("logs -f ended with %d:\n%s", code, stderr.String())
	}

	testcluster.WaitFor(t, time.Minute, func(context.Context) (bool, string, error) {
		r := berth(t, home, "events", name, "-C", ws)
		return r.code == 0 && strings.Contains(r.out, "pod/"+name+"-0") && strings.Contains(r.out, "SuccessfulCreate"), r.out + r.err, nil
	})
	var evs []struct{ Reason, Object string }
	if err := json.Unmarshal([]byte(mustBerth(t, home, "events", name, "-o", "json", "-C", ws)), &evs); err != nil || len(evs) == 0 {
		t.Errorf("events -o json: %v %v", evs, err)
	}
}

// TestRunbookCommands lists, shows and runs runbooks through the CLI: bad
// input exits non-zero and names the fix, a dry run changes nothing, a run
// is listed among the runs.
func TestRunbookCommands(t *testing.T) {
	home, ws, name := day2App(t)
	out := mustBerth(t, home, "runbook", "list", name, "-C", ws)
	for _, want := range []string{"connect", "document", "resize-storage", "steps", "restore"} {
		if !strings.Contains(out, want) {
			t.Errorf("runbook list lacks %q:\n%s", want, out)
		}
	}
	if out := mustBerth(t, home, "runbook", "show", name, "connect", "-C", ws); !strings.Contains(out, "port-forward") {
		t.Errorf("runbook show of a document:\n%s", out)
	}
	if out := mustBerth(t, home, "runbook", "show", name, "restore", "-C", ws); !strings.Contains(out, "backup (string, required") || !strings.Contains(out, "2. load the backup (job)") {
		t.Errorf("runbook show of steps:\n%s", out)
	}
	head := git(t, ws, "rev-parse", "HEAD")
	for args, want := range map[string]string{
		"resize-storage --set size=2Ti":  `parameter "size": must be at most 1Ti`,
		"defrag":                         "'berth runbook list " + name + "' shows them",
		"restore --set backup=none":      "no completed backup called none",
		"resize-storage --set size=nope": "must be a size",
	} {
		r := berth(t, home, append([]string{"runbook", "run", name, "-C", ws}, strings.Fields(args)...)...)
		if r.code == 0 || !strings.Contains(r.err, want) {
			t.Errorf("runbook run %s: exit %d, want an error containing %q:\n%s", args, r.code, want, r.err)
		}
	}
	out = mustBerth(t, home, "runbook", "run", name, "resize-storage", "--set", "size=16Gi", "--dry-run", "-C", ws)
	if !strings.Contains(out, "Plan of runbook resize-storage") || !strings.Contains(out, "storage: 8Gi -> 16Gi") {
		t.Errorf("dry run:\n%s", out)
	}
	if got := git(t, ws, "rev-parse", "HEAD"); got != head {
		t.Fatal("refused runs or a dry run committed")
	}
	out = mustBerth(t, home, "runbook", "run", name, "backup", "--set", "name=cli", "-C", ws)
	if !strings.Contains(out, "Runbook backup on "+name+": Succeeded") || !strings.Contains(out, "job/"+name+"-backup-cli completed") {
		t.Errorf("backup:\n%s", out)
	}
	if out := mustBerth(t, home, "runbook", "runs", name, "-C", ws); !strings.Contains(out, "backup") || !strings.Contains(out, "Succeeded") {
		t.Errorf("runbook runs:\n%s", out)
	}
}

// installIncidentCRD installs berth's CRDs, the Incident's among them.
func installIncidentCRD(t *testing.T) { testcluster.InstallCRDs(t, testcluster.Config(t)) }

// TestIncidentsCommandsAndACrashLoopInStatus: a crash-looping pod (its status
// made so through the API) is named in 'berth status'; the incident the
// controller would open for it is listed, shown, acknowledged and resolved
// by hand.
func TestIncidentsCommandsAndACrashLoopInStatus(t *testing.T) {
	home, ws, name := day2App(t)
	ctx := context.Background()
	cs := testcluster.Clientset(t)
	pod, err := cs.CoreV1().Pods(name).Get(ctx, name+"-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := &pod.Status.ContainerStatuses[0]
	st.Ready, st.RestartCount = false, 6
	st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", FinishedAt: metav1.Now()}}
	for i, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			pod.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	if _, err := cs.CoreV1().Pods(name).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, time.Minute, func(context.Context) (bool, string, error) {
		r := berth(t, home, "status", name, "-C", ws)
		return strings.Contains(r.out, "statefulset/"+name) && strings.Contains(r.out, "CrashLoopBackOff (restarted 6 times)"), r.out + r.err, nil
	})

	installIncidentCRD(t)
	s := runtime.NewScheme()
	_ = berthv1.AddToScheme(s)
	c, err := client.New(testcluster.Config(t), client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	var pods corev1.PodList
	pods.Items = []corev1.Pod{*pod}
	causes := incident.Detect(name, name, pods.Items, func(*corev1.Pod) (string, bool) { return "statefulset/" + name, true }, time.Now())
	if len(causes) != 1 {
		t.Fatalf("causes %+v", causes)
	}
	if _, err := (&incident.Recorder{Client: c}).Observe(ctx, causes[0]); err != nil {
		t.Fatal(err)
	}
	inc := causes[0].Name()
	if out := mustBerth(t, home, "incidents", "-C", ws, "--app", name); !strings.Contains(out, inc) || !strings.Contains(out, "CrashLooping") || !strings.Contains(out, "Open") {
		t.Errorf("incidents:\n%s", out)
	}
	var listed []berthv1.Incident
	if err := json.Unmarshal([]byte(mustBerth(t, home, "incidents", "list", "-o", "json", "-C", ws, "--app", name)), &listed); err != nil || len(listed) != 1 || listed[0].Spec.Object != "statefulset/"+name {
		t.Errorf("incidents -o json: %+v %v", listed, err)
	}
	mustBerth(t, home, "incidents", "ack", inc, "--note", "looking", "-C", ws)
	out := mustBerth(t, home, "incidents", "show", inc, "-C", ws)
	if !strings.Contains(out, "state:   Acknowledged") || !strings.Contains(out, "Acknowledged by berth test <test@berth.invalid>  looking") {
		t.Errorf("show after ack:\n%s", out)
	}
	mustBerth(t, home, "incidents", "resolve", inc, "-C", ws)
	if out := mustBerth(t, home, "incidents", "-C", ws, "--app", name); !strings.Contains(out, "No open incidents") {
		t.Errorf("incidents after resolve:\n%s", out)
	}
	if out := mustBerth(t, home, "incidents", "--all", "-C", ws, "--app", name); !strings.Contains(out, "Resolved") {
		t.Errorf("incidents --all:\n%s", out)
	}
	if r := berth(t, home, "incidents", "show", "nope-"+name, "-C", ws, "-n", name); r.code == 0 || !strings.Contains(r.err, "no incident \"nope-"+name+"\"; the incidents are "+inc) {
		t.Errorf("show of an unknown incident: exit %d\n%s", r.code, r.err)
	}
}
