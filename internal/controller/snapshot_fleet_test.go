package controller

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/workspace"
)

// TestReadSnapshotOfAFleetClusterReadsItsDirectoryOnly checks that a
// controller whose Workspace names a cluster of a fleet applies the apps
// rendered under rendered/CLUSTER/ and no others, with their objects for
// that cluster.
func TestReadSnapshotOfAFleetClusterReadsItsDirectoryOnly(t *testing.T) {
	ctx := context.Background()
	ws, err := workspace.Init(ctx, filepath.Join(t.TempDir(), "ws"), workspace.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string][]string{"dev": {"web"}, "prod-eu": {"web", "db"}}
	err = ws.Change(ctx, "fleet", []string{"apps", "rendered"}, func() error {
		for _, app := range []string{"web", "db"} {
			if err := ws.WriteApp(&workspace.App{Name: app, Package: "p", Namespace: "ns"}); err != nil {
				return err
			}
		}
		for cluster, apps := range placed {
			for _, app := range apps {
				objs := []*unstructured.Unstructured{configMap(app+"-config", map[string]string{"cluster": cluster})}
				if _, err := ws.WriteRenderedIn(ctx, cluster, app, objs); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	commit := headCommit(t, ws.Root)
	// A fresh cache per read, then one cache for every read: the same
	// commit read for another cluster is not the snapshot read before.
	shared := newSnapshotCache()
	for _, cache := range []*snapshotCache{nil, shared, shared} {
		for cluster, want := range placed {
			c := cache
			if c == nil {
				c = newSnapshotCache()
			}
			checkFleetSnapshot(t, commit, cluster, want, c)
		}
	}
	// The same commit, directory and cluster again: the apps read before.
	first, _ := readSnapshot(commit, "", "dev", nil, shared)
	again, err := readSnapshot(commit, "", "dev", nil, shared)
	if err != nil || len(again.Apps) != 1 || again.Apps[0] != first.Apps[0] {
		t.Errorf("the same commit was read again instead of reused: %v", err)
	}
}

func checkFleetSnapshot(t *testing.T, commit *object.Commit, cluster string, want []string, cache *snapshotCache) {
	t.Helper()
	snap, err := readSnapshot(commit, "", cluster, nil, cache)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range snap.Apps {
		got = append(got, a.Name)
		if a.Err != nil {
			t.Fatalf("cluster %s app %s: %v", cluster, a.Name, a.Err)
		}
		if v, _, _ := unstructured.NestedString(a.Objects[0].Object, "data", "cluster"); v != cluster {
			t.Errorf("cluster %s app %s: read the objects rendered for %q", cluster, a.Name, v)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("cluster %s applies %v, want %v", cluster, got, want)
	}
}
