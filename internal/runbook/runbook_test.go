package runbook_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/runbook"
	"berth.dev/berth/internal/testcluster"
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// fixture is the stash test package installed and deployed as an app.
type fixture struct {
	env *lifecycle.Env
	cs  kubernetes.Interface
	app string
	ns  string
}

func (f *fixture) head(t *testing.T) string { return git(t, f.env.WS.Root, "rev-parse", "HEAD") }

// install installs the stash package from testdata as an app in a namespace
// of the test's own, and deploys it.
func install(t *testing.T, values map[string]any) *fixture {
	t.Helper()
	ctx := context.Background()
	cfg := testcluster.Config(t)
	cat, err := filepath.Abs("testdata/catalog")
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: t.TempDir(), Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	set := catalog.NewSet([]catalog.Ref{{Name: "test", Type: catalog.TypeDir, URL: cat}}, map[string]catalog.Source{"test": catalog.NewDirSource(cat)})
	env := &lifecycle.Env{WS: ws, Catalogs: set, Cluster: func() (*rest.Config, error) { return cfg, nil }}
	ns := testcluster.Namespace(t)
	if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "stash", Name: "stash", Namespace: ns, Values: values}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Deploy(ctx, lifecycle.DeployOptions{Apps: []string{"stash"}, Timeout: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env, cs: testcluster.Clientset(t), app: "stash", ns: ns}
}

func (f *fixture) claims(t *testing.T) map[string]corev1.PersistentVolumeClaim {
	t.Helper()
	list, err := f.cs.CoreV1().PersistentVolumeClaims(f.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.PersistentVolumeClaim{}
	for _, c := range list.Items {
		if strings.HasPrefix(c.Name, "data-") {
			out[c.Name] = c
		}
	}
	return out
}

func (f *fixture) healthy(t *testing.T) {
	t.Helper()
	st, err := f.env.Status(context.Background(), f.app)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Health != lifecycle.HealthHealthy {
		t.Errorf("app status %+v, want Healthy", st)
	}
}

func steps(rec *runbook.Record) string {
	var out []string
	for _, s := range rec.Steps {
		out = append(out, s.Action+":"+string(s.Status))
	}
	return strings.Join(out, " ")
}

// TestResizeStorageGrowsEveryClaimAndKeepsThem runs the storage-resize
// runbook from 8Gi to 16Gi on two replicas: both claims and the
// StatefulSet's claim template show 16Gi, no claim was deleted (same UIDs),
// the app is healthy, and the committed run record lists each step and the
// configuration commit.
func TestResizeStorageGrowsEveryClaimAndKeepsThem(t *testing.T) {
	f := install(t, map[string]any{"replicas": 2})
	before := f.claims(t)
	if len(before) != 2 {
		t.Fatalf("claims before: %v, want two", before)
	}
	for n, c := range before {
		if q := c.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "8Gi" {
			t.Fatalf("claim %s is %s before, want 8Gi", n, q.String())
		}
	}
	ctx := context.Background()
	headBefore := f.head(t)

	// A dry run checks and plans, and changes nothing.
	plan, err := runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "resize-storage", Values: map[string]any{"size": "16Gi"}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := steps(plan); got != "config:Planned expandVolumes:Planned" {
		t.Errorf("dry run steps %s", got)
	}
	if d := strings.Join(plan.Steps[1].Detail, "\n"); !strings.Contains(d, "grow persistentvolumeclaim/data-stash-0: 8Gi -> 16Gi") || !strings.Contains(d, "orphan") {
		t.Errorf("dry run plan of the expansion:\n%s", d)
	}
	if f.head(t) != headBefore {
		t.Fatal("a dry run committed")
	}

	rec, err := runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "resize-storage", Values: map[string]any{"size": "16Gi"}})
	if err != nil {
		t.Fatalf("resize: %v\nstate: %s\nnext: %s", err, rec.State, rec.Next)
	}
	if got := steps(rec); got != "config:Succeeded expandVolumes:Succeeded" {
		t.Errorf("steps %s", got)
	}
	after := f.claims(t)
	for n, c := range before {
		a, ok := after[n]
		switch {
		case !ok:
			t.Errorf("claim %s is gone", n)
		case a.UID != c.UID:
			t.Errorf("claim %s was re-created (uid %s, was %s)", n, a.UID, c.UID)
		default:
			if q := a.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "16Gi" {
				t.Errorf("claim %s is %s, want 16Gi", n, q.String())
			}
		}
	}
	sts, err := f.cs.AppsV1().StatefulSets(f.ns).Get(ctx, "stash", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "16Gi" {
		t.Errorf("statefulset claim template is %s, want 16Gi", q.String())
	}
	f.healthy(t)

	// The record is committed, and names the configuration commit.
	if len(rec.Commits) != 1 || len(rec.Steps[0].Commits) != 1 {
		t.Errorf("record commits %v, step commits %v: want the configuration commit", rec.Commits, rec.Steps[0].Commits)
	}
	log := git(t, f.env.WS.Root, "log", "--format=%H %s", headBefore+"..HEAD")
	if lines := strings.Split(log, "\n"); len(lines) != 2 || !strings.Contains(lines[0], "runbook stash resize-storage: succeeded") || !strings.HasPrefix(lines[1], rec.Commits[0]) {
		t.Errorf("commits of the run:\n%s", log)
	}
	if st := git(t, f.env.WS.Root, "status", "--porcelain"); st != "" {
		t.Errorf("workspace dirty after the run:\n%s", st)
	}
	records, err := runbook.Records(f.env.WS, f.app)
	if err != nil || len(records) != 1 || records[0].ID != rec.ID || records[0].Parameters["size"] != "16Gi" || records[0].Who == "" {
		t.Errorf("records %+v, %v", records, err)
	}
}

