package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
	"berth.dev/berth/internal/health"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/workspace"
)

// reconciler keeps the cluster equal to a Workspace's branch.
type reconciler struct {
	client   client.Client
	reader   client.Reader // uncached: pods and incidents
	engine   *apply.Engine
	deployer *deploy.Deployer
	drift    *driftRepairer
	recorder record.EventRecorder
	metrics  *metrics
	opts     Options

	mu sync.Mutex
	// fullSynced holds the workspaces applied in full by this process: the
	// first reconcile after a start applies every app (reads only when
	// nothing changed), which also rebuilds the drift watches.
	fullSynced map[types.NamespacedName]bool
	// snapshots caches each Workspace's decoded manifests by tree hash.
	snapshots map[types.NamespacedName]*snapshotCache
	// apps holds each app's WorkspaceApp, its state.
	apps *appStatuses
}

// appState is the outcome of one app in one reconcile.
type appState int

const (
	stateReady appState = iota
	stateSuspended
	stateStalled     // needs a new commit
	stateFailed      // transient: retried with back-off
	stateBlocked     // a dependency is not ready
	stateProgressing // applied, not healthy yet
)

type appOutcome struct {
	state  appState
	reason string
	msg    string
	status berthv1.AppStatus
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	var ws berthv1.Workspace
	if err := r.client.Get(ctx, req.NamespacedName, &ws); err != nil {
		if apierrors.IsNotFound(err) {
			r.mu.Lock()
			delete(r.fullSynced, req.NamespacedName)
			delete(r.snapshots, req.NamespacedName)
			r.mu.Unlock()
			r.apps.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := ws.DeepCopy()
	wsKey := req.String()
	res, err := r.reconcile(ctx, &ws, orig, wsKey)
	ws.Status.ObservedGeneration = ws.Generation
	if !equality.Semantic.DeepEqual(orig.Status, ws.Status) {
		if perr := r.client.Status().Patch(ctx, &ws, client.MergeFrom(orig)); perr != nil {
			if err == nil {
				err = fmt.Errorf("writing the status of Workspace %s: %w", wsKey, perr)
			}
		}
	}
	result := "success"
	if err != nil {
		result = "error" // controller-runtime logs it and backs off
	}
	r.metrics.reconcileSeconds.WithLabelValues(wsKey, result).Observe(time.Since(start).Seconds())
	return res, err
}

func (r *reconciler) interval(ws *berthv1.Workspace) time.Duration {
	if ws.Spec.Interval.Duration > 0 {
		return ws.Spec.Interval.Duration
	}
	return time.Minute
}

// reconcile fetches the branch, reads the workspace at its head, deploys its
// apps through the deploy library, removes the apps it no longer has and
// records the outcome in the status. stored is the Workspace as stored, which
// the status is written against.
func (r *reconciler) reconcile(ctx context.Context, ws, stored *berthv1.Workspace, wsKey string) (ctrl.Result, error) {
	gen := ws.Generation
	nn := types.NamespacedName{Namespace: ws.Namespace, Name: ws.Name}
	r.drift.setSuspended(wsKey, "", ws.Spec.Suspend)
	if ws.Spec.Suspend {
		setCondition(&ws.Status.Conditions, berthv1.ConditionReady, metav1.ConditionUnknown, berthv1.ReasonSuspended, "reconciliation is suspended; 'berth resume' resumes it", gen)
		setCondition(&ws.Status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonSuspended, "suspended", gen)
		return ctrl.Result{}, nil
	}
	requested := ws.Annotations[berthv1.AnnotationReconcileRequestedAt]
	forceFull := requested != "" && requested != ws.Status.LastHandledReconcileAt
	if forceFull {
		// Handled whatever the outcome, so that whoever asked (berth reconcile,
		// a command following its change) reads the outcome from the status.
		defer func() { ws.Status.LastHandledReconcileAt = requested }()
	}
	fstart := time.Now()
	snap, interrupted, res, err := r.readRevision(ctx, ws, wsKey)
	if snap == nil {
		return res, err
	}
	fetched := time.Since(fstart)

	r.mu.Lock()
	full := forceFull || !r.fullSynced[nn] || ws.Status.LastFullSyncTime == nil || time.Since(ws.Status.LastFullSyncTime.Time) > r.opts.Resync
	r.mu.Unlock()
	previous, err := r.apps.load(ctx, ws)
	if err != nil {
		return ctrl.Result{}, err
	}
	// New apps write their inventories once, after their objects, when the
	// Workspace notes first the commit they are installed from; not while
	// an interrupted install is being recovered.
	intentKept := false
	if interrupted == nil && installsNewApps(ws, snap, previous) {
		if err := r.noteInstalling(ctx, ws, stored, snap.Revision); err != nil {
			return ctrl.Result{}, err
		}
		intentKept = true
	}
	stopProgress := r.reportProgress(ctx, ws, snap, previous, full)
	astart := time.Now()
	outcomes, uncovered := r.applyApps(ctx, ws, wsKey, snap, previous, full, interrupted, intentKept)
	stopProgress()
	log.FromContext(ctx).Info("reconciled", "revision", short(snap.Revision), "full", full, "apps", len(snap.Apps),
		"fetch+read", fetched.Round(time.Millisecond).String(), "apply", time.Since(astart).Round(time.Millisecond).String())
	pruneErrs, unremoved := r.removeApps(ctx, ws, wsKey, snap, previous, outcomes, interrupted)
	if ws.Status.InstallingRevision != "" && uncovered+unremoved == 0 {
		// Every app the noted commit installed has an inventory naming what
		// it may have created, or is deleted.
		ws.Status.InstallingRevision = ""
	}
	counts := r.recordOutcomes(ws, wsKey, snap, outcomes)
	statuses := map[string]berthv1.AppStatus{}
	for name, o := range outcomes {
		statuses[name] = o.status
	}
	// Before the Workspace's own status: whoever waits for the reconcile it
	// reports reads the apps' states next.
	if err := r.apps.write(ctx, ws, statuses); err != nil {
		return ctrl.Result{}, err
	}
	r.observeIncidents(ctx, ws, snap, outcomes)
	if full && counts[stateFailed] == 0 {
		now := metav1.Now()
		ws.Status.LastFullSyncTime = &now
		r.mu.Lock()
		r.fullSynced[nn] = true
		r.mu.Unlock()
	}
	if counts[stateFailed] > 0 || len(pruneErrs) > 0 {
		return ctrl.Result{}, fmt.Errorf("workspace %s at %s: %d app(s) failed and are retried: %s", wsKey, short(snap.Revision), counts[stateFailed], strings.Join(pruneErrs, "; "))
	}
	if counts[stateProgressing] > 0 {
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	return ctrl.Result{RequeueAfter: r.interval(ws)}, nil
}

// readRevision fetches the branch and reads the workspace at its head, and
// the apps of an interrupted install (interruptedApps). On failure it records
// why in the status and returns a nil snapshot with the result to return.
func (r *reconciler) readRevision(ctx context.Context, ws *berthv1.Workspace, wsKey string) (*snapshot, map[string]*appSpec, ctrl.Result, error) {
	gen := ws.Generation
	stall := func(reason, msg, waiting string) {
		setCondition(&ws.Status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, reason, msg, gen)
		setCondition(&ws.Status.Conditions, berthv1.ConditionStalled, metav1.ConditionTrue, reason, msg, gen)
		setCondition(&ws.Status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, reason, waiting, gen)
		r.recorder.Event(ws, corev1.EventTypeWarning, reason, msg)
	}
	auth, key, err := r.credentials(ctx, ws)
	if err != nil {
		stall(berthv1.ReasonInvalidWorkspace, err.Error(), "waiting for the Secrets to be fixed")
		return nil, nil, ctrl.Result{RequeueAfter: r.interval(ws)}, nil
	}
	branch := ws.Spec.Branch
	if branch == "" {
		branch = "main"
	}
	fctx, cancel := context.WithTimeout(ctx, r.opts.FetchTimeout)
	fstart := time.Now()
	f, err := fetch(fctx, filepath.Join(r.opts.CacheDir, ws.Namespace, ws.Name), ws.Spec.URL, branch, auth)
	cancel()
	r.metrics.gitFetchSeconds.Observe(time.Since(fstart).Seconds())
	if err != nil {
		r.metrics.gitFetchErrors.WithLabelValues(wsKey).Inc()
		msg := err.Error()
		if ws.Status.LastAppliedRevision != "" {
			msg += fmt.Sprintf(" (the cluster keeps revision %s)", short(ws.Status.LastAppliedRevision))
		}
		setCondition(&ws.Status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonGitFetchFailed, msg, gen)
		setCondition(&ws.Status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonGitFetchFailed, "retrying with back-off", gen)
		r.recorder.Event(ws, corev1.EventTypeWarning, berthv1.ReasonGitFetchFailed, msg)
		return nil, nil, ctrl.Result{}, err // back off
	}
	defer f.close()
	ws.Status.LastFetchedRevision = f.commit.Hash.String()
	nn := types.NamespacedName{Namespace: ws.Namespace, Name: ws.Name}
	r.mu.Lock()
	cache := r.snapshots[nn]
	if cache == nil {
		cache = newSnapshotCache()
		r.snapshots[nn] = cache
	}
	r.mu.Unlock()
	snap, err := readSnapshot(f.commit, ws.Spec.Path, ws.Spec.Cluster, key, cache)
	if err != nil {
		var inv *invalidWorkspaceError
		if errors.As(err, &inv) {
			stall(berthv1.ReasonInvalidWorkspace, err.Error(), "waiting for a new commit")
			return nil, nil, ctrl.Result{RequeueAfter: r.interval(ws)}, nil
		}
		return nil, nil, ctrl.Result{}, err
	}
	return snap, r.interruptedApps(ctx, ws, f, snap, key), ctrl.Result{}, nil
}

// interruptedApps returns, when the Workspace notes an install in progress
// (status.installingRevision, which a controller that stopped mid-sync left),
// the apps of that commit by name: what their interrupted first applies may
// have created without an inventory recording it. nil when none is noted;
// empty, with a warning, when the commit cannot be read any more.
func (r *reconciler) interruptedApps(ctx context.Context, ws *berthv1.Workspace, f *fetched, snap *snapshot, key *secrets.Key) map[string]*appSpec {
	rev := ws.Status.InstallingRevision
	if rev == "" {
		return nil
	}
	at := snap
	if rev != snap.Revision {
		var err error
		at, err = readInstalling(f, rev, ws.Spec.Path, ws.Spec.Cluster, key)
		if err != nil {
			msg := fmt.Sprintf("the install of revision %s was interrupted and that commit cannot be read (%v): objects it created before the interruption and the branch no longer has are left in the cluster; find them by the label %s", short(rev), err, apply.LabelApp)
			log.FromContext(ctx).Error(err, "reading the commit of an interrupted install", "revision", rev)
			r.recorder.Event(ws, corev1.EventTypeWarning, berthv1.ReasonPruneFailed, msg)
			return map[string]*appSpec{}
		}
	}
	log.FromContext(ctx).Info("recovering an interrupted install", "revision", short(rev), "apps", len(at.Apps))
	out := make(map[string]*appSpec, len(at.Apps))
	for _, a := range at.Apps {
		if a.Err == nil {
			out[a.Name] = a
		}
	}
	return out
}

// readInstalling reads the workspace at commit rev of the fetched repository,
// on its own (the snapshot cache keeps the branch's head).
func readInstalling(f *fetched, rev, dir, cluster string, key *secrets.Key) (*snapshot, error) {
	commit, err := f.repo.CommitObject(plumbing.NewHash(rev))
	if err != nil {
		return nil, err
	}
	return readCommit(commit, dir, cluster, key, newSnapshotCache())
}

// installsNewApps reports whether a reconcile of snap applies an app the
// controller has no record of.
func installsNewApps(ws *berthv1.Workspace, snap *snapshot, previous map[string]berthv1.AppStatus) bool {
	for _, a := range snap.Apps {
		if _, reported := previous[a.Name]; !reported && a.Err == nil && !ws.AppSuspended(a.Name) {
			return true
		}
	}
	return false
}

// noteInstalling records on the Workspace, before any new app's object is
// written, the commit whose new apps are installed (status.installingRevision).
func (r *reconciler) noteInstalling(ctx context.Context, ws, stored *berthv1.Workspace, rev string) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"installingRevision": rev}})
	if err != nil {
		return err
	}
	// A copy: the answer would overwrite the status this reconcile computes.
	if err := r.client.Status().Patch(ctx, ws.DeepCopy(), client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("noting on Workspace %s/%s the revision whose new apps are installed: %w", ws.Namespace, ws.Name, err)
	}
	ws.Status.InstallingRevision, stored.Status.InstallingRevision = rev, rev
	return nil
}

