package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/testcluster"
)

// installWorkspaceCRD installs berth's CRDs (the Workspace's, and the
// WorkspaceApp's the console watches) as bootstrap does.
func installWorkspaceCRD(t *testing.T) { testcluster.InstallCRDs(t, testcluster.Config(t)) }

func TestSuspendResumeAndReconcileGoToTheControllersWorkspace(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := berthv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var kc crclient.Client
	key := crclient.ObjectKey{Name: "workspace"}
	f := newFixtureWith(t, func(f *fixture) {
		// A Workspace following this repository: what bootstrap leaves for
		// the controller. No controller runs; the console's requests to it
		// are what this test checks.
		installWorkspaceCRD(t)
		var err error
		if kc, err = crclient.New(f.cfg, crclient.Options{Scheme: scheme}); err != nil {
			t.Fatal(err)
		}
		key.Namespace = testcluster.Namespace(t)
		branch := f.git("branch", "--show-current")
		ws := &berthv1.Workspace{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}, Spec: berthv1.WorkspaceSpec{URL: "file://" + f.env.WS.Root, Branch: branch}}
		if err := kc.Create(context.Background(), ws); err != nil {
			t.Fatal(err)
		}
	})
	admin := newClient(t, f.url)
	admin.get("/signin?token=" + url.QueryEscape(f.srv.Token()))
	appPath := "/apps/" + f.app
	_, page := admin.get(appPath)
	if !strings.Contains(page, `id="suspend"`) {
		t.Fatalf("the app page offers no Suspend while a controller's Workspace follows the repository")
	}
	token := admin.csrf(appPath)
	get := func() *berthv1.Workspace {
		var ws berthv1.Workspace
		if err := kc.Get(context.Background(), key, &ws); err != nil {
			t.Fatal(err)
		}
		return &ws
	}

	if status, body := admin.post(appPath+"/suspend", url.Values{"csrf": {token}}); status != http.StatusOK || !strings.Contains(body, "Suspended") {
		t.Fatalf("suspend = %d:\n%s", status, body)
	}
	if ws := get(); !slices.Contains(ws.Spec.SuspendedApps, f.app) {
		t.Errorf("Workspace suspendedApps = %v, want %s", ws.Spec.SuspendedApps, f.app)
	}
	// The overview learns it from its watch on the Workspace.
	testcluster.WaitFor(t, 30*time.Second, func(context.Context) (bool, string, error) {
		_, body := admin.get("/?health=suspended")
		return strings.Contains(body, `data-app="`+f.app+`"`), "the app is not listed as suspended", nil
	})

	if status, _ := admin.post(appPath+"/resume", url.Values{"csrf": {token}}); status != http.StatusOK {
		t.Fatalf("resume = %d", status)
	}
	if ws := get(); slices.Contains(ws.Spec.SuspendedApps, f.app) {
		t.Errorf("Workspace suspendedApps = %v after resume", ws.Spec.SuspendedApps)
	}

	if status, body := admin.post(appPath+"/reconcile", url.Values{"csrf": {token}}); status != http.StatusOK || !strings.Contains(body, "Asked the controller to reconcile") {
		t.Fatalf("reconcile = %d:\n%s", status, body)
	}
	if ws := get(); ws.Annotations[berthv1.AnnotationReconcileRequestedAt] == "" {
		t.Errorf("no %s annotation after Reconcile now", berthv1.AnnotationReconcileRequestedAt)
	}
}
