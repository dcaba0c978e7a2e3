package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/workspace"
)

// TestReadCommitDecodesEveryAppAsItsOwn reads a commit of many apps, which
// the controller decodes in parallel: each app gets its own objects in file
// order and its digest, a malformed app fails alone (no digest, the file
// named), and a second commit that changes one app decodes that one only.
func TestReadCommitDecodesEveryAppAsItsOwn(t *testing.T) {
	ctx := context.Background()
	ws, err := workspace.Init(ctx, filepath.Join(t.TempDir(), "ws"), workspace.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	write := func(version string) *object.Commit {
		t.Helper()
		err := ws.Change(ctx, "apps "+version, []string{"apps", "rendered"}, func() error {
			for i := range n {
				app := fmt.Sprintf("app-%02d", i)
				if err := ws.WriteApp(&workspace.App{Name: app, Package: "p", Namespace: "ns"}); err != nil {
					return err
				}
				v := "1"
				if i == 7 {
					v = version // only app-07 changes between the commits
				}
				objs := []*unstructured.Unstructured{
					configMap(app+"-a", map[string]string{"app": app, "v": v}),
					configMap(app+"-b", map[string]string{"app": app, "v": v}),
				}
				if _, err := ws.WriteRendered(ctx, app, objs); err != nil {
					return err
				}
			}
			if err := ws.WriteApp(&workspace.App{Name: "broken", Package: "p", Namespace: "ns"}); err != nil {
				return err
			}
			dir := filepath.Join(ws.Root, workspace.RenderedDir, "broken")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("kind: [unterminated\n"), 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
		return headCommit(t, ws.Root)
	}
	cache := newSnapshotCache()
	first, err := readCommit(write("1"), "", "", nil, cache)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*appSpec{}
	for _, a := range first.Apps {
		byName[a.Name] = a
	}
	if len(byName) != n+1 {
		t.Fatalf("read %d apps, want %d", len(byName), n+1)
	}
	for i := range n {
		a := byName[fmt.Sprintf("app-%02d", i)]
		if a.Err != nil || a.Digest == "" || len(a.Objects) != 2 {
			t.Fatalf("%s: err %v, digest %q, %d objects; want 2 objects and a digest", a.Name, a.Err, a.Digest, len(a.Objects))
		}
		for j, suffix := range []string{"-a", "-b"} {
			o := a.Objects[j]
			if o.GetName() != a.Name+suffix || o.Object["data"].(map[string]any)["app"] != a.Name {
				t.Errorf("%s: object %d is %s of %v, want %s%s of its own", a.Name, j, o.GetName(), o.Object["data"], a.Name, suffix)
			}
		}
	}
	broken := byName["broken"]
	if broken.Err == nil || !strings.Contains(broken.Err.Error(), "bad.yaml") || broken.Digest != "" || broken.Objects != nil {
		t.Errorf("broken: err %v, digest %q, %d objects; want an error naming bad.yaml, no digest and no objects", broken.Err, broken.Digest, len(broken.Objects))
	}

	second, err := readCommit(write("2"), "", "", nil, cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range second.Apps {
		if a.Name == "broken" {
			continue
		}
		prev := byName[a.Name]
		same := len(a.Objects) > 0 && a.Objects[0] == prev.Objects[0]
		if changed := a.Name == "app-07"; same == changed {
			t.Errorf("%s: objects reused from the first commit: %v, want %v (decoded again only when the app changed)", a.Name, same, !changed)
		}
	}
}