// TestBackupThenRestoreRunJobsToCompletion backs up (a Job), restores from
// that backup (stop, a Job, start), and refuses a restore from a backup that
// does not exist without changing anything.
func TestBackupThenRestoreRunJobsToCompletion(t *testing.T) {
	f := install(t, nil)
	ctx := context.Background()
	rec, err := runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "backup", Values: map[string]any{"name": "nightly"}})
	if err != nil {
		t.Fatalf("backup: %v (%s)", err, rec.State)
	}
	if got := steps(rec); got != "job:Succeeded" {
		t.Errorf("backup steps %s", got)
	}
	job, err := f.cs.BatchV1().Jobs(f.ns).Get(ctx, "stash-backup-nightly", metav1.GetOptions{})
	if err != nil || job.Status.Succeeded != 1 || job.Labels[runbook.LabelRun] != rec.ID {
		t.Fatalf("backup job: %+v, %v", job.Status, err)
	}

	rec, err = runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "restore", Values: map[string]any{"backup": "nightly"}})
	if err != nil {
		t.Fatalf("restore: %v (%s)", err, rec.State)
	}
	if got := steps(rec); got != "scale:Succeeded job:Succeeded scale:Succeeded" {
		t.Errorf("restore steps %s", got)
	}
	jobs, err := f.cs.BatchV1().Jobs(f.ns).List(ctx, metav1.ListOptions{LabelSelector: runbook.LabelRun + "=" + rec.ID})
	if err != nil || len(jobs.Items) != 1 || jobs.Items[0].Status.Succeeded != 1 {
		t.Fatalf("restore jobs %+v, %v", jobs, err)
	}
	f.healthy(t)
	records, err := runbook.Records(f.env.WS, f.app)
	if err != nil || len(records) != 2 || records[0].Runbook != "backup" || records[1].Runbook != "restore" || records[1].Status != runbook.Succeeded {
		t.Errorf("records %+v, %v", records, err)
	}

	head := f.head(t)
	_, err = runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "restore", Values: map[string]any{"backup": "lost"}})
	var ce *runbook.CheckError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no completed backup called lost") {
		t.Fatalf("restore from a missing backup: %v", err)
	}
	if f.head(t) != head {
		t.Error("a refused restore committed")
	}
	sts, _ := f.cs.AppsV1().StatefulSets(f.ns).Get(ctx, "stash", metav1.GetOptions{})
	if sts == nil || *sts.Spec.Replicas != 1 {
		t.Errorf("a refused restore scaled the store: %+v", sts)
	}
}

// TestBadInputChangesNothing: out of bounds, unknown names, a documentation
// runbook, a size that would shrink the claims: each is a clear error, and
// neither the workspace nor the cluster changes.
func TestBadInputChangesNothing(t *testing.T) {
	f := install(t, nil)
	ctx := context.Background()
	head := f.head(t)
	claims := f.claims(t)
	tests := map[string]struct {
		runbook string
		values  map[string]any
		check   func(error) bool
		want    string
	}{
		"out of bounds": {"resize-storage", map[string]any{"size": "2Ti"}, func(err error) bool { var e *pkgspec.ParamsError; return errors.As(err, &e) },
			`parameter "size": must be at most 1Ti (got 2Ti)`},
		"unknown parameter": {"resize-storage", map[string]any{"size": "16Gi", "sise": "1"}, func(err error) bool { var e *pkgspec.ParamsError; return errors.As(err, &e) },
			`parameter "sise": is not a parameter of runbook resize-storage`},
		"unknown runbook": {"defrag", nil, func(err error) bool { var e *runbook.UnknownRunbookError; return errors.As(err, &e) },
			"has no runbook \"defrag\"; its runbooks are backup, connect, resize-storage, restore, rotate-password, scale"},
		"documentation": {"connect", nil, func(err error) bool { var e *runbook.NotExecutableError; return errors.As(err, &e) },
			"runbook connect is a document to read (runbooks/connect.md"},
		"shrink": {"resize-storage", map[string]any{"size": "4Gi"}, func(err error) bool { var e *runbook.PreflightError; return errors.As(err, &e) },
			"volumes only grow, and 4Gi is smaller; nothing was changed"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec, err := runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: tc.runbook, Values: tc.values})
			if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if rec != nil {
				t.Errorf("a refused run returned a record: %+v", rec)
			}
		})
	}
	if f.head(t) != head {
		t.Error("refused runs committed")
	}
	for n, c := range f.claims(t) {
		if c.UID != claims[n].UID || c.ResourceVersion != claims[n].ResourceVersion {
			t.Errorf("claim %s changed", n)
		}
	}
}

