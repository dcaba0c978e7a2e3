package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/upgrades/upgradestest"
)

var upgradesParis, _ = time.LoadLocation("Europe/Paris")

// upgradesFixture is a workspace reading a test catalog, installed as one
// app, and a controller with upgrades on a test clock managing it.
type upgradesFixture struct {
	ns, app string
	cat     *upgradestest.Catalog
	w       *upgradestest.Workspace
	clock   *upgradestest.Clock
}

func newUpgradesFixture(t *testing.T, rules, appUpgrade string) *upgradesFixture {
	t.Helper()
	installCRD(t)
	ctx := context.Background()
	f := &upgradesFixture{ns: testcluster.Namespace(t), app: testcluster.UniqueName(t, 20)}
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), f.app, metav1.DeleteOptions{})
	})
	f.cat = upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	f.w = upgradestest.NewWorkspace(t, f.cat, rules)
	f.w.Install(t, f.app, appUpgrade)
	// Monday 03:00 in Paris: inside the nightly window.
	f.clock = upgradestest.NewClock(time.Date(2026, 12, 7, 3, 0, 0, 0, upgradesParis))
	_, keyPath, err := secrets.RepoKey(ctx, f.w.WS.Root)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	k := kube(t)
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "key"}, Data: map[string][]byte{berthv1.DecryptionKeyKey: key}}); err != nil {
		t.Fatal(err)
	}
	startController(t, f.ns, func(o *Options) {
		o.Upgrades = UpgradeOptions{Enabled: true, Clock: f.clock, Executable: testcluster.BerthBinary(t), Tick: 100 * time.Millisecond}
	})
	createWorkspace(t, k, f.ns, "ws", "file://"+f.w.WS.Root, func(w *berthv1.Workspace) {
		w.Spec.DecryptionRef = &berthv1.LocalSecretReference{Name: "key"}
		w.Spec.Timeout = metav1.Duration{Duration: 3 * time.Second}
		w.Spec.Upgrades = &berthv1.UpgradesSpec{Interval: metav1.Duration{Duration: 500 * time.Millisecond}}
	})
	waitWorkspace(t, k, f.ns, "ws", 5*time.Minute, readyAt(f.w.Git(t, "rev-parse", "main")))
	return f
}

// locked is the version of the app in berth.lock at main.
func (f *upgradesFixture) locked(t *testing.T) string {
	t.Helper()
	lock, err := f.w.WS.Lock()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := lock.Get("app:" + f.app)
	return in.Version
}

func (f *upgradesFixture) configMap(t *testing.T, name string) (*corev1.ConfigMap, error) {
	t.Helper()
	return testcluster.Clientset(t).CoreV1().ConfigMaps(f.app).Get(context.Background(), name, metav1.GetOptions{})
}

// An auto upgrade inside a maintenance window: the new catalog version is
// committed to main by the controller, deployed and healthy, and nothing is
// left in flight.
func TestUpgradesAutoInsideAWindowIsCommittedDeployedAndHealthy(t *testing.T) {
	f := newUpgradesFixture(t, `windows:
- {name: nightly, days: [mon], start: "02:00", duration: 3h, timeZone: Europe/Paris}
default: {policy: auto}
`, "")
	k := kube(t)
	before := f.w.Git(t, "rev-parse", "main")
	f.cat.Publish(t, "1.1.0", "1.1.0")
	var head string
	ws := waitWorkspace(t, k, f.ns, "ws", 5*time.Minute, func(ws *berthv1.Workspace) (bool, string) {
		head = f.w.Git(t, "rev-parse", "main")
		if head == before {
			return false, "main not moved yet; " + describe(ws)
		}
		ok, state := readyAt(head)(ws)
		return ok && ws.Status.Upgrades != nil && len(ws.Status.Upgrades.InFlight) == 0, state
	})
	if v := f.locked(t); v != "1.1.0" {
		t.Errorf("main has %s at %s, want 1.1.0", f.app, v)
	}
	if msg := f.w.Git(t, "log", "-1", "--format=%an: %s", head); msg != "berth controller: upgrade "+f.app+": upfixture 1.0.0 -> 1.1.0" {
		t.Errorf("the upgrade commit is %q", msg)
	}
	if cm, err := f.configMap(t, "hello-extra"); err != nil || cm.Data["added"] != "1.1.0" {
		t.Errorf("the object 1.1.0 adds is not deployed: %v", err)
	}
	if a := appStatus(ws, f.app); a == nil || !apimeta.IsStatusConditionTrue(a.Conditions, berthv1.ConditionReady) || a.AppliedRevision != head {
		t.Errorf("app status = %+v", a)
	}
}