// reportProgress says Reconciling once an apply with work to do has taken
// ProgressDelay (a quick one is not worth a write of the Workspace); the
// returned function stops it.
func (r *reconciler) reportProgress(ctx context.Context, ws *berthv1.Workspace, snap *snapshot, previous map[string]berthv1.AppStatus, full bool) func() {
	work := false
	for _, a := range snap.Apps {
		p, ok := previous[a.Name]
		if full || !ok || p.Digest != a.Digest || !isTrue(p.Conditions, berthv1.ConditionReady) {
			work = true
		}
	}
	if !work || isTrue(ws.Status.Conditions, berthv1.ConditionReconciling) {
		return func() {}
	}
	setCondition(&ws.Status.Conditions, berthv1.ConditionReconciling, metav1.ConditionTrue, berthv1.ReasonProgressing, "applying revision "+short(snap.Revision), ws.Generation)
	early := ws.DeepCopy()
	applied := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-applied:
		case <-time.After(r.opts.ProgressDelay):
			if err := r.patchStatus(ctx, early); err != nil {
				log.FromContext(ctx).Error(err, "writing the Reconciling condition")
			}
		}
	}()
	return func() { close(applied); wg.Wait() }
}

// removeApps deletes the apps the workspace no longer has (and that are not
// suspended), the apps of an interrupted install (interrupted) included. An
// app whose inventory is already gone is done. Failures are in the app's
// status and an Event, and are retried. It also returns how many apps of the
// interrupted install it could not delete.
func (r *reconciler) removeApps(ctx context.Context, ws *berthv1.Workspace, wsKey string, snap *snapshot, previous map[string]berthv1.AppStatus,
	outcomes map[string]*appOutcome, interrupted map[string]*appSpec) ([]string, int) {
	inSnap := map[string]bool{}
	for _, a := range snap.Apps {
		inSnap[a.Name] = true
	}
	gone := maps.Clone(previous)
	for name, a := range interrupted {
		if _, ok := gone[name]; !ok {
			gone[name] = berthv1.AppStatus{Name: name, Namespace: a.Namespace}
		}
	}
	var errs []string
	unremoved := 0
	for _, name := range slices.Sorted(maps.Keys(gone)) {
		p := gone[name]
		if inSnap[name] || ws.AppSuspended(name) {
			if _, left := interrupted[name]; left && !inSnap[name] {
				unremoved++ // suspended: left alone, and what it left with it
			}
			continue
		}
		r.drift.forget(wsKey, name)
		// The app's objects as this process last read them, for its delete
		// hooks (none after a restart: the commit no longer has them), and
		// what an interrupted install of it may have left.
		app := &deploy.App{Name: name, Namespace: p.Namespace, Objects: snap.Gone[name]}
		if left, ok := interrupted[name]; ok {
			app.Previous = left.Objects
			if app.Objects == nil {
				app.Objects = left.Objects
			}
		}
		res := r.deployer.Remove(ctx, app, deploy.Options{Timeout: ws.Spec.Timeout.Duration})
		if res.Err != nil {
			if _, left := interrupted[name]; left {
				unremoved++
			}
			msg := fmt.Sprintf("deleting app %s (removed from the workspace at %s): %v", name, short(snap.Revision), res.Err)
			errs = append(errs, msg)
			st := p
			st.LastError = msg
			setCondition(&st.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonPruneFailed, msg, ws.Generation)
			outcomes[name] = &appOutcome{state: stateFailed, reason: berthv1.ReasonPruneFailed, msg: msg, status: st}
			r.recorder.Event(ws, corev1.EventTypeWarning, berthv1.ReasonPruneFailed, msg)
			continue
		}
		if res.Wrote() {
			r.recorder.Eventf(ws, corev1.EventTypeNormal, "Deleted", "app %s was removed from the workspace at %s; its %d objects were deleted", name, short(snap.Revision), res.Count(apply.ActionDelete))
		}
	}
	return errs, unremoved
}

