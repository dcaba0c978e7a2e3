package lifecycle

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// writeMirroredChart writes chart hello 0.3.0, whose ConfigMap holds data,
// into dir laid out as a mirror of https://charts.test.example/repo, and
// returns the archive's digest.
func writeMirroredChart(t *testing.T, dir, data string) string {
	t.Helper()
	ch, err := chartloader.LoadFiles([]*archive.BufferedFile{
		{Name: "Chart.yaml", Data: []byte("apiVersion: v2\nname: hello\nversion: 0.3.0\n")},
		{Name: "templates/cm.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata: {v: " + data + "}\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "charts.test.example", "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	tgz, err := chartutil.Save(ch, tmp)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	index := "apiVersion: v1\nentries:\n  hello:\n    - version: 0.3.0\n      urls: [https://charts.test.example/repo/hello-0.3.0.tgz]\n"
	if err := os.WriteFile(filepath.Join(repo, "index.yaml"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "hello-0.3.0.tgz"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return catalog.Digest(b)
}

func TestChartsFromAMirrorAreLockedByDigest(t *testing.T) {
	ctx := context.Background()
	mirror, cat := t.TempDir(), t.TempDir()
	digest := writeMirroredChart(t, mirror, "one")
	files := map[string]string{
		"hello/channels.yaml": "stable: 1.0.0\n",
		"hello/1.0.0/package.yaml": "apiVersion: berth.dev/v1alpha1\nkind: Package\nname: hello\nversion: 1.0.0\ndescription: Hello.\n" +
			"charts:\n  - repo: https://charts.test.example/repo\n    chart: hello\n    version: 0.3.0\n",
	}
	testcluster.WriteFiles(t, cat, files)
	env := newEnv(t, nil)
	set, err := catalog.OpenRefs(t.TempDir(), env.WS.Root, []catalog.Ref{{Name: "test", Type: catalog.TypeDir, URL: cat}})
	if err != nil {
		t.Fatal(err)
	}
	env.Catalogs = set
	// An upstream's own mirror wins over the process's catch-all one
	// (BERTH_CHART_MIRROR, which the test harness sets).
	env.WS.Config.Mirrors = []catalog.Mirror{{Upstream: "https://charts.test.example", Location: filepath.Join(mirror, "charts.test.example")}}

	if _, err := env.Install(ctx, InstallOptions{Package: "hello"}); err != nil {
		t.Fatal(err)
	}
	lock, err := env.WS.Lock()
	if err != nil {
		t.Fatal(err)
	}
	want := []workspace.LockedChart{{ChartRef: catalog.ChartRef{Repo: "https://charts.test.example/repo", Chart: "hello", Version: "0.3.0"}, Digest: digest}}
	if diff := cmp.Diff(want, lock.Charts); diff != "" {
		t.Fatalf("berth.lock charts (-want +got):\n%s", diff)
	}
	objs, err := env.WS.ReadRendered("hello")
	if err != nil || len(objs) == 0 {
		t.Fatalf("rendered hello: %d objects, %v", len(objs), err)
	}

	// The same archive builds to the same workspace: no commit.
	head := git(t, env.WS.Root, "rev-parse", "HEAD")
	if res, err := env.Build(ctx); err != nil || res.Committed {
		t.Fatalf("rebuild with the same archive: %+v, %v", res, err)
	}

	// Another archive under the same chart version is refused, and nothing
	// changes.
	writeMirroredChart(t, mirror, "two")
	_, err = env.Build(ctx)
	var de *catalog.ChartDigestError
	if !errors.As(err, &de) || de.Want != digest || de.Pinned {
		t.Fatalf("build with a changed archive: error %v, want a ChartDigestError against the lock's %s", err, digest)
	}
	if got := git(t, env.WS.Root, "rev-parse", "HEAD"); got != head {
		t.Errorf("the refused build committed %s", got)
	}
	if st := git(t, env.WS.Root, "status", "--porcelain"); st != "" {
		t.Errorf("the refused build left changes:\n%s", st)
	}
}
