package controller

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/workspace"
)

// UpgradeOptions configure the controller's upgrades loop.
type UpgradeOptions struct {
	// Enabled runs upgrades over the air ('berth controller' does by default).
	Enabled bool
	// Clock tells the time for maintenance windows and health deadlines;
	// tests give one they set.
	Clock upgrades.Clock
	// Executable is the berth binary git runs as the secrets filter in the
	// loop's clones; os.Executable() when empty.
	Executable string
	// Tick is how often the loop looks for Workspaces due a check; 1s when zero.
	Tick time.Duration
}

// defaultUpgradeInterval is how often a Workspace's catalogs are polled when
// neither its spec nor berth.yaml says.
const defaultUpgradeInterval = 5 * time.Minute

// upgradeLoop polls each Workspace's catalogs on its interval (or at once on
// a catalog webhook) and runs an upgrades cycle: it is the controller's thin
// caller of internal/upgrades. It runs on the leader only.
type upgradeLoop struct {
	rec      *reconciler
	up       *upgrades.Upgrader
	opts     UpgradeOptions
	log      logr.Logger
	recorder record.EventRecorder
	// deploy asks the reconciler to apply a Workspace at once (after an
	// upgrade or a rollback was pushed).
	deploy  func(*berthv1.Workspace) bool
	trigger chan types.NamespacedName

	mu        sync.Mutex
	last      map[types.NamespacedName]time.Time
	handled   map[types.NamespacedName]string
	intervals map[types.NamespacedName]time.Duration
}

func newUpgradeLoop(rec *reconciler, opts Options, log logr.Logger, recorder record.EventRecorder, deploy func(*berthv1.Workspace) bool) (*upgradeLoop, error) {
	uo := opts.Upgrades
	if uo.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the berth binary for the upgrades' git filter: %w", err)
		}
		uo.Executable = exe
	}
	if uo.Tick <= 0 {
		uo.Tick = time.Second
	}
	up := upgrades.New(upgrades.Options{CacheDir: filepath.Join(opts.CacheDir, "upgrades"), Executable: uo.Executable, Clock: uo.Clock})
	return &upgradeLoop{rec: rec, up: up, opts: uo, log: log, recorder: recorder, deploy: deploy,
		trigger: make(chan types.NamespacedName, 64), last: map[types.NamespacedName]time.Time{},
		handled: map[types.NamespacedName]string{}, intervals: map[types.NamespacedName]time.Duration{}}, nil
}

// Start runs the loop until ctx ends.
func (l *upgradeLoop) Start(ctx context.Context) error {
	t := time.NewTicker(l.opts.Tick)
	defer t.Stop()
	for {
		var only *types.NamespacedName
		select {
		case <-ctx.Done():
			return nil
		case nn := <-l.trigger:
			only = &nn
		case <-t.C:
		}
		var list berthv1.WorkspaceList
		if err := l.rec.client.List(ctx, &list); err != nil {
			l.log.Error(err, "listing Workspaces for upgrades")
			continue
		}
		for i := range list.Items {
			ws := &list.Items[i]
			nn := types.NamespacedName{Namespace: ws.Namespace, Name: ws.Name}
			if (only != nil && *only != nn) || (only == nil && !l.due(ws, nn)) || ws.Spec.Suspend {
				continue
			}
			l.check(ctx, ws, nn)
		}
	}
}

// due says whether a Workspace's catalogs should be polled now: its interval
// passed (real time), or a check was asked for on it (annotation).
func (l *upgradeLoop) due(ws *berthv1.Workspace, nn types.NamespacedName) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if req := ws.Annotations[berthv1.AnnotationUpgradeCheckRequestedAt]; req != "" && req != l.handled[nn] {
		return true
	}
	interval := l.intervals[nn]
	if ws.Spec.Upgrades != nil && ws.Spec.Upgrades.Interval.Duration > 0 {
		interval = ws.Spec.Upgrades.Interval.Duration
	}
	if interval <= 0 {
		interval = defaultUpgradeInterval
	}
	return time.Since(l.last[nn]) >= interval
}