// recordOutcomes writes the apps' outcomes and the workspace's conditions
// into the status, and counts the apps by state.
func (r *reconciler) recordOutcomes(ws *berthv1.Workspace, wsKey string, snap *snapshot, outcomes map[string]*appOutcome) map[appState]int {
	gen, rev := ws.Generation, snap.Revision
	counts := map[appState]int{}
	var notReady []string
	for _, n := range slices.Sorted(maps.Keys(outcomes)) {
		o := outcomes[n]
		counts[o.state]++
		if o.state != stateReady && o.state != stateSuspended {
			notReady = append(notReady, fmt.Sprintf("%s (%s)", n, o.reason))
		}
	}
	ws.Status.Apps = berthv1.AppCounts{Total: len(outcomes), Ready: counts[stateReady], Progressing: counts[stateProgressing],
		Blocked: counts[stateBlocked], Failed: counts[stateFailed], Stalled: counts[stateStalled], Suspended: counts[stateSuspended]}
	for st, label := range map[appState]string{stateReady: "ready", stateStalled: "stalled", stateFailed: "failed", stateBlocked: "blocked", stateProgressing: "progressing", stateSuspended: "suspended"} {
		r.metrics.appsByState.WithLabelValues(wsKey, label).Set(float64(counts[st]))
	}
	setCondition(&ws.Status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonSucceeded, "reconciled revision "+short(rev), gen)
	if len(notReady) == 0 {
		ws.Status.LastAppliedRevision = rev
		setCondition(&ws.Status.Conditions, berthv1.ConditionReady, metav1.ConditionTrue, berthv1.ReasonSucceeded, fmt.Sprintf("%d apps applied at revision %s", len(snap.Apps), short(rev)), gen)
	} else {
		setCondition(&ws.Status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonAppsFailed,
			fmt.Sprintf("%d of %d apps not ready at revision %s: %s", len(notReady), len(outcomes), short(rev), strings.Join(notReady, ", ")), gen)
	}
	if counts[stateStalled] > 0 && counts[stateStalled] == len(outcomes) {
		setCondition(&ws.Status.Conditions, berthv1.ConditionStalled, metav1.ConditionTrue, berthv1.ReasonAppsFailed, "every app is stalled; push a fixed commit", gen)
	} else {
		apimeta.RemoveStatusCondition(&ws.Status.Conditions, berthv1.ConditionStalled)
	}
	return counts
}

