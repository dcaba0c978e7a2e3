package workspace

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/secrets"
)

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func commitCount(t *testing.T, dir string) int {
	t.Helper()
	return len(strings.Fields(gitOut(t, dir, "rev-list", "HEAD")))
}

func newWorkspace(t *testing.T) *Workspace {
	t.Helper()
	w, err := Init(context.Background(), filepath.Join(t.TempDir(), "ws"), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestInitCreatesACommittedWorkspaceAndRefusesToRedoIt(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	if got := gitOut(t, w.Root, "log", "--format=%s"); got != "initialise berth workspace" {
		t.Errorf("history = %q", got)
	}
	if st := gitOut(t, w.Root, "status", "--porcelain"); st != "" {
		t.Errorf("workspace not clean after init:\n%s", st)
	}
	if w.Config.Defaults.Channel != "stable" {
		t.Errorf("default channel = %q, want stable", w.Config.Defaults.Channel)
	}
	if _, err := Init(ctx, w.Root, InitOptions{}); err == nil || !strings.Contains(err.Error(), "already holds a berth workspace") {
		t.Fatalf("second init: %v", err)
	}
	sub := filepath.Join(w.Root, "apps")
	opened, err := Open(sub)
	if err != nil {
		t.Fatal(err)
	}
	if opened.Root != w.Root || opened.Config.Kind != "Workspace" {
		t.Errorf("Open from a subdirectory found %+v", opened)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNotWorkspace) || !strings.Contains(err.Error(), "berth init") {
		t.Errorf("Open outside a workspace: %v", err)
	}
}

func TestInitAdoptsAnExistingRepository(t *testing.T) {
	dir := t.TempDir()
	gitOut(t, dir, "init", "--quiet")
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, dir, "add", "README")
	gitOut(t, dir, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "--quiet", "-m", "user's commit")
	// An uncommitted file of the user's is neither committed nor touched.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("draft"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(context.Background(), dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := gitOut(t, dir, "log", "--format=%s"); got != "initialise berth workspace\nuser's commit" {
		t.Errorf("history = %q", got)
	}
	if st := gitOut(t, dir, "status", "--porcelain"); st != "?? notes.txt" {
		t.Errorf("status = %q, want only the user's untracked file", st)
	}
}

