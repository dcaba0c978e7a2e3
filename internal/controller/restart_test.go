package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/testcluster"
)

// TestRecoversFromAPIServerRestart stops a cluster of its own (etcd and API
// server included) under a running controller and starts it again: without
// being restarted, the controller applies the next commit and repairs drift
// again, so its watches came back.
func TestRecoversFromAPIServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of its own")
	}
	ctx := context.Background()
	home := testcluster.Home(t)
	name := testcluster.UniqueName(t, 20)
	up := func() *localcluster.Cluster {
		t.Helper()
		c, _, err := localcluster.Up(ctx, localcluster.UpOptions{Home: home, Name: name, Nodes: 1, BinDir: testcluster.BinDir(t)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cl := up()
	t.Cleanup(func() {
		_, _ = localcluster.Down(context.Background(), localcluster.DownOptions{Home: home, Name: name, Purge: true})
	})
	cfg, err := cl.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	installCRDOn(t, cfg)
	k := kubeFor(t, cfg)
	ns := "ws"
	appNS := "apps"
	for _, n := range []string{ns, appNS} {
		if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: objectMeta(n)}); err != nil {
			t.Fatal(err)
		}
	}
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	r.app("app", appNS, []*unstructured.Unstructured{configMap("app", map[string]string{"v": "1"})}, nil)
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, nil)
	startControllerOn(t, cfg, ns, nil)
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))

	if _, err := localcluster.Down(ctx, localcluster.DownOptions{Home: home, Name: name}); err != nil {
		t.Fatal(err)
	}
	r.app("app", appNS, []*unstructured.Unstructured{configMap("app", map[string]string{"v": "2"})}, nil)
	r.push()
	if c2 := up(); c2.APIServerURL() != cl.APIServerURL() {
		t.Fatalf("the API server came back at %s, not %s", c2.APIServerURL(), cl.APIServerURL())
	}
	requestFetch(t, k, ns, "main")
	waitWorkspace(t, k, ns, "main", 2*time.Minute, readyAt(r.head()))
	if cm := getCM(t, k, appNS, "app"); cm.Data["v"] != "2" {
		t.Errorf("after the restart: %v", cm.Data)
	}
	old := getCM(t, k, appNS, "app")
	if err := k.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	waitCM(t, k, appNS, "app", 30*time.Second, func(cm *corev1.ConfigMap) bool { return cm != nil && cm.UID != old.UID })
}
