package controller

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
)

// managedWorkspace is a workspace whose cluster a running controller manages.
type managedWorkspace struct {
	env *lifecycle.Env
	// direct counts deploy events of deploys this process ran itself.
	direct atomic.Int64
	ns     string // of the Workspace object
}

// newTestEnv makes a workspace (berth init) whose cluster is the shared test
// cluster; events receives the deploy events of deploys the env runs itself.
func newTestEnv(t *testing.T, events func(deploy.Event)) *lifecycle.Env {
	t.Helper()
	ctx := context.Background()
	cfg := testcluster.Config(t)
	home := t.TempDir()
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: home, Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	set, err := catalog.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	return &lifecycle.Env{WS: ws, Catalogs: set, Cluster: func() (*rest.Config, error) { return cfg, nil }, DeployEvents: events}
}

// follow starts a controller for namespace ns and a Workspace there, named
// name, that follows env's repository with its key.
func follow(t *testing.T, env *lifecycle.Env, ns, name string, mutate func(*Options)) {
	t.Helper()
	installCRD(t)
	ctx := context.Background()
	_, keyPath, err := secrets.RepoKey(ctx, env.WS.Root)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	k := kube(t)
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "key"}, Data: map[string][]byte{berthv1.DecryptionKeyKey: key}}); err != nil {
		t.Fatal(err)
	}
	startController(t, ns, mutate)
	createWorkspace(t, k, ns, name, "file://"+env.WS.Root, func(w *berthv1.Workspace) {
		w.Spec.DecryptionRef = &berthv1.LocalSecretReference{Name: "key"}
	})
}

func newManagedWorkspace(t *testing.T) *managedWorkspace {
	t.Helper()
	m := &managedWorkspace{ns: testcluster.Namespace(t)}
	m.env = newTestEnv(t, func(deploy.Event) { m.direct.Add(1) })
	follow(t, m.env, m.ns, "managed", nil)
	return m
}

func (m *managedWorkspace) deploy(t *testing.T, what string) {
	t.Helper()
	res, err := m.env.Deploy(context.Background(), lifecycle.DeployOptions{Timeout: 4 * time.Minute})
	if err != nil {
		t.Fatalf("deploy after %s: %v", what, err)
	}
	for _, a := range res.Apps {
		if a.State != deploy.StateReady {
			t.Errorf("after %s app %s is %s: %s", what, a.App, a.State, a.Error)
		}
	}
	if n := m.direct.Load(); n != 0 {
		t.Fatalf("after %s the command applied %d events itself while a controller manages the cluster", what, n)
	}
}

func statefulSetJSON(t *testing.T, ns, name string) string {
	t.Helper()
	sts, err := testcluster.Clientset(t).AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(sts.Spec)
	return string(data)
}

// With a controller managing the cluster, install, config, upgrade, rollback
// and uninstall commit, push, let the controller apply and follow it: the
// command applies nothing itself, nothing is re-created during an uninstall,
// nothing is left afterwards, and the Workspace is Ready.
func TestCommandsConvergeThroughTheController(t *testing.T) {
	m := newManagedWorkspace(t)
	ctx := context.Background()
	env := m.env
	app := testcluster.UniqueName(t, 20)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), app, metav1.DeleteOptions{})
	})
	ctrl, err := env.Controller(ctx)
	if err != nil || ctrl == nil {
		t.Fatalf("Controller() = %v, %v: want the Workspace following this repository", ctrl, err)
	}

	if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "redis@7.4.1", Name: app, Namespace: app}); err != nil {
		t.Fatal(err)
	}
	m.deploy(t, "install")
	if spec := statefulSetJSON(t, app, app); !strings.Contains(spec, "7.4.1") {
		t.Fatalf("after install the StatefulSet is not at 7.4.1: %s", spec)
	}

	if _, err := env.Config(ctx, lifecycle.ConfigOptions{App: app, Values: map[string]any{"evictionPolicy": "allkeys-lru"}}); err != nil {
		t.Fatal(err)
	}
	m.deploy(t, "config")
	if spec := statefulSetJSON(t, app, app); !strings.Contains(spec, "allkeys-lru") {
		t.Errorf("the config change did not reach the cluster: %s", spec)
	}

	if _, err := env.Upgrade(ctx, lifecycle.UpgradeOptions{Apps: []string{app}, To: "7.4.2"}); err != nil {
		t.Fatal(err)
	}
	m.deploy(t, "upgrade")
	if spec := statefulSetJSON(t, app, app); !strings.Contains(spec, "7.4.2") {
		t.Errorf("the upgrade did not reach the cluster: %s", spec)
	}

	if _, err := env.Rollback(ctx, lifecycle.RollbackOptions{App: app}); err != nil {
		t.Fatal(err)
	}
	m.deploy(t, "rollback")
	if spec := statefulSetJSON(t, app, app); !strings.Contains(spec, "7.4.1") || strings.Contains(spec, "7.4.2") {
		t.Errorf("the rollback did not reach the cluster: %s", spec)
	}

	// Uninstall: watch the app's objects; none may be created again.
	cs := testcluster.Clientset(t)
	sel := metav1.ListOptions{LabelSelector: "berth.dev/app=" + app}
	w, err := cs.CoreV1().ConfigMaps(app).Watch(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	sw, err := cs.AppsV1().StatefulSets(app).Watch(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()
	var recreated atomic.Int64
	startOfUninstall := time.Now().Add(-time.Second)
	count := func(ch <-chan watch.Event) {
		for ev := range ch {
			if ev.Type == watch.Added {
				if o, ok := ev.Object.(metav1.Object); ok && o.GetDeletionTimestamp() == nil && o.GetCreationTimestamp().After(startOfUninstall) {
					recreated.Add(1)
				}
			}
		}
	}
	go count(w.ResultChan())
	go count(sw.ResultChan())
	if _, err := env.Uninstall(ctx, lifecycle.UninstallOptions{App: app, Timeout: 4 * time.Minute}); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if n := m.direct.Load(); n != 0 {
		t.Errorf("uninstall deleted objects itself (%d events) while a controller manages the cluster", n)
	}
	if n := recreated.Load(); n != 0 {
		t.Errorf("%d objects of the app were created again during the uninstall", n)
	}
	for _, list := range []func() (int, error){
		func() (int, error) { l, err := cs.AppsV1().StatefulSets(app).List(ctx, sel); return len(l.Items), err },
		func() (int, error) { l, err := cs.CoreV1().ConfigMaps(app).List(ctx, sel); return len(l.Items), err },
		func() (int, error) { l, err := cs.CoreV1().Services(app).List(ctx, sel); return len(l.Items), err },
	} {
		if n, err := list(); err != nil || n != 0 {
			t.Errorf("after uninstall %d objects of the app are left (%v)", n, err)
		}
	}
	ws := waitWorkspace(t, kube(t), m.ns, "managed", time.Minute, func(ws *berthv1.Workspace) (bool, string) {
		return appStatus(ws, app) == nil && isTrue(ws.Status.Conditions, berthv1.ConditionReady), describe(ws)
	})
	if ws.Status.LastAppliedRevision == "" {
		t.Errorf("the Workspace has no applied revision after the uninstall: %s", describe(ws))
	}
}
