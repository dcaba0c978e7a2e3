package controller

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/workspace"
)

// BenchmarkReadSnapshot reads a workspace of 1,000 and 5,000 apps x 10
// objects from a commit fetched into the controller's cache, as every
// reconcile does: cold (a new controller) and
// cached (the same commit again: a periodic reconcile with nothing pushed).
// Time per app should not grow with the number of apps.
func BenchmarkReadSnapshot(b *testing.B) {
	for _, apps := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("apps=%d", apps), func(b *testing.B) { benchmarkReadSnapshot(b, apps) })
	}
}

func benchmarkReadSnapshot(b *testing.B, apps int) {
	ctx := context.Background()
	ws, err := workspace.Init(ctx, filepath.Join(b.TempDir(), "ws"), workspace.InitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	const objects = 10
	err = ws.Change(ctx, "apps", []string{workspace.AppsDir, workspace.RenderedDir}, func() error {
		for i := range apps {
			name := fmt.Sprintf("app-%04d", i)
			if err := ws.WriteApp(&workspace.App{Name: name, Package: "p", Namespace: "ns"}); err != nil {
				return err
			}
			var objs []*unstructured.Unstructured
			for j := range objects {
				objs = append(objs, configMap(fmt.Sprintf("%s-%d", name, j), map[string]string{"v": "1"}))
			}
			if _, err := ws.WriteRendered(ctx, name, objs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// Read from a fetched cache, as the controller reads: a packfile.
	f, err := fetch(ctx, filepath.Join(b.TempDir(), "cache"), ws.Root, "main", gitAuth{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.close()
	commit := f.commit
	cache := newSnapshotCache()
	for _, name := range []string{"cold", "cached"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				c := cache
				if name == "cold" {
					c = newSnapshotCache()
				}
				snap, err := readSnapshot(commit, "", "", nil, c)
				if err != nil {
					b.Fatal(err)
				}
				if len(snap.Apps) != apps {
					b.Fatalf("%d apps", len(snap.Apps))
				}
			}
		})
	}
}