// check runs one upgrades cycle of a Workspace and records its outcome.
func (l *upgradeLoop) check(ctx context.Context, ws *berthv1.Workspace, nn types.NamespacedName) {
	l.mu.Lock()
	l.last[nn] = time.Now()
	l.handled[nn] = ws.Annotations[berthv1.AnnotationUpgradeCheckRequestedAt]
	l.mu.Unlock()
	log := l.log.WithValues("workspace", nn.String())
	// The cycle starts from the upgrades status this loop wrote last, which
	// the cache may not hold yet (the last check was moments ago): an
	// in-flight upgrade missing from it would be forgotten, and the status
	// written without it.
	var fresh berthv1.Workspace
	if err := l.rec.reader.Get(ctx, nn, &fresh); err != nil {
		log.Error(err, "reading the Workspace for an upgrades check")
		return
	}
	ws = &fresh
	target, err := l.target(ctx, ws)
	var res *upgrades.Result
	var apps []berthv1.AppStatus
	if err == nil {
		apps, err = l.apps(ctx, ws)
	}
	if err == nil {
		res, err = l.up.Cycle(ctx, target, upgrades.Observed{Status: ws.Status.Upgrades, Apps: apps})
	}
	status := ws.Status.Upgrades.DeepCopy()
	if err != nil {
		log.Error(err, "upgrades check")
		if status == nil {
			status = &berthv1.UpgradesStatus{}
		}
		setCondition(&status.Conditions, berthv1.ConditionGitWritable, metav1.ConditionFalse, berthv1.ReasonGitFetchFailed, err.Error(), ws.Generation)
	} else {
		status = &res.Status
		l.rememberInterval(nn, res)
	}
	if !equality.Semantic.DeepEqual(status, ws.Status.Upgrades) {
		if err := l.patch(ctx, nn, status); err != nil {
			log.Error(err, "writing the upgrades status")
		}
	}
	if res == nil || len(res.Events) == 0 {
		return
	}
	deploy := false
	for _, ev := range res.Events {
		typ := corev1.EventTypeNormal
		if ev.Type == upgrades.EventFailed || ev.Type == upgrades.EventRolledBack {
			typ = corev1.EventTypeWarning
		}
		l.recorder.Event(ws, typ, "Upgrade"+strings.ToUpper(ev.Type.String()[:1])+ev.Type.String()[1:], ev.Message)
		log.Info("upgrade "+ev.Type.String(), "app", ev.App, "from", ev.From, "to", ev.To, "commit", ev.Commit)
		deploy = deploy || ev.Type == upgrades.EventApplied || ev.Type == upgrades.EventRolledBack
	}
	if deploy && l.deploy != nil {
		l.deploy(ws.DeepCopy())
	}
	for _, err := range upgrades.Notify(ctx, nil, nn.String(), res.Notifications, l.secretURL(ws.Namespace), res.Events) {
		log.Error(err, "sending an upgrade notification")
	}
}

// apps returns the state of the Workspace's apps, from their WorkspaceApps.
func (l *upgradeLoop) apps(ctx context.Context, ws *berthv1.Workspace) ([]berthv1.AppStatus, error) {
	items, err := ListWorkspaceApps(ctx, l.rec.client, ws)
	if err != nil {
		return nil, err
	}
	out := make([]berthv1.AppStatus, len(items))
	for i, a := range items {
		out[i] = a.Status
		out[i].Name = a.Spec.App
	}
	return out, nil
}

// rememberInterval keeps berth.yaml's upgrades.interval for the next ticks.
func (l *upgradeLoop) rememberInterval(nn types.NamespacedName, res *upgrades.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.intervals[nn] = res.Interval
}

func (l *upgradeLoop) patch(ctx context.Context, nn types.NamespacedName, status *berthv1.UpgradesStatus) error {
	var cur berthv1.Workspace
	if err := l.rec.reader.Get(ctx, nn, &cur); err != nil {
		return err
	}
	orig := cur.DeepCopy()
	cur.Status.Upgrades = status
	return l.rec.client.Status().Patch(ctx, &cur, client.MergeFrom(orig))
}

// target reads what the upgrader needs of a Workspace: where its repository
// is, the credential that may push (spec.upgrades.writeSecretRef, else
// spec.secretRef) and the key of its secrets.
func (l *upgradeLoop) target(ctx context.Context, ws *berthv1.Workspace) (upgrades.Target, error) {
	return l.rec.writeTarget(ctx, ws)
}