func TestChangeCommitsOnlyItsPathsAndNothingWhenNothingChanged(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	before := commitCount(t, w.Root)
	// The user has an unrelated change in progress.
	if err := os.WriteFile(w.Abs("USER.md"), []byte("wip"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func() error { return w.WriteFile("apps/web/app.yaml", []byte("a: 1\n")) }
	committed, err := w.ChangeCommitted(ctx, "install web", []string{"apps/web"}, write)
	if err != nil || !committed {
		t.Fatalf("first change: committed=%v err=%v", committed, err)
	}
	if got := gitOut(t, w.Root, "show", "--name-only", "--format=%s", "HEAD"); got != "install web\n\napps/web/app.yaml" {
		t.Errorf("HEAD = %q, want the one file", got)
	}
	committed, err = w.ChangeCommitted(ctx, "install web again", []string{"apps/web"}, write)
	if err != nil || committed {
		t.Fatalf("identical change: committed=%v err=%v, want no commit", committed, err)
	}
	if got := commitCount(t, w.Root); got != before+1 {
		t.Errorf("%d commits, want %d", got, before+1)
	}
	if st := gitOut(t, w.Root, "status", "--porcelain"); st != "?? USER.md" {
		t.Errorf("status = %q, want the user's file untouched", st)
	}
}

func TestChangeRefusesDirtyPathsAndRollsBackFailures(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	if err := w.Change(ctx, "v1", []string{"apps/web"}, func() error {
		return w.WriteFile("apps/web/app.yaml", []byte("v: 1\n"))
	}); err != nil {
		t.Fatal(err)
	}
	head := gitOut(t, w.Root, "rev-parse", "HEAD")

	// A half-done change is undone: the modified file comes back, the new one goes.
	boom := errors.New("render failed")
	err := w.Change(ctx, "v2", []string{"apps/web", "rendered/web"}, func() error {
		if err := w.WriteFile("apps/web/app.yaml", []byte("v: 2\n")); err != nil {
			return err
		}
		if err := w.WriteFile("rendered/web/configmap_x.yaml", []byte("kind: ConfigMap\n")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the change's own error", err)
	}
	if data, _ := w.ReadFile("apps/web/app.yaml"); string(data) != "v: 1\n" {
		t.Errorf("app.yaml after rollback = %q", data)
	}
	if _, err := os.Stat(w.Abs("rendered/web/configmap_x.yaml")); !os.IsNotExist(err) {
		t.Errorf("file written by the failed change survived: %v", err)
	}
	if gitOut(t, w.Root, "rev-parse", "HEAD") != head || gitOut(t, w.Root, "status", "--porcelain") != "" {
		t.Error("the failed change left a commit or changes behind")
	}

	// Uncommitted edits in a path berth would rewrite stop the change before it starts.
	if err := os.WriteFile(w.Abs("apps/web/app.yaml"), []byte("v: hand-edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	called := false
	err = w.Change(ctx, "v3", []string{"apps/web"}, func() error { called = true; return nil })
	var dirty *DirtyError
	if !errors.As(err, &dirty) || !slices.Equal(dirty.Paths, []string{"apps/web/app.yaml"}) {
		t.Fatalf("got %v, want DirtyError naming apps/web/app.yaml", err)
	}
	if called {
		t.Error("the change ran despite the dirty path")
	}
	if data, _ := w.ReadFile("apps/web/app.yaml"); string(data) != "v: hand-edited\n" {
		t.Errorf("the user's edit was lost: %q", data)
	}
}

func obj(apiVersion, kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}}
	if ns != "" {
		u.SetNamespace(ns)
	}
	return u
}

// encrypted sets up encryption of the default secret paths; the filter binary
// is never run by these tests, which do not commit secrets.
func encrypted(t *testing.T, w *Workspace) {
	t.Helper()
	if _, err := secrets.Init(context.Background(), w.Root, secrets.InitOptions{Home: t.TempDir(), Executable: "/unused/berth"}); err != nil {
		t.Fatal(err)
	}
}

func TestWriteRenderedKeepsOneStableFilePerObject(t *testing.T) {
	w := newWorkspace(t)
	encrypted(t, w)
	objs := []*unstructured.Unstructured{
		obj("v1", "ConfigMap", "web", "settings"),
		obj("apps/v1", "Deployment", "web", "web"),
		obj("v1", "Secret", "web", "web-db"),
		obj("cert-manager.io/v1", "Certificate", "web", "web"),
		obj("v1", "Namespace", "", "web"),
	}
	written, err := w.WriteRendered(context.Background(), "web", objs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"rendered/web/certificate.cert-manager.io_web_web.yaml",
		"rendered/web/configmap_web_settings.yaml",
		"rendered/web/deployment.apps_web_web.yaml",
		"rendered/web/namespace_web.yaml",
		"rendered/web/secrets/secret_web_web-db.yaml",
	}
	if diff := cmp.Diff(want, written); diff != "" {
		t.Fatalf("written files (-want +got):\n%s", diff)
	}
	back, err := w.ReadRendered("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(objs) {
		t.Fatalf("read back %d objects, want %d", len(back), len(objs))
	}
	// Dropping an object removes its file and nothing else.
	if _, err := w.WriteRendered(context.Background(), "web", objs[:4]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Abs("rendered/web/namespace_web.yaml")); !os.IsNotExist(err) {
		t.Errorf("file of a removed object still exists: %v", err)
	}
	if _, err := w.WriteRendered(context.Background(), "web", []*unstructured.Unstructured{obj("v1", "ConfigMap", "a", "x"), obj("v1", "ConfigMap", "a", "x")}); err == nil {
		t.Error("two objects with one file name were accepted")
	}
}

func TestHistoryAndRestoreBringBackAnEarlierRevision(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	paths := []string{"apps/web"}
	step := func(msg string, files map[string]string) {
		t.Helper()
		err := w.Change(ctx, msg, paths, func() error {
			for rel, data := range files {
				if err := w.WriteFile(rel, []byte(data)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	step("install web 1.0", map[string]string{"apps/web/app.yaml": "version: 1.0\n"})
	step("upgrade web 2.0", map[string]string{"apps/web/app.yaml": "version: 2.0\n", "apps/web/secrets.yaml": "x\n"})
	revs, err := w.History(ctx, paths...)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, r := range revs {
		subjects = append(subjects, r.Subject)
	}
	if diff := cmp.Diff([]string{"upgrade web 2.0", "install web 1.0"}, subjects); diff != "" {
		t.Fatalf("history (-want +got):\n%s", diff)
	}
	if _, err := w.Restore(ctx, revs[1].Hash[:8], "rollback web to 1.0", paths...); err != nil {
		t.Fatal(err)
	}
	if data, _ := w.ReadFile("apps/web/app.yaml"); string(data) != "version: 1.0\n" {
		t.Errorf("app.yaml after restore = %q", data)
	}
	if _, err := os.Stat(w.Abs("apps/web/secrets.yaml")); !os.IsNotExist(err) {
		t.Errorf("a file added after the revision survived the restore: %v", err)
	}
	if got := gitOut(t, w.Root, "log", "-1", "--format=%s"); got != "rollback web to 1.0" {
		t.Errorf("HEAD = %q", got)
	}
	if _, err := w.Restore(ctx, "no-such-rev", "x", paths...); err == nil || !strings.Contains(err.Error(), "berth history") {
		t.Errorf("unknown revision: %v", err)
	}
}

func TestLockRoundTripIsSortedAndStable(t *testing.T) {
	w := newWorkspace(t)
	l := &Lock{Instances: []LockInstance{
		{Key: "shared:cert-manager", Role: "shared", Package: "cert-manager", Version: "1.15.0"},
		{Key: "app:airflow/postgresql", Role: "component", Package: "postgresql", Version: "16.4.0"},
		{Key: "app:airflow", Role: "app", Package: "airflow", Version: "2.9.1", Dependencies: map[string]string{"postgresql": "app:airflow/postgresql"}},
	}}
	if err := w.WriteLock(l); err != nil {
		t.Fatal(err)
	}
	first, _ := w.ReadFile(LockFile)
	back, err := w.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if back.Instances[0].Key != "app:airflow" {
		t.Errorf("instances not sorted: %+v", back.Instances)
	}
	if err := w.WriteLock(back); err != nil {
		t.Fatal(err)
	}
	second, _ := w.ReadFile(LockFile)
	if string(first) != string(second) {
		t.Errorf("rewriting the same lock changed its bytes:\n%s\n---\n%s", first, second)
	}
	if in, ok := back.Get("app:airflow"); !ok || in.Dependencies["postgresql"] != "app:airflow/postgresql" {
		t.Errorf("Get(app:airflow) = %+v, %v", in, ok)
	}
}

func TestSecretsNeverLandInPlaintext(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	// Without encryption set up, a rendered Secret is refused, not written.
	_, err := w.WriteRendered(ctx, "web", []*unstructured.Unstructured{obj("v1", "Secret", "web", "db")})
	if !errors.Is(err, secrets.ErrNotSecretPath) {
		t.Fatalf("writing a Secret without encryption: %v, want ErrNotSecretPath", err)
	}
	if _, err := os.Stat(w.Abs("rendered/web/secrets/secret_web_db.yaml")); !os.IsNotExist(err) {
		t.Errorf("the refused Secret was written: %v", err)
	}

	// A secret path whose filter is missing (a clone that never ran unlock): the
	// leak guard stops the commit and the change is undone.
	if err := w.Change(ctx, "mark secrets", []string{".gitattributes"}, func() error {
		return w.WriteFile(".gitattributes", []byte("apps/*/secrets.yaml filter=git-crypt diff=git-crypt\n"))
	}); err != nil {
		t.Fatal(err)
	}
	head := gitOut(t, w.Root, "rev-parse", "HEAD")
	err = w.Change(ctx, "add a secret", []string{"apps/web"}, func() error {
		return w.WriteFile("apps/web/secrets.yaml", []byte("password: hunter2hunter2\n"))
	})
	if err == nil {
		t.Fatal("a plaintext secret was committed")
	}
	if gitOut(t, w.Root, "rev-parse", "HEAD") != head {
		t.Error("the guard let a commit through")
	}
	if st := gitOut(t, w.Root, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Errorf("the refused change left files behind:\n%s", st)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error shows the secret: %v", err)
	}
}

// An app name the workspace accepts must be one the deploy engine accepts:
// installing a 48-character name used to succeed and fail at deploy.
func TestValidateAppNameFollowsTheDeployEngine(t *testing.T) {
	if err := ValidateAppName(strings.Repeat("a", 47)); err != nil {
		t.Errorf("47 characters: %v", err)
	}
	if err := ValidateAppName(strings.Repeat("a", 48)); err == nil {
		t.Errorf("48 characters: accepted, but the deploy engine refuses it")
	}
}