func (r *reconciler) patchStatus(ctx context.Context, ws *berthv1.Workspace) error {
	var cur berthv1.Workspace
	if err := r.client.Get(ctx, client.ObjectKeyFromObject(ws), &cur); err != nil {
		return err
	}
	orig := cur.DeepCopy()
	cur.Status.Conditions = ws.Status.Conditions
	cur.Status.LastFetchedRevision = ws.Status.LastFetchedRevision
	return r.client.Status().Patch(ctx, &cur, client.MergeFrom(orig))
}

// applyApps deploys the snapshot's apps through the deploy library, several
// at once, each once the apps it depends on are ready; apps that are applied
// and healthy at the same digest are skipped unless full.
//
// The apps of an interrupted install (interrupted) are applied with what
// they may have left (deploy.App.Previous); with intentKept, new apps write
// their inventory once (deploy.Options.IntentKept). It also returns how many
// of either may have left objects that no inventory names yet: the noted
// install is over when none.
func (r *reconciler) applyApps(ctx context.Context, ws *berthv1.Workspace, wsKey string, snap *snapshot, previous map[string]berthv1.AppStatus, full bool,
	interrupted map[string]*appSpec, intentKept bool) (map[string]*appOutcome, int) {
	apps := make([]*deploy.App, len(snap.Apps))
	specs := map[string]*appSpec{}
	for i, a := range snap.Apps {
		specs[a.Name] = a
		prev, reported := previous[a.Name]
		suspended := ws.AppSuspended(a.Name)
		r.drift.setSuspended(wsKey, a.Name, suspended)
		apps[i] = &deploy.App{Name: a.Name, Namespace: a.Namespace, DependsOn: a.DependsOn, Objects: a.Objects, Err: a.Err,
			Suspended: suspended, New: !reported,
			UpToDate: !full && prev.Digest == a.Digest && isTrue(prev.Conditions, berthv1.ConditionReady)}
		if left, ok := interrupted[a.Name]; ok {
			apps[i].Previous, apps[i].UpToDate = left.Objects, false
		}
	}
	timeout := ws.Spec.Timeout.Duration
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	var trackedMu sync.Mutex
	tracked := map[string]bool{}
	// Each app's outcome is made once, as it is done, and its state written
	// then, while the other apps deploy.
	var outcomesMu sync.Mutex
	outcomes := map[string]*appOutcome{}
	send, wait := r.apps.stream(ctx, ws, len(apps))
	events := func(ev deploy.Event) {
		if ev.Type == deploy.EventAppDone && ev.Result != nil && specs[ev.App] != nil {
			o := r.outcome(ws, snap.Revision, specs[ev.App], previous[ev.App], ev.Result)
			outcomesMu.Lock()
			outcomes[ev.App] = o
			outcomesMu.Unlock()
			send(ev.App, o.status)
		}
		if r.opts.DeployEvents != nil {
			r.opts.DeployEvents(wsKey, ev)
		}
	}
	var startedMu sync.Mutex
	started := map[string]bool{}
	res := r.deployer.Deploy(ctx, apps, deploy.Options{
		Timeout: timeout, Workers: r.opts.Workers, Revision: snap.Revision, Events: events, IntentKept: intentKept,
		Starting: func(a *deploy.App) {
			startedMu.Lock()
			started[a.Name] = true
			startedMu.Unlock()
			r.drift.begin(wsKey, a.Name)
		},
		// Watch the objects for drift once applied: repairs are held back
		// only while the apply writes, not during a long wait for health.
		Applied: func(a *deploy.App, objs []*unstructured.Unstructured, inv *apply.Inventory) {
			r.track(ctx, wsKey, a.Name, a.Namespace, objs, inv)
			trackedMu.Lock()
			tracked[a.Name] = true
			trackedMu.Unlock()
		},
	})
	wait()
	uncovered := 0
	for i := range res.Apps {
		ar := &res.Apps[i]
		a := apps[i]
		_, left := interrupted[a.Name]
		if !ar.Recorded && ((intentKept && a.New && started[a.Name]) || left) {
			uncovered++
		}
		if !tracked[a.Name] && (ar.State == deploy.StateFailed || ar.State == deploy.StateError || ar.State == deploy.StateProgressing) && a.Err == nil {
			// Repairs cover the objects that made it.
			r.track(ctx, wsKey, a.Name, a.Namespace, a.Objects, nil)
		}
		if outcomes[a.Name] == nil {
			outcomes[a.Name] = r.outcome(ws, snap.Revision, specs[a.Name], previous[a.Name], ar)
		}
	}
	return outcomes, uncovered
}