// writeTarget is the Workspace's repository as the controller writes to it:
// the upgrades loop and the console's checkout.
func (r *reconciler) writeTarget(ctx context.Context, ws *berthv1.Workspace) (upgrades.Target, error) {
	t := upgrades.Target{Key: ws.Namespace + "/" + ws.Name, URL: ws.Spec.URL, Branch: ws.Spec.Branch, Path: ws.Spec.Path, Cluster: ws.Spec.Cluster}
	auth, key, err := r.credentials(ctx, ws)
	if err != nil {
		return t, err
	}
	t.Auth = upgrades.GitAuth{Username: auth.Username, Password: auth.Password, Identity: auth.Identity, KnownHosts: auth.KnownHosts}
	t.Decryption = key
	if u := ws.Spec.Upgrades; u != nil {
		t.Suspend = u.Suspend
		if u.WriteSecretRef != nil {
			data, err := r.secretData(ctx, ws.Namespace, u.WriteSecretRef.Name, "spec.upgrades.writeSecretRef")
			if err != nil {
				return t, err
			}
			t.Auth = upgrades.GitAuth{Username: string(data[berthv1.GitUsernameKey]), Password: string(data[berthv1.GitPasswordKey]),
				Identity: data[berthv1.GitIdentityKey], KnownHosts: data[berthv1.GitKnownHostsKey]}
		}
	}
	t.URL = strings.TrimPrefix(t.URL, "file://")
	return t, nil
}

// secretURL reads a notification's webhook URL from its Secret.
func (l *upgradeLoop) secretURL(namespace string) upgrades.URLResolver {
	return func(ctx context.Context, n workspace.Notification) (string, error) {
		data, err := l.rec.secretData(ctx, namespace, n.URLSecret.Name, fmt.Sprintf("notification %s (urlSecret)", n.Name))
		if err != nil {
			return "", err
		}
		u := strings.TrimSpace(string(data[n.URLSecret.Key]))
		if u == "" {
			return "", fmt.Errorf("notification %s: secret %s/%s has no %q", n.Name, namespace, n.URLSecret.Name, n.URLSecret.Key)
		}
		return u, nil
	}
}

// catalogHook is POST /hooks/catalog: a catalog's publisher says a new
// version is out. It is authenticated like the git webhook, by the token of
// a Workspace (spec.webhookSecretRef): "Authorization: Bearer TOKEN". Every
// Workspace whose token it carries polls its catalogs at once.
type catalogHook struct {
	client client.Client
	reader client.Reader
	log    logr.Logger
	// trigger checks a Workspace in this process and reports whether it
	// could; otherwise the request is recorded on the Workspace.
	trigger func(types.NamespacedName) bool
}

func (h *catalogHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, WebhookResponse{Message: "POST to ask for a check of the catalogs"})
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxPayload))
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		reply(w, http.StatusUnauthorized, WebhookResponse{Message: "send the token of a Workspace's spec.webhookSecretRef as Authorization: Bearer TOKEN"})
		return
	}
	var list berthv1.WorkspaceList
	if err := h.client.List(r.Context(), &list); err != nil {
		reply(w, http.StatusServiceUnavailable, WebhookResponse{Message: "listing Workspaces: " + err.Error()})
		return
	}
	var signed []string
	for i := range list.Items {
		ws := &list.Items[i]
		if ws.Spec.WebhookSecretRef == nil {
			continue
		}
		var s corev1.Secret
		if err := h.reader.Get(r.Context(), client.ObjectKey{Namespace: ws.Namespace, Name: ws.Spec.WebhookSecretRef.Name}, &s); err != nil {
			continue
		}
		want := s.Data[berthv1.WebhookTokenKey]
		if len(want) == 0 || subtle.ConstantTimeCompare(want, []byte(token)) != 1 {
			continue
		}
		nn := client.ObjectKeyFromObject(ws)
		if h.trigger == nil || !h.trigger(nn) {
			patch := client.MergeFrom(ws.DeepCopy())
			if ws.Annotations == nil {
				ws.Annotations = map[string]string{}
			}
			ws.Annotations[berthv1.AnnotationUpgradeCheckRequestedAt] = time.Now().UTC().Format(time.RFC3339Nano)
			if err := h.client.Patch(r.Context(), ws, patch); err != nil {
				reply(w, http.StatusServiceUnavailable, WebhookResponse{Message: "recording the request on the Workspace: " + err.Error()})
				return
			}
		}
		signed = append(signed, nn.String())
	}
	if len(signed) == 0 {
		reply(w, http.StatusUnauthorized, WebhookResponse{Message: "the token is not the webhook token of any Workspace (spec.webhookSecretRef)"})
		return
	}
	slices.Sort(signed)
	h.log.Info("catalog check requested", "workspaces", signed)
	reply(w, http.StatusAccepted, WebhookResponse{Workspaces: signed})
}