// TestFailedStepStopsTheRunAndSaysHowToGoOn: a Job that fails stops the run
// after it; the record says what state things are in and how to go on, and
// is committed.
func TestFailedStepStopsTheRunAndSaysHowToGoOn(t *testing.T) {
	f := install(t, nil)
	ctx := context.Background()
	// The backup's Job name is taken: the step fails, the restore is never
	// reached. (kwok completes every Job, so a Job cannot fail on its own.)
	if _, err := f.cs.BatchV1().Jobs(f.ns).Create(ctx, jobNamed(f.ns, "stash-backup-taken"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	head := f.head(t)
	rec, err := runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "backup", Values: map[string]any{"name": "taken"}})
	var se *runbook.StepError
	if !errors.As(err, &se) || se.Step != 1 || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("error %v, want step 1 failing", err)
	}
	if rec == nil || rec.Status != runbook.Failed || rec.State == "" || !strings.Contains(rec.Next, "run the runbook again") {
		t.Fatalf("record %+v", rec)
	}
	if got := git(t, f.env.WS.Root, "log", "-1", "--format=%s"); got != "runbook stash backup: failed" || f.head(t) == head {
		t.Errorf("last commit %q, want the failed run's record", got)
	}
}

func jobNamed(ns, name string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "x", Image: "busybox"}},
		}}},
	}
}

// TestRotatePasswordKeepsTheValueOutOfGitAndManifests rotates the password:
// the Job reads it from the run's Secret (deleted after the run), the
// configuration commit stores it encrypted, the deploy puts it in the app's
// Secret, and the record shows "(secret)".
func TestRotatePasswordKeepsTheValueOutOfGitAndManifests(t *testing.T) {
	f := install(t, nil)
	ctx := context.Background()
	const pw = "rotated-Pa55word-for-the-test"
	rec, err := runbook.Run(ctx, f.env, runbook.Options{App: f.app, Runbook: "rotate-password", Values: map[string]any{"password": pw}})
	if err != nil {
		t.Fatalf("rotate: %v (%s)", err, rec.State)
	}
	if got := steps(rec); got != "secret:Succeeded job:Succeeded config:Succeeded deploy:Succeeded" {
		t.Errorf("steps %s", got)
	}
	if rec.Parameters["password"] != "(secret)" {
		t.Errorf("recorded password %q", rec.Parameters["password"])
	}
	sec, err := f.cs.CoreV1().Secrets(f.ns).Get(ctx, "stash", metav1.GetOptions{})
	if err != nil || string(sec.Data["password"]) != pw {
		t.Errorf("the app's Secret does not hold the new password (%v)", err)
	}
	secrets, err := f.cs.CoreV1().Secrets(f.ns).List(ctx, metav1.ListOptions{LabelSelector: runbook.LabelRun + "=" + rec.ID})
	if err != nil || len(secrets.Items) != 0 {
		t.Errorf("the run's Secret outlived it: %v %v", secrets, err)
	}
	job, err := f.cs.BatchV1().Jobs(f.ns).Get(ctx, "stash-rotate-"+rec.ID, metav1.GetOptions{})
	if err != nil || job.Status.Succeeded != 1 || strings.Contains(job.String(), pw) {
		t.Errorf("rotate job: %v (or it carries the password)", err)
	}
	// No stored object holds the password in the clear (the diff of an unlocked
	// clone decrypts; the stored bytes must not).
	if out, err := exec.Command("git", "-C", f.env.WS.Root, "grep", "-I", pw, "HEAD").CombinedOutput(); err == nil {
		t.Errorf("the password is in git:\n%s", out)
	}
	if log := git(t, f.env.WS.Root, "log", "-p", "--no-textconv", "--all"); strings.Contains(log, pw) {
		t.Error("the password is in a commit")
	}
}