// track watches the objects of an app for drift, as its inventory records
// them: inv, or the stored one when inv is nil.
func (r *reconciler) track(ctx context.Context, wsKey, app, namespace string, objs []*unstructured.Unstructured, inv *apply.Inventory) {
	objs, err := deploy.StripIgnoredFields(objs)
	if err != nil {
		return
	}
	if inv == nil {
		if inv, err = r.engine.Inventory(ctx, app, namespace); err != nil {
			r.drift.forget(wsKey, app)
			return
		}
	}
	if err := r.drift.track(ctx, wsKey, app, namespace, objs, inv); err != nil {
		log.FromContext(ctx).Error(err, "watching the objects of an app for drift", "app", app)
	}
}

// outcome turns the deploy result of an app into its status.
func (r *reconciler) outcome(ws *berthv1.Workspace, rev string, a *appSpec, prev berthv1.AppStatus, ar *deploy.AppResult) *appOutcome {
	gen := ws.Generation
	st := prev
	st.Name, st.Namespace = a.Name, a.Namespace
	st.Suspended = ar.State == deploy.StateSuspended
	out := &appOutcome{status: st}
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		setCondition(&out.status.Conditions, typ, status, reason, msg, gen)
	}
	fail := func(state appState, reason string) {
		out.state, out.reason, out.msg = state, reason, ar.Error
		out.status.LastError = ar.Error
		cond(berthv1.ConditionReady, metav1.ConditionFalse, reason, ar.Error)
	}
	if ar.Objects > 0 || ar.Phases > 0 {
		for act, n := range ar.Actions {
			if act != apply.ActionUnchanged && act != apply.ActionKeep {
				r.metrics.objectsApplied.WithLabelValues(string(act)).Add(float64(n))
			}
		}
		out.status.Inventory = berthv1.InventorySummary{Objects: ar.Objects,
			Applied: ar.Count(apply.ActionCreate) + ar.Count(apply.ActionUpdate), Failed: ar.Count(apply.ActionFail)}
	}
	var notReady *apply.NotReadyError
	switch ar.State {
	case deploy.StateSuspended:
		out.state, out.reason = stateSuspended, berthv1.ReasonSuspended
		cond(berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonSuspended, "suspended; 'berth resume "+a.Name+"' resumes it")
	case deploy.StateBlocked:
		out.state, out.reason, out.msg = stateBlocked, berthv1.ReasonDependencyNotReady, ar.Error
		cond(berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonDependencyNotReady, ar.Error)
		cond(berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonDependencyNotReady, ar.Error)
	case deploy.StateFailed:
		reason := berthv1.ReasonApplyFailed
		var de *workspace.DecryptError
		switch {
		case errors.As(ar.Err, &de):
			reason = berthv1.ReasonDecryptionFailed
		case a.Err != nil:
			reason = berthv1.ReasonInvalidWorkspace
		case errors.As(ar.Err, &notReady):
			reason = berthv1.ReasonHealthCheckFailed
			out.status.Health = string(health.Failed)
		}
		fail(stateStalled, reason)
		cond(berthv1.ConditionStalled, metav1.ConditionTrue, reason, ar.Error)
		cond(berthv1.ConditionReconciling, metav1.ConditionFalse, reason, "waiting for a fixed commit")
		r.recorder.Eventf(ws, corev1.EventTypeWarning, reason, "app %s at %s: %s", a.Name, short(rev), ar.Error)
	case deploy.StateProgressing:
		out.status.Health = string(health.InProgress)
		fail(stateProgressing, berthv1.ReasonHealthCheckFailed)
		cond(berthv1.ConditionReconciling, metav1.ConditionTrue, berthv1.ReasonProgressing, "waiting for the app to become healthy")
		apimeta.RemoveStatusCondition(&out.status.Conditions, berthv1.ConditionStalled)
	case deploy.StateError:
		r.deployer.ForgetNamespace(a.Namespace) // it may have been deleted
		fail(stateFailed, berthv1.ReasonApplyFailed)
		cond(berthv1.ConditionReconciling, metav1.ConditionTrue, berthv1.ReasonProgressing, "retrying with back-off")
		r.recorder.Eventf(ws, corev1.EventTypeWarning, berthv1.ReasonApplyFailed, "app %s at %s: %s", a.Name, short(rev), ar.Error)
	default: // ready
		out.state, out.reason = stateReady, berthv1.ReasonSucceeded
		// The commit the app's manifests were applied from: a commit that
		// leaves them as they are (it changes other apps) does not move it,
		// so a push costs a write for each app it changes, not for all.
		if prev.AppliedRevision == "" || prev.Digest != a.Digest {
			out.status.AppliedRevision = rev
		}
		out.status.Digest = a.Digest
		out.status.Health = string(health.Current)
		out.status.LastError = ""
		cond(berthv1.ConditionReady, metav1.ConditionTrue, berthv1.ReasonSucceeded, "applied and healthy at revision "+short(out.status.AppliedRevision))
		cond(berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonSucceeded, "up to date")
		apimeta.RemoveStatusCondition(&out.status.Conditions, berthv1.ConditionStalled)
		if ar.Wrote() {
			r.recorder.Eventf(ws, corev1.EventTypeNormal, "Applied", "app %s at %s: %d created, %d updated, %d deleted in %s",
				a.Name, short(rev), ar.Count(apply.ActionCreate), ar.Count(apply.ActionUpdate), ar.Count(apply.ActionDelete), ar.Duration.Round(time.Millisecond))
		}
	}
	return out
}

