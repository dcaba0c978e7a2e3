package controller

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/testcluster"
)

// eventLog records a deploy's events.
type eventLog struct {
	mu     sync.Mutex
	events []deploy.Event
}

func (l *eventLog) add(ev deploy.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

// phases returns, per app, the objects of each phase in the order applied.
func (l *eventLog) phases() map[string][][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][][]string{}
	for _, ev := range l.events {
		if ev.Type != deploy.EventPhase {
			continue
		}
		var refs []string
		for _, r := range ev.Objects {
			refs = append(refs, r.String())
		}
		slices.Sort(refs)
		out[ev.App] = append(out[ev.App], refs)
	}
	return out
}

// index returns the position of the first event of app that matches.
func (l *eventLog) index(app string, match func(deploy.Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ev := range l.events {
		if ev.App == app && match(ev) {
			return i
		}
	}
	return -1
}

func inventory(t *testing.T, eng *apply.Engine, app, ns string) []string {
	t.Helper()
	inv, err := eng.Inventory(context.Background(), app, ns)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range inv.Entries {
		out = append(out, en.Ref().String())
	}
	return out
}

// The CLI and the controller deploy through one library: the same workspace
// gives the same objects, in the same phases, in the same order; and under
// the controller airflow's migration Job completes before its Deployments are
// applied.
func TestCLIAndControllerDeployTheSameWay(t *testing.T) {
	ctx := context.Background()
	cfg := testcluster.Config(t)
	cli := &eventLog{}
	env := newTestEnv(t, cli.add)
	app := testcluster.UniqueName(t, 20)
	if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "airflow", Name: app, Namespace: app}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), app, metav1.DeleteOptions{})
	})

	// Through the CLI (no controller manages the cluster for this repository).
	if _, err := env.Deploy(ctx, lifecycle.DeployOptions{Timeout: 3 * time.Minute}); err != nil {
		t.Fatalf("CLI deploy: %v", err)
	}
	eng, err := apply.NewEngine(cfg, apply.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	cliObjects := inventory(t, eng, app, app)
	if len(cliObjects) == 0 {
		t.Fatal("the CLI deploy recorded no objects")
	}
	// Remove the app, so the controller starts from nothing.
	d := deploy.New(eng, dynamic.NewForConfigOrDie(cfg))
	if r := d.Remove(ctx, &deploy.App{Name: app, Namespace: app}, deploy.Options{Timeout: 2 * time.Minute}); r.Err != nil {
		t.Fatalf("removing the app: %v", r.Err)
	}

	// Through the controller.
	ns := testcluster.Namespace(t)
	ctrl := &eventLog{}
	follow(t, env, ns, "parity", func(o *Options) { o.DeployEvents = func(_ string, ev deploy.Event) { ctrl.add(ev) } })
	k := kube(t)
	rev := strings.TrimSpace(run(t, env.WS.Root, "git", "rev-parse", "HEAD"))
	waitWorkspace(t, k, ns, "parity", 4*time.Minute, readyAt(rev))

	if diff := cmp.Diff(cliObjects, inventory(t, eng, app, app)); diff != "" {
		t.Errorf("objects (-CLI +controller):\n%s", diff)
	}
	if diff := cmp.Diff(cli.phases(), ctrl.phases()); diff != "" {
		t.Errorf("phases (-CLI +controller):\n%s", diff)
	}
	if n := len(cli.phases()[app]); n < 3 {
		t.Errorf("airflow was deployed in %d phases, want its components, its migration and its main objects apart", n)
	}
	isMigration := func(ev deploy.Event) bool {
		return ev.Type == deploy.EventObject && ev.Apply.Type == apply.EventReady && ev.Apply.Object.Kind == "Job"
	}
	isDeployment := func(ev deploy.Event) bool {
		return ev.Type == deploy.EventObject && ev.Apply.Type == apply.EventApplied && ev.Apply.Object.Kind == "Deployment" && ev.Apply.Action == apply.ActionCreate
	}
	job, dep := ctrl.index(app, isMigration), ctrl.index(app, isDeployment)
	if job < 0 || dep < 0 || job > dep {
		t.Errorf("under the controller the migration Job completed at event %d and the first Deployment was created at event %d: want the Job first", job, dep)
	}
}