// An auto upgrade that never becomes healthy is rolled back by a commit,
// deployed, and the version is held: later checks do not bring it again.
func TestUpgradesNeverHealthyIsRolledBackAndNotRetried(t *testing.T) {
	f := newUpgradesFixture(t, "default: {policy: auto, timeout: 2m}\n", "")
	k := kube(t)
	before := f.w.Git(t, "rev-parse", "main")
	f.cat.Publish(t, "1.2.0", "1.2.0")
	// Committed, deployed, and not healthy.
	waitWorkspace(t, k, f.ns, "ws", 5*time.Minute, func(ws *berthv1.Workspace) (bool, string) {
		u := ws.Status.Upgrades
		a := appStatus(ws, f.app)
		return u != nil && len(u.InFlight) == 1 && u.InFlight[0].To == "1.2.0" && a != nil && a.Health != "" &&
			apimeta.IsStatusConditionFalse(a.Conditions, berthv1.ConditionReady), fmt.Sprintf("%s; upgrades %+v; app %+v", describe(ws), u, a)
	})
	upgraded := f.w.Git(t, "rev-parse", "main")
	if upgraded == before {
		t.Fatal("main did not move")
	}
	// Past the deadline on the controller's clock.
	f.clock.Add(3 * time.Minute)
	var head string
	ws := waitWorkspace(t, k, f.ns, "ws", 5*time.Minute, func(ws *berthv1.Workspace) (bool, string) {
		head = f.w.Git(t, "rev-parse", "main")
		ok, state := readyAt(head)(ws)
		return ok && head != upgraded && ws.Status.Upgrades != nil && len(ws.Status.Upgrades.InFlight) == 0, state
	})
	if v := f.locked(t); v != "1.0.0" {
		t.Errorf("after the rollback main has %s at %s, want 1.0.0", f.app, v)
	}
	if body := f.w.Git(t, "log", "--format=%B", upgraded+"..main"); !strings.Contains(body, "Rolled back by the berth controller") || !strings.Contains(body, "not healthy within 2m0s") {
		t.Errorf("the rollback's commits do not say why:\n%s", body)
	}
	if _, err := testcluster.Clientset(t).AppsV1().Deployments(f.app).Get(context.Background(), "hello-broken", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the broken version's Deployment is still there: %v", err)
	}
	if cm, err := f.configMap(t, "hello"); err != nil || cm.Data["version"] != "1.0.0" {
		t.Errorf("hello is not back at 1.0.0: %+v, %v", cm, err)
	}
	var held bool
	for _, a := range ws.Status.Upgrades.Available {
		held = held || (a.App == f.app && a.To == "1.2.0" && a.State == "held")
	}
	if !held {
		t.Errorf("1.2.0 is not listed as held: %+v", ws.Status.Upgrades.Available)
	}
	// Three more checks (three more polls of the catalog): main stays.
	polls := f.cat.Requests.Load()
	testcluster.WaitFor(t, 3*time.Minute, func(context.Context) (bool, string, error) {
		return f.cat.Requests.Load() >= polls+3, "waiting for three more checks", nil
	})
	if got := f.w.Git(t, "rev-parse", "main"); got != head {
		t.Errorf("the rolled back version was tried again: main moved to %s", got)
	}
}

// POST /hooks/catalog asks every Workspace whose webhook token it carries
// for a check of its catalogs; another token is refused.
func TestCatalogHookAsksTheWorkspacesWithTheToken(t *testing.T) {
	installCRD(t)
	ctx := context.Background()
	ns := testcluster.Namespace(t)
	k := kube(t)
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"}, Data: map[string][]byte{berthv1.WebhookTokenKey: []byte("s3cret")}}); err != nil {
		t.Fatal(err)
	}
	createWorkspace(t, k, ns, "signed", "https://git.example.com/a.git", func(w *berthv1.Workspace) {
		w.Spec.WebhookSecretRef = &berthv1.LocalSecretReference{Name: "hook"}
	})
	createWorkspace(t, k, ns, "unsigned", "https://git.example.com/b.git", nil)
	h := &catalogHook{client: k, reader: k, log: logr.Discard()}
	post := func(auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/hooks/catalog", strings.NewReader(`{}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, auth := range []string{"", "Bearer wrong"} {
		if rec := post(auth); rec.Code != http.StatusUnauthorized {
			t.Errorf("token %q: %d %s", auth, rec.Code, rec.Body)
		}
	}
	rec := post("Bearer s3cret")
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), ns+"/signed") || strings.Contains(rec.Body.String(), "unsigned") {
		t.Fatalf("good token: %d %s", rec.Code, rec.Body)
	}
	var ws berthv1.Workspace
	if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signed"}, &ws); err != nil {
		t.Fatal(err)
	}
	if ws.Annotations[berthv1.AnnotationUpgradeCheckRequestedAt] == "" {
		t.Error("the check was not recorded on the Workspace")
	}
}
