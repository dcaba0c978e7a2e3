package controller

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
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
