package controller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

const syncTimeout = 60 * time.Second

// getCM reads a ConfigMap, nil when it does not exist.
func getCM(t *testing.T, c client.Client, ns, name string) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cm)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &cm
}

func waitCM(t *testing.T, c client.Client, ns, name string, timeout time.Duration, cond func(*corev1.ConfigMap) bool) {
	t.Helper()
	testcluster.WaitFor(t, timeout, func(ctx context.Context) (bool, string, error) {
		var cm corev1.ConfigMap
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm)
		if apierrors.IsNotFound(err) {
			return cond(nil), "configmap " + name + " absent", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return cond(&cm), fmt.Sprintf("configmap %s data %v", name, cm.Data), nil
	})
}

func signGitHub(body []byte, token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestSyncCommitsAndWebhook covers the first sync of a workspace whose app
// depends on a shared instance, a new commit found by polling, and a push
// announced by a signed webhook.
func TestSyncCommitsAndWebhook(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	r.app("web", appNS, []*unstructured.Unstructured{configMap("web", map[string]string{"v": "1"})}, nil)
	r.app("cache", appNS, []*unstructured.Unstructured{configMap("cache", map[string]string{"v": "1"})}, nil)
	r.lock(&workspace.Lock{Instances: []workspace.LockInstance{
		{Key: "app:web", Role: "app", Package: "web", Version: "1.0.0", Dependencies: map[string]string{"cache": "shared:cache"}},
		{Key: "shared:cache", Role: "shared", Package: "cache", Version: "1.0.0"},
	}})
	r.push()
	const token = "s3cret-token"
	if err := k.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"}, Data: map[string][]byte{"token": []byte(token)}}); err != nil {
		t.Fatal(err)
	}
	createWorkspace(t, k, ns, "main", r.URL, func(ws *berthv1.Workspace) {
		ws.Spec.Interval = metav1.Duration{Duration: time.Second}
		ws.Spec.WebhookSecretRef = &berthv1.LocalSecretReference{Name: "hook"}
	})
	ctl := startController(t, ns, nil)

	// First sync.
	ws := waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	for _, name := range []string{"web", "cache"} {
		if cm := getCM(t, k, appNS, name); cm == nil || cm.Data["v"] != "1" {
			t.Errorf("configmap %s after the first sync: %+v", name, cm)
		}
		a := appStatus(ws, name)
		if a == nil || a.AppliedRevision != r.head() || a.Inventory.Objects != 1 || !isTrue(a.Conditions, berthv1.ConditionReady) {
			t.Errorf("status of app %s: %+v", name, a)
		}
	}
	// Each app's state is a WorkspaceApp of its own, owned by the Workspace
	// (garbage-collected with it); the Workspace counts them.
	for _, a := range workspaceApps(ws) {
		if a.Name != berthv1.WorkspaceAppName("main", a.Spec.App) || !metav1.IsControlledBy(&a, ws) || a.Labels[berthv1.LabelWorkspace] != "main" {
			t.Errorf("WorkspaceApp %s: name, owner %v or labels %v are not the workspace's", a.Name, a.OwnerReferences, a.Labels)
		}
	}
	if got := ws.Status.Apps; got.Total != 2 || got.Ready != 2 {
		t.Errorf("the Workspace counts its apps as %+v, want 2 ready of 2", got)
	}
	// The shared dependency was applied, and healthy, before its user.
	web, cache := getCM(t, k, appNS, "web"), getCM(t, k, appNS, "cache")
	if web.CreationTimestamp.Before(&cache.CreationTimestamp) {
		t.Errorf("web created at %s before its dependency cache at %s", web.CreationTimestamp, cache.CreationTimestamp)
	}

	// A new commit, picked up by polling (interval 1s). It changes web only:
	// cache's WorkspaceApp is not written (it keeps the revision it was
	// applied from), so a push costs one write per app it changes.
	first := r.head()
	before := map[string]berthv1.WorkspaceApp{}
	for _, a := range workspaceApps(ws) {
		before[a.Spec.App] = a
	}
	r.app("web", appNS, []*unstructured.Unstructured{configMap("web", map[string]string{"v": "2"})}, nil)
	r.push()
	ws = waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	if cm := getCM(t, k, appNS, "web"); cm.Data["v"] != "2" {
		t.Errorf("web after the second commit: %v", cm.Data)
	}
	for _, a := range workspaceApps(ws) {
		switch a.Spec.App {
		case "cache":
			if a.ResourceVersion != before["cache"].ResourceVersion || a.Status.AppliedRevision != first {
				t.Errorf("cache, which the commit left as it was, was written (resourceVersion %s -> %s) or moved to revision %s", before["cache"].ResourceVersion, a.ResourceVersion, a.Status.AppliedRevision)
			}
		case "web":
			if a.Status.AppliedRevision != r.head() || a.Status.Digest == before["web"].Status.Digest {
				t.Errorf("web after the commit that changed it: revision %s digest %s, want %s and a new digest", a.Status.AppliedRevision, a.Status.Digest, r.head())
			}
		}
	}

	// A push announced by a webhook, with polling out of the way.
	var cur berthv1.Workspace
	if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "main"}, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Interval = metav1.Duration{Duration: time.Hour}
	if err := k.Update(context.Background(), &cur); err != nil {
		t.Fatal(err)
	}
	waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		return ws.Status.ObservedGeneration == ws.Generation, describe(ws)
	})
	r.app("web", appNS, []*unstructured.Unstructured{configMap("web", map[string]string{"v": "3"})}, nil)
	r.push()
	hooks := httptest.NewServer(ctl.c.Handler())
	defer hooks.Close()
	payload := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"clone_url":%q}}`, r.head(), r.URL))
	post := func(sig string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, hooks.URL+"/hooks/git", bytes.NewReader(payload))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := post(signGitHub(payload, "wrong")); code != http.StatusUnauthorized {
		t.Fatalf("webhook with a bad signature: %d %s", code, body)
	}
	if cm := getCM(t, k, appNS, "web"); cm.Data["v"] != "2" {
		t.Fatalf("an unsigned push was applied: %v", cm.Data)
	}
	start := time.Now()
	if code, body := post(signGitHub(payload, token)); code != http.StatusAccepted || !strings.Contains(body, ns+"/main") {
		t.Fatalf("signed webhook: %d %s", code, body)
	}
	waitCM(t, k, appNS, "web", 10*time.Second, func(cm *corev1.ConfigMap) bool { return cm != nil && cm.Data["v"] == "3" })
	t.Logf("push to applied through the webhook: %s", time.Since(start))
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))

	// Removing an app from the workspace deletes its objects.
	err := r.ws.Change(context.Background(), "remove web", []string{workspace.AppDir("web"), workspace.AppRenderedDir("web"), workspace.LockFile}, func() error {
		if err := removeAll(r.ws.Abs(workspace.AppDir("web"))); err != nil {
			return err
		}
		if err := removeAll(r.ws.Abs(workspace.AppRenderedDir("web"))); err != nil {
			return err
		}
		return r.ws.WriteLock(&workspace.Lock{Instances: []workspace.LockInstance{{Key: "shared:cache", Role: "shared", Package: "cache", Version: "1.0.0"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	r.push()
	requestFetch(t, k, ns, "main")
	ws = waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	if getCM(t, k, appNS, "web") != nil || appStatus(ws, "web") != nil {
		t.Errorf("app web removed from git but still there: status %+v", appStatus(ws, "web"))
	}
	if getCM(t, k, appNS, "cache") == nil {
		t.Error("cache was deleted along with web")
	}
}

// TestDriftRepair covers drift by delete and by edit, repaired from watch events,
// changes to fields berth does not own left alone, the per-object opt-out, and
// zero writes in a steady state.
func TestDriftRepair(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	scaled := configMap("scaled", map[string]string{"replicas": "3", "keep": "yes"})
	scaled.SetAnnotations(map[string]string{berthv1.AnnotationIgnoreFields: "data.replicas"})
	r.app("app", appNS, []*unstructured.Unstructured{
		configMap("deleted", map[string]string{"v": "1"}),
		configMap("edited", map[string]string{"v": "1"}),
		configMap("other", map[string]string{"v": "1"}),
		configMap("sentinel", map[string]string{"v": "1"}),
		scaled,
		deployment("web"),
	}, nil)
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, nil)
	ctl := startController(t, ns, nil)
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	ctx := context.Background()

	// A steady state writes nothing: a fetch of an unchanged branch.
	ctl.counter.take()
	before := ctl.metric(t, "berth_reconcile_duration_seconds")
	requestFetch(t, k, ns, "main")
	testcluster.WaitFor(t, syncTimeout, func(context.Context) (bool, string, error) {
		n := ctl.metric(t, "berth_reconcile_duration_seconds")
		return n > before, fmt.Sprintf("%v reconciles", n), nil
	})
	if w := ctl.counter.take(); len(w) != 0 {
		t.Errorf("a reconcile of an unchanged workspace wrote: %v", w)
	}

	// Deleted: back, by a watch event (no reconcile is requested). How fast
	// is measured by the benchmark (bench/controller), not here: a timed
	// assertion is flaky on a loaded machine.
	old := getCM(t, k, appNS, "deleted")
	if err := k.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	waitCM(t, k, appNS, "deleted", 30*time.Second, func(cm *corev1.ConfigMap) bool { return cm != nil && cm.UID != old.UID })

	// Edited (a field berth owns, by another manager): back.
	cm := getCM(t, k, appNS, "edited")
	cm.Data["v"] = "hand-edit"
	if err := k.Update(ctx, cm, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	waitCM(t, k, appNS, "edited", 30*time.Second, func(cm *corev1.ConfigMap) bool { return cm != nil && cm.Data["v"] == "1" })

	// Fields berth does not own, and fields the object opts out of, are
	// left alone: no write at all.
	ctl.counter.take()
	other := getCM(t, k, appNS, "other")
	other.Labels["team"] = "payments"
	other.Data["extra"] = "added-by-hand"
	if err := k.Update(ctx, other, client.FieldOwner("someone")); err != nil {
		t.Fatal(err)
	}
	sc := getCM(t, k, appNS, "scaled")
	if _, ok := sc.Data["replicas"]; ok {
		t.Errorf("a field listed in %s was applied: %v", berthv1.AnnotationIgnoreFields, sc.Data)
	}
	sc.Data["replicas"] = "7"
	if err := k.Update(ctx, sc, client.FieldOwner("hpa")); err != nil {
		t.Fatal(err)
	}
	// Status written by another controller: not berth's either.
	cs := testcluster.Clientset(t)
	dep, err := cs.AppsV1().Deployments(appNS).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dep.Status.Conditions = append(dep.Status.Conditions, appsv1.DeploymentCondition{Type: "Audited", Status: corev1.ConditionTrue, Reason: "ByHand"})
	if _, err := cs.AppsV1().Deployments(appNS).UpdateStatus(ctx, dep, metav1.UpdateOptions{FieldManager: "auditor"}); err != nil {
		t.Fatal(err)
	}
	// The sentinel's repair happens after those events were seen (same
	// order of events, same debounce).
	sentinel := getCM(t, k, appNS, "sentinel")
	if err := k.Delete(ctx, sentinel); err != nil {
		t.Fatal(err)
	}
	waitCM(t, k, appNS, "sentinel", 5*time.Second, func(cm *corev1.ConfigMap) bool { return cm != nil && cm.UID != sentinel.UID })
	writes := ctl.counter.take()
	for _, w := range writes {
		if strings.Contains(w, "/configmaps/other") || strings.Contains(w, "/configmaps/scaled") || strings.Contains(w, "/deployments/") {
			t.Errorf("berth wrote an object whose non-owned or opted-out fields changed: %s", w)
		}
	}
	if got := getCM(t, k, appNS, "other"); got.Data["extra"] != "added-by-hand" || got.Labels["team"] != "payments" {
		t.Errorf("non-owned changes undone: %v %v", got.Labels, got.Data)
	}
	if got := getCM(t, k, appNS, "scaled"); got.Data["replicas"] != "7" || got.Data["keep"] != "yes" {
		t.Errorf("opted-out field: %v", got.Data)
	}
	if n := ctl.metric(t, "berth_drift_repairs_total"); n < 3 {
		t.Errorf("berth_drift_repairs_total = %v, want at least 3", n)
	}
}

// TestSuspendAndResume: a suspended app is neither applied nor repaired;
// resuming it catches up.
func TestSuspendAndResume(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	r.app("held", appNS, []*unstructured.Unstructured{configMap("held", map[string]string{"v": "1"})}, nil)
	r.app("live", appNS, []*unstructured.Unstructured{configMap("live", map[string]string{"v": "1"})}, nil)
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, nil)
	startController(t, ns, nil)
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	ctx := context.Background()

	setSuspended(t, k, ns, "main", []string{"held"})
	waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		a := appStatus(ws, "held")
		return ws.Status.ObservedGeneration == ws.Generation && a != nil && a.Suspended, describe(ws)
	})
	held := getCM(t, k, appNS, "held")
	if err := k.Delete(ctx, held); err != nil {
		t.Fatal(err)
	}
	r.app("held", appNS, []*unstructured.Unstructured{configMap("held", map[string]string{"v": "2"})}, nil)
	r.app("live", appNS, []*unstructured.Unstructured{configMap("live", map[string]string{"v": "2"})}, nil)
	r.push()
	requestFetch(t, k, ns, "main")
	waitCM(t, k, appNS, "live", syncTimeout, func(cm *corev1.ConfigMap) bool { return cm != nil && cm.Data["v"] == "2" })
	// Drift of the live app is still repaired; that repair comes after the
	// held app's deletion was seen.
	live := getCM(t, k, appNS, "live")
	if err := k.Delete(ctx, live); err != nil {
		t.Fatal(err)
	}
	waitCM(t, k, appNS, "live", 5*time.Second, func(cm *corev1.ConfigMap) bool { return cm != nil && cm.UID != live.UID })
	if cm := getCM(t, k, appNS, "held"); cm != nil {
		t.Fatalf("suspended app was applied or repaired: %v", cm.Data)
	}

	setSuspended(t, k, ns, "main", nil)
	waitCM(t, k, appNS, "held", syncTimeout, func(cm *corev1.ConfigMap) bool { return cm != nil && cm.Data["v"] == "2" })
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
}

func setSuspended(t *testing.T, k client.Client, ns, name string, apps []string) {
	t.Helper()
	var ws berthv1.Workspace
	if err := k.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &ws); err != nil {
		t.Fatal(err)
	}
	ws.Spec.SuspendedApps = apps
	if err := k.Update(context.Background(), &ws); err != nil {
		t.Fatal(err)
	}
}

// TestBadCommitIsolatesOneApp: an invalid manifest stalls its app with the
// error; the other apps of the same commit are applied.
func TestBadCommitIsolatesOneApp(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	r.app("good", appNS, []*unstructured.Unstructured{configMap("good", map[string]string{"v": "1"})}, nil)
	r.app("bad", appNS, []*unstructured.Unstructured{configMap("bad", map[string]string{"v": "1"})}, nil)
	r.app("rejected", appNS, []*unstructured.Unstructured{configMap("rejected", map[string]string{"v": "1"})}, nil)
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, nil)
	startController(t, ns, nil)
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))

	// One app's file is not YAML; another's is refused by the API server.
	r.app("bad", appNS, []*unstructured.Unstructured{configMap("bad", map[string]string{"v": "1"})},
		map[string][]byte{"rendered/bad/broken.yaml": []byte("kind: ConfigMap\nmetadata: [not, a, map\n")})
	invalid := configMap("rejected", nil)
	invalid.Object["data"] = map[string]any{"bad key!": "x"}
	r.app("rejected", appNS, []*unstructured.Unstructured{invalid}, nil)
	r.app("good", appNS, []*unstructured.Unstructured{configMap("good", map[string]string{"v": "2"})}, nil)
	r.push()
	requestFetch(t, k, ns, "main")
	ws := waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		b, rj := appStatus(ws, "bad"), appStatus(ws, "rejected")
		return ws.Status.LastFetchedRevision == r.head() && b != nil && rj != nil &&
			isTrue(b.Conditions, berthv1.ConditionStalled) && isTrue(rj.Conditions, berthv1.ConditionStalled), describe(ws)
	})
	if cm := getCM(t, k, appNS, "good"); cm.Data["v"] != "2" {
		t.Errorf("the good app was not applied: %v", cm.Data)
	}
	if a := appStatus(ws, "good"); a.AppliedRevision != r.head() || !isTrue(a.Conditions, berthv1.ConditionReady) {
		t.Errorf("good app status: %+v", a)
	}
	if a := appStatus(ws, "bad"); !strings.Contains(a.LastError, "rendered/bad/broken.yaml") {
		t.Errorf("bad app's error does not name the file: %q", a.LastError)
	}
	if a := appStatus(ws, "rejected"); !strings.Contains(a.LastError, "configmap/rejected") {
		t.Errorf("rejected app's error does not name the object: %q", a.LastError)
	}
	ready := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, "bad") || ws.Status.LastAppliedRevision == r.head() {
		t.Errorf("workspace Ready = %+v, last applied %s", ready, ws.Status.LastAppliedRevision)
	}
	// The cluster keeps the last good state of the stalled apps.
	if cm := getCM(t, k, appNS, "bad"); cm == nil || cm.Data["v"] != "1" {
		t.Errorf("stalled app's objects changed: %+v", cm)
	}
}

// TestGitUnreachable: the status says so, the cluster keeps the last applied
// state, and the controller recovers when the server is back.
func TestGitUnreachable(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	r.app("app", appNS, []*unstructured.Unstructured{configMap("app", map[string]string{"v": "1"})}, nil)
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, nil)
	startController(t, ns, nil)
	first := r.head()
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(first))

	gs.down.Store(true)
	requestFetch(t, k, ns, "main")
	ws := waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		c := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady)
		return c != nil && c.Reason == berthv1.ReasonGitFetchFailed, describe(ws)
	})
	c := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady)
	if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, r.URL) || !strings.Contains(c.Message, short(first)) {
		t.Errorf("Ready while git is down: %+v", c)
	}
	if cm := getCM(t, k, appNS, "app"); cm == nil || cm.Data["v"] != "1" {
		t.Errorf("the last applied state did not stay: %+v", cm)
	}
	r.app("app", appNS, []*unstructured.Unstructured{configMap("app", map[string]string{"v": "2"})}, nil)
	r.push()
	gs.down.Store(false)
	// The back-off retries on its own: no new request.
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	if cm := getCM(t, k, appNS, "app"); cm.Data["v"] != "2" {
		t.Errorf("after git came back: %v", cm.Data)
	}
}

// TestRestartMidSync kills the controller in the middle of applying a large
// app; a new controller converges to the full state.
func TestRestartMidSync(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	var objs []*unstructured.Unstructured
	const n = 300
	for i := range n {
		objs = append(objs, configMap(fmt.Sprintf("cm-%03d", i), map[string]string{"i": fmt.Sprint(i)}))
	}
	r.app("big", appNS, objs, nil)
	r.push()
	createWorkspace(t, k, ns, "main", r.URL, nil)
	first := startController(t, ns, func(o *Options) { o.Workers = 1 })
	// Kill it once some, not all, objects exist.
	cs := testcluster.Clientset(t)
	var seen int
	testcluster.WaitFor(t, syncTimeout, func(ctx context.Context) (bool, string, error) {
		l, err := cs.CoreV1().ConfigMaps(appNS).List(ctx, metav1.ListOptions{LabelSelector: apply.LabelApp + "=big"})
		if err != nil {
			return false, err.Error(), nil
		}
		seen = len(l.Items)
		return seen > 0, fmt.Sprintf("%d objects", seen), nil
	})
	first.stop()
	l, err := cs.CoreV1().ConfigMaps(appNS).List(context.Background(), metav1.ListOptions{LabelSelector: apply.LabelApp + "=big"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("controller stopped with %d of %d objects applied", len(l.Items), n)
	if len(l.Items) == n {
		t.Log("the apply finished before the stop; the restart still has to converge")
	}
	startController(t, ns, nil)
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	l, err = cs.CoreV1().ConfigMaps(appNS).List(context.Background(), metav1.ListOptions{LabelSelector: apply.LabelApp + "=big"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != n {
		t.Errorf("after the restart: %d objects, want %d", len(l.Items), n)
	}
}

// TestDecryptsSecretsInProcess: a Secret encrypted in git is applied with its
// plaintext, which appears in no status or event; a wrong key stalls only that app.
func TestDecryptsSecretsInProcess(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	const password = "hunter2-plaintext-password"
	plain := []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: " + password + "\n")
	cipher, err := secrets.Encrypt(key, plain)
	if err != nil {
		t.Fatal(err)
	}
	r.app("db", appNS, []*unstructured.Unstructured{configMap("db", map[string]string{"v": "1"})},
		map[string][]byte{"rendered/db/secrets/secret-db.yaml": cipher})
	r.push()
	if bytes.Contains([]byte(run(t, r.bare, "git", "cat-file", "-p", "HEAD:rendered/db/secrets/secret-db.yaml")), []byte(password)) {
		t.Fatal("test setup: the secret is in plaintext in git")
	}
	keyFile, err := key.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "key"}, Data: map[string][]byte{"key": keyFile}}); err != nil {
		t.Fatal(err)
	}
	createWorkspace(t, k, ns, "main", r.URL, func(ws *berthv1.Workspace) {
		ws.Spec.DecryptionRef = &berthv1.LocalSecretReference{Name: "key"}
	})
	startController(t, ns, nil)
	waitWorkspace(t, k, ns, "main", syncTimeout, readyAt(r.head()))
	var s corev1.Secret
	if err := k.Get(context.Background(), client.ObjectKey{Namespace: appNS, Name: "db"}, &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Data["password"]) != password {
		t.Errorf("secret password = %q", s.Data["password"])
	}

	// Encrypted with another key: that app stalls, naming the file, not the value.
	other, _ := secrets.GenerateKey()
	bad, _ := secrets.Encrypt(other, []byte(strings.Replace(string(plain), "hunter2", "hunter3", 1)))
	r.app("db", appNS, []*unstructured.Unstructured{configMap("db", map[string]string{"v": "1"})},
		map[string][]byte{"rendered/db/secrets/secret-db.yaml": bad})
	r.push()
	requestFetch(t, k, ns, "main")
	ws := waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		a := appStatus(ws, "db")
		return ws.Status.LastFetchedRevision == r.head() && a != nil && isTrue(a.Conditions, berthv1.ConditionStalled), describe(ws)
	})
	a := appStatus(ws, "db")
	if c := apimeta.FindStatusCondition(a.Conditions, berthv1.ConditionStalled); c.Reason != berthv1.ReasonDecryptionFailed || !strings.Contains(c.Message, "secret-db.yaml") {
		t.Errorf("Stalled = %+v", c)
	}
	var events corev1.EventList
	if err := k.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	all := describe(ws)
	for _, e := range events.Items {
		all += e.Message
	}
	if strings.Contains(all, "hunter") {
		t.Errorf("a secret value leaked into the status or events: %s", all)
	}
}

// deployment returns a Deployment manifest with no replicas: it becomes
// available at once on simulated nodes, and the deployment controller writes
// its status and defaults its spec, neither of which is berth's.
func deployment(name string) *unstructured.Unstructured {
	labels := map[string]any{"app": name}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"replicas": int64(0),
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app:1"}}},
			},
		},
	}}
}

// TestHTTPSTokenAndHealthGating: the git token comes from the Secret named by
// spec.secretRef (a wrong one is reported as such), and an app whose objects
// never become healthy holds back the apps that depend on it, not the others.
func TestHTTPSTokenAndHealthGating(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	appNS := testcluster.Namespace(t)
	k := kube(t)
	ctx := context.Background()
	gs := newGitServer(t)
	r := gs.newRepo(t, "ws")
	token := "t0ken"
	gs.token.Store(&token)
	// db never becomes healthy: its claim asks for a storage class that does not exist.
	pvc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "PersistentVolumeClaim",
		"metadata": map[string]any{"name": "data"},
		"spec": map[string]any{
			"accessModes":      []any{"ReadWriteOnce"},
			"storageClassName": "no-such-class",
			"resources":        map[string]any{"requests": map[string]any{"storage": "1Gi"}},
		},
	}}
	r.app("db", appNS, []*unstructured.Unstructured{pvc}, nil)
	r.app("web", appNS, []*unstructured.Unstructured{configMap("web", map[string]string{"v": "1"})}, nil)
	r.app("other", appNS, []*unstructured.Unstructured{configMap("other", map[string]string{"v": "1"})}, nil)
	r.lock(&workspace.Lock{Instances: []workspace.LockInstance{
		{Key: "app:web", Role: "app", Package: "web", Version: "1.0.0", Dependencies: map[string]string{"db": "app:db"}},
		{Key: "app:db", Role: "app", Package: "db", Version: "1.0.0"},
		{Key: "app:other", Role: "app", Package: "other", Version: "1.0.0"},
	}})
	r.push()
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "git"}, Data: map[string][]byte{"password": []byte("wrong")}}); err != nil {
		t.Fatal(err)
	}
	createWorkspace(t, k, ns, "main", r.URL, func(ws *berthv1.Workspace) {
		ws.Spec.SecretRef = &berthv1.LocalSecretReference{Name: "git"}
		ws.Spec.Timeout = metav1.Duration{Duration: 2 * time.Second}
	})
	startController(t, ns, nil)
	ws := waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		c := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady)
		return c != nil && c.Reason == berthv1.ReasonGitFetchFailed, describe(ws)
	})
	if c := apimeta.FindStatusCondition(ws.Status.Conditions, berthv1.ConditionReady); !strings.Contains(c.Message, "credentials") || strings.Contains(c.Message, "wrong") {
		t.Errorf("a refused token: %q", c.Message)
	}

	var s corev1.Secret
	if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "git"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["password"] = []byte(token)
	if err := k.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	requestFetch(t, k, ns, "main")
	ws = waitWorkspace(t, k, ns, "main", syncTimeout, func(ws *berthv1.Workspace) (bool, string) {
		web, other := appStatus(ws, "web"), appStatus(ws, "other")
		return ws.Status.LastFetchedRevision == r.head() && web != nil && other != nil &&
			isTrue(other.Conditions, berthv1.ConditionReady) &&
			apimeta.FindStatusCondition(web.Conditions, berthv1.ConditionReady) != nil, describe(ws)
	})
	web := apimeta.FindStatusCondition(appStatus(ws, "web").Conditions, berthv1.ConditionReady)
	if web.Status != metav1.ConditionFalse || web.Reason != berthv1.ReasonDependencyNotReady || !strings.Contains(web.Message, "db") {
		t.Errorf("web, whose dependency is not healthy: %+v", web)
	}
	if getCM(t, k, appNS, "web") != nil {
		t.Error("web was applied before its dependency was healthy")
	}
	db := apimeta.FindStatusCondition(appStatus(ws, "db").Conditions, berthv1.ConditionReady)
	if db.Status != metav1.ConditionFalse || db.Reason != berthv1.ReasonHealthCheckFailed {
		t.Errorf("db: %+v", db)
	}
	if getCM(t, k, appNS, "other") == nil {
		t.Error("an independent app was held back")
	}
}
