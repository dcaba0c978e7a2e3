package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/testcluster"
)

// TestAppStatusesWriteWhatTheServerLacks: a new WorkspaceApp has no status
// on the server; the first write must still hold every required field (an
// app found up to date applied 0 objects), and a later change clears what it
// no longer says (the last error).
func TestAppStatusesWriteWhatTheServerLacks(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	k := kube(t)
	ws := createWorkspace(t, k, ns, "main", "https://git.example.com/ws.git", nil)
	s := newAppStatuses(k)
	ctx := context.Background()
	failed := berthv1.AppStatus{Name: "web", Namespace: "apps", LastError: "boom", Inventory: berthv1.InventorySummary{Objects: 3}}
	if err := s.write(ctx, ws, map[string]berthv1.AppStatus{"web": failed}); err != nil {
		t.Fatalf("first write of an app that applied nothing: %v", err)
	}
	ready := berthv1.AppStatus{Name: "web", Namespace: "apps", AppliedRevision: "abc", Inventory: berthv1.InventorySummary{Objects: 3}}
	if err := s.write(ctx, ws, map[string]berthv1.AppStatus{"web": ready}); err != nil {
		t.Fatal(err)
	}
	var got berthv1.WorkspaceApp
	if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: berthv1.WorkspaceAppName("main", "web")}, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ready, got.Status); diff != "" {
		t.Errorf("stored status (-want +got):\n%s", diff)
	}
	// A process that starts afterwards reads it back; an app gone is deleted.
	fresh := newAppStatuses(k)
	prev, err := fresh.load(ctx, ws)
	if err != nil || prev["web"].AppliedRevision != "abc" {
		t.Fatalf("load after a restart: %+v, %v", prev, err)
	}
	if err := fresh.write(ctx, ws, map[string]berthv1.AppStatus{}); err != nil {
		t.Fatal(err)
	}
	var list berthv1.WorkspaceAppList
	if err := k.List(ctx, &list, client.InNamespace(ns)); err != nil || len(list.Items) != 0 {
		t.Errorf("WorkspaceApps after the app left: %d, %v", len(list.Items), err)
	}
}

// An app's state is written as soon as the app is done, while the others
// still deploy: during a long sync 'berth status' shows the apps that are
// ready, instead of nothing until the last app is.
func TestAnAppsStateIsWrittenWhileOthersStillDeploy(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	// slow never becomes healthy: its claim asks for a storage class that
	// does not exist, so it waits for the whole timeout.
	pvc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "PersistentVolumeClaim",
		"metadata": map[string]any{"name": "data"},
		"spec": map[string]any{
			"accessModes":      []any{"ReadWriteOnce"},
			"storageClassName": "no-such-class",
			"resources":        map[string]any{"requests": map[string]any{"storage": "1Gi"}},
		},
	}}
	r.app("slow", appNS, []*unstructured.Unstructured{pvc}, nil)
	r.app("quick", appNS, []*unstructured.Unstructured{configMap("quick", map[string]string{"v": "1"})}, nil)
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, func(ws *berthv1.Workspace) {
		ws.Spec.Timeout = metav1.Duration{Duration: 10 * time.Minute}
	})
	startController(t, ns, func(o *Options) { o.Workers = 2 })
	ws := waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		quick := appStatus(ws, "quick")
		return quick != nil && isTrue(quick.Conditions, berthv1.ConditionReady), describe(ws)
	})
	// The reconcile that applied quick is still waiting for slow.
	if appStatus(ws, "slow") != nil {
		t.Errorf("slow has a state before its wait ended: %+v", appStatus(ws, "slow"))
	}
	if c := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
		t.Errorf("the workspace is Ready while slow waits: %+v", c)
	}
}

// A first sync writes each app's state once: the write made as the app is
// done is not made again at the end of the reconcile.
func TestAFirstSyncWritesEachAppsStateOnce(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	apps := []string{"one", "two", "three"}
	for _, a := range apps {
		r.app(a, appNS, []*unstructured.Unstructured{configMap(a, map[string]string{"v": "1"})}, nil)
	}
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, nil)
	ctl := startController(t, ns, nil)
	ws := waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	// The apps are new to the controller: their inventories are created
	// without being read first.
	ctl.counter.mu.Lock()
	if reads := ctl.counter.inventoryReads; len(reads) != 0 {
		t.Errorf("a first sync read inventories: %v", reads)
	}
	ctl.counter.mu.Unlock()
	// Each app's WorkspaceApp is created with its state, in one request.
	// Each app's inventory is written once, after its objects: the
	// Workspace notes the commit it installs before any of them, which
	// names what a stop in between would leave, and clears it after.
	var writes []string
	noted, objects := false, 0
	inventories := map[string]int{}
	for _, w := range ctl.counter.take() {
		switch {
		case !strings.HasPrefix(w, "GET ") && strings.Contains(w, "/workspaceapps"):
			writes = append(writes, w)
		case strings.HasSuffix(w, "/workspaces/main/status"):
			noted = true
		case strings.Contains(w, "/configmaps/"):
			objects++
			if !noted {
				t.Errorf("%s was written before the Workspace noted the install", w)
			}
		case strings.Contains(w, "/secrets"):
			inventories[w]++
		}
	}
	create := "POST /api/v1/namespaces/" + appNS + "/secrets"
	if objects != len(apps) || len(inventories) != 1 || inventories[create] != len(apps) {
		t.Errorf("%d ConfigMap writes and inventory writes %v; want %d and %d creations alone", objects, inventories, len(apps), len(apps))
	}
	if ws.Status.InstallingRevision != "" {
		t.Errorf("installingRevision %s is still noted after the first sync", ws.Status.InstallingRevision)
	}
	if len(writes) != len(apps) {
		t.Errorf("%d writes of WorkspaceApps, want %d (one create per app): %v", len(writes), len(apps), writes)
	}
	for _, w := range writes {
		if !strings.HasPrefix(w, "POST ") {
			t.Errorf("%s: want only the create of each app's WorkspaceApp", w)
		}
	}
	for _, a := range apps {
		var got berthv1.WorkspaceApp
		if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: berthv1.WorkspaceAppName("main", a)}, &got); err != nil || got.Status.AppliedRevision != r.head() {
			t.Errorf("WorkspaceApp of %s: applied revision %q, %v; want %s", a, got.Status.AppliedRevision, err, r.head())
		}
	}
}