// credentials reads the Secrets a Workspace names.
func (r *reconciler) credentials(ctx context.Context, ws *berthv1.Workspace) (gitAuth, *secrets.Key, error) {
	var auth gitAuth
	var key *secrets.Key
	if ref := ws.Spec.SecretRef; ref != nil {
		data, err := r.secretData(ctx, ws.Namespace, ref.Name, "spec.secretRef")
		if err != nil {
			return auth, nil, err
		}
		auth = gitAuth{Username: string(data[berthv1.GitUsernameKey]), Password: string(data[berthv1.GitPasswordKey]),
			Identity: data[berthv1.GitIdentityKey], KnownHosts: data[berthv1.GitKnownHostsKey]}
	}
	if ref := ws.Spec.DecryptionRef; ref != nil {
		data, err := r.secretData(ctx, ws.Namespace, ref.Name, "spec.decryptionRef")
		if err != nil {
			return auth, nil, err
		}
		raw, ok := data[berthv1.DecryptionKeyKey]
		if !ok {
			return auth, nil, fmt.Errorf("secret %s/%s (spec.decryptionRef) has no %q: store the workspace's git-crypt key file under it", ws.Namespace, ref.Name, berthv1.DecryptionKeyKey)
		}
		key, err = secrets.ParseKey(raw)
		if err != nil {
			return auth, nil, fmt.Errorf("secret %s/%s (spec.decryptionRef), key %q: not a git-crypt key file: %w", ws.Namespace, ref.Name, berthv1.DecryptionKeyKey, err)
		}
	}
	return auth, key, nil
}

func (r *reconciler) secretData(ctx context.Context, namespace, name, field string) (map[string][]byte, error) {
	var s corev1.Secret
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("secret %s/%s named by %s does not exist: create it ('berth bootstrap' does)", namespace, name, field)
		}
		return nil, fmt.Errorf("reading secret %s/%s named by %s: %w", namespace, name, field, err)
	}
	return s.Data, nil
}

func setCondition(conds *[]metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string, gen int64) {
	if len(msg) > 2048 {
		msg = msg[:2045] + "..."
	}
	// In seconds, as the API server stores it: a status written and read
	// back then equals the one computed, and is not written again.
	apimeta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
		LastTransitionTime: metav1.Now().Rfc3339Copy()})
}

func isTrue(conds []metav1.Condition, typ string) bool {
	return apimeta.IsStatusConditionTrue(conds, typ)
}
