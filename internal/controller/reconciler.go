package controller

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

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
	"berth.dev/berth/internal/health"
	"berth.dev/berth/internal/secrets"
)

// reconciler keeps the cluster equal to a Workspace's branch.
type reconciler struct {
	client   client.Client
	engine   *apply.Engine
	drift    *driftRepairer
	recorder record.EventRecorder
	metrics  *metrics
	opts     Options

	mu sync.Mutex
	// fullSynced holds the workspaces applied in full by this process: the
	// first reconcile after a start applies every app (reads only when
	// nothing changed), which also rebuilds the drift watches.
	fullSynced map[types.NamespacedName]bool
	// namespaces ensured by this process: one read per namespace, not per app.
	namespaces map[string]bool
	// snapshots caches each Workspace's decoded manifests by tree hash.
	snapshots map[types.NamespacedName]*snapshotCache
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
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := ws.DeepCopy()
	wsKey := req.String()
	res, err := r.reconcile(ctx, &ws, wsKey)
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

func (r *reconciler) reconcile(ctx context.Context, ws *berthv1.Workspace, wsKey string) (ctrl.Result, error) {
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

	// Fetch.
	auth, key, err := r.credentials(ctx, ws)
	if err != nil {
		setCondition(&ws.Status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonInvalidWorkspace, err.Error(), gen)
		setCondition(&ws.Status.Conditions, berthv1.ConditionStalled, metav1.ConditionTrue, berthv1.ReasonInvalidWorkspace, err.Error(), gen)
		setCondition(&ws.Status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonInvalidWorkspace, "waiting for the Secrets to be fixed", gen)
		return ctrl.Result{RequeueAfter: r.interval(ws)}, nil
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
		return ctrl.Result{}, err // back off
	}
	rev := f.commit.Hash.String()
	ws.Status.LastFetchedRevision = rev

	r.mu.Lock()
	cache := r.snapshots[nn]
	if cache == nil {
		cache = newSnapshotCache()
		r.snapshots[nn] = cache
	}
	r.mu.Unlock()
	fetched := time.Since(fstart)
	rstart := time.Now()
	snap, err := readSnapshot(f.commit, ws.Spec.Path, key, cache)
	read := time.Since(rstart)
	if err != nil {
		var inv *invalidWorkspaceError
		if errors.As(err, &inv) {
			setCondition(&ws.Status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonInvalidWorkspace, err.Error(), gen)
			setCondition(&ws.Status.Conditions, berthv1.ConditionStalled, metav1.ConditionTrue, berthv1.ReasonInvalidWorkspace, err.Error(), gen)
			setCondition(&ws.Status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonInvalidWorkspace, "waiting for a new commit", gen)
			r.recorder.Event(ws, corev1.EventTypeWarning, berthv1.ReasonInvalidWorkspace, err.Error())
			return ctrl.Result{RequeueAfter: r.interval(ws)}, nil
		}
		return ctrl.Result{}, err
	}

	r.mu.Lock()
	full := forceFull || !r.fullSynced[nn] || ws.Status.LastFullSyncTime == nil || time.Since(ws.Status.LastFullSyncTime.Time) > r.opts.Resync
	r.mu.Unlock()

	previous := map[string]berthv1.AppStatus{}
	for _, a := range ws.Status.Apps {
		previous[a.Name] = a
	}
	work := false
	for _, a := range snap.Apps {
		p, ok := previous[a.Name]
		if full || !ok || p.Digest != a.Digest || !isTrue(p.Conditions, berthv1.ConditionReady) {
			work = true
		}
	}
	// A health-gated apply can take minutes: say Reconciling once it has
	// taken a while (a quick one is not worth a write of the Workspace).
	var progress sync.WaitGroup
	applied := make(chan struct{})
	if work && !isTrue(ws.Status.Conditions, berthv1.ConditionReconciling) {
		setCondition(&ws.Status.Conditions, berthv1.ConditionReconciling, metav1.ConditionTrue, berthv1.ReasonProgressing, "applying revision "+short(rev), gen)
		early := ws.DeepCopy()
		progress.Add(1)
		go func() {
			defer progress.Done()
			select {
			case <-applied:
			case <-time.After(r.opts.ProgressDelay):
				if err := r.patchStatus(ctx, early); err != nil {
					log.FromContext(ctx).Error(err, "writing the Reconciling condition")
				}
			}
		}()
	}

	astart := time.Now()
	outcomes := r.applyApps(ctx, ws, wsKey, snap, previous, full)
	close(applied)
	progress.Wait()
	log.FromContext(ctx).Info("reconciled", "revision", short(rev), "full", full, "apps", len(snap.Apps),
		"fetch", fetched.Round(time.Millisecond).String(), "read", read.Round(time.Millisecond).String(), "apply", time.Since(astart).Round(time.Millisecond).String())

	// Prune apps removed from the workspace.
	inSnap := map[string]bool{}
	for _, a := range snap.Apps {
		inSnap[a.Name] = true
	}
	var pruneErrs []string
	for name, p := range previous {
		if inSnap[name] || ws.AppSuspended(name) {
			continue
		}
		r.drift.forget(wsKey, name)
		if _, err := r.engine.Delete(ctx, apply.DeleteOptions{App: name, Namespace: p.Namespace, Wait: false}); err != nil {
			pruneErrs = append(pruneErrs, fmt.Sprintf("deleting app %s (removed from the workspace): %v", name, err))
			outcomes[name] = &appOutcome{state: stateFailed, reason: berthv1.ReasonApplyFailed, msg: err.Error(), status: p}
			continue
		}
		r.recorder.Eventf(ws, corev1.EventTypeNormal, "Deleted", "app %s was removed from the workspace at %s; its objects were deleted", name, short(rev))
	}

	// Status.
	names := make([]string, 0, len(outcomes))
	for n := range outcomes {
		names = append(names, n)
	}
	sort.Strings(names)
	ws.Status.Apps = ws.Status.Apps[:0]
	counts := map[appState]int{}
	var notReady []string
	for _, n := range names {
		o := outcomes[n]
		counts[o.state]++
		ws.Status.Apps = append(ws.Status.Apps, o.status)
		if o.state != stateReady && o.state != stateSuspended {
			notReady = append(notReady, fmt.Sprintf("%s (%s)", n, o.reason))
		}
	}
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
	if forceFull {
		ws.Status.LastHandledReconcileAt = requested
	}
	if full && counts[stateFailed] == 0 {
		now := metav1.Now()
		ws.Status.LastFullSyncTime = &now
		r.mu.Lock()
		r.fullSynced[nn] = true
		r.mu.Unlock()
	}
	if counts[stateFailed] > 0 || len(pruneErrs) > 0 {
		return ctrl.Result{}, fmt.Errorf("workspace %s at %s: %d app(s) failed and are retried: %s", wsKey, short(rev), counts[stateFailed]+len(pruneErrs), strings.Join(notReady, ", "))
	}
	if counts[stateProgressing] > 0 {
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	return ctrl.Result{RequeueAfter: r.interval(ws)}, nil
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

// applyApps applies the snapshot's apps, each once the apps it depends on are
// ready, several at once.
func (r *reconciler) applyApps(ctx context.Context, ws *berthv1.Workspace, wsKey string, snap *snapshot, previous map[string]berthv1.AppStatus, full bool) map[string]*appOutcome {
	var mu sync.Mutex
	outcomes := map[string]*appOutcome{}
	done := map[string]chan struct{}{}
	for _, a := range snap.Apps {
		done[a.Name] = make(chan struct{})
	}
	sem := make(chan struct{}, r.opts.Workers)
	var wg sync.WaitGroup
	for _, a := range snap.Apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[a.Name])
			var blocked []string
			for _, d := range a.DependsOn {
				if ch, ok := done[d]; ok {
					<-ch
					mu.Lock()
					st := outcomes[d].state
					mu.Unlock()
					if st != stateReady && st != stateSuspended {
						blocked = append(blocked, d)
					}
				}
			}
			var o *appOutcome
			if len(blocked) > 0 {
				o = r.blocked(ws, a, previous[a.Name], blocked)
			} else {
				sem <- struct{}{}
				o = r.applyApp(ctx, ws, wsKey, snap.Revision, a, previous[a.Name], full)
				<-sem
			}
			mu.Lock()
			outcomes[a.Name] = o
			mu.Unlock()
		}()
	}
	wg.Wait()
	return outcomes
}

func (r *reconciler) blocked(ws *berthv1.Workspace, a *appSpec, prev berthv1.AppStatus, deps []string) *appOutcome {
	st := prev
	st.Name, st.Namespace = a.Name, a.Namespace
	msg := fmt.Sprintf("waiting for %s to be ready", strings.Join(deps, ", "))
	setCondition(&st.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonDependencyNotReady, msg, ws.Generation)
	setCondition(&st.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonDependencyNotReady, msg, ws.Generation)
	return &appOutcome{state: stateBlocked, reason: berthv1.ReasonDependencyNotReady, msg: msg, status: st}
}

func (r *reconciler) applyApp(ctx context.Context, ws *berthv1.Workspace, wsKey, rev string, a *appSpec, prev berthv1.AppStatus, full bool) *appOutcome {
	gen := ws.Generation
	st := prev
	st.Name, st.Namespace = a.Name, a.Namespace
	out := &appOutcome{status: st}
	suspended := ws.AppSuspended(a.Name)
	r.drift.setSuspended(wsKey, a.Name, suspended)
	out.status.Suspended = suspended
	if suspended {
		out.state, out.reason = stateSuspended, berthv1.ReasonSuspended
		setCondition(&out.status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonSuspended, "suspended; 'berth resume "+a.Name+"' resumes it", gen)
		return out
	}
	stall := func(reason string, err error) *appOutcome {
		out.state, out.reason, out.msg = stateStalled, reason, err.Error()
		out.status.LastError = err.Error()
		setCondition(&out.status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, reason, err.Error(), gen)
		setCondition(&out.status.Conditions, berthv1.ConditionStalled, metav1.ConditionTrue, reason, err.Error(), gen)
		setCondition(&out.status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, reason, "waiting for a fixed commit", gen)
		r.recorder.Eventf(ws, corev1.EventTypeWarning, reason, "app %s at %s: %s", a.Name, short(rev), err.Error())
		return out
	}
	if a.Err != nil {
		reason := berthv1.ReasonInvalidWorkspace
		var de *decryptError
		if errors.As(a.Err, &de) {
			reason = berthv1.ReasonDecryptionFailed
		}
		return stall(reason, a.Err)
	}
	if !full && prev.Digest == a.Digest && isTrue(prev.Conditions, berthv1.ConditionReady) {
		out.state, out.reason = stateReady, berthv1.ReasonSucceeded
		return out
	}
	objs, err := stripIgnoredFields(a.Objects)
	if err != nil {
		return stall(berthv1.ReasonInvalidWorkspace, err)
	}
	if err := r.ensureNamespace(ctx, a.Namespace, objs); err != nil {
		out.state, out.reason, out.msg = stateFailed, berthv1.ReasonApplyFailed, err.Error()
		out.status.LastError = err.Error()
		setCondition(&out.status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonApplyFailed, err.Error(), gen)
		return out
	}
	r.drift.begin(wsKey, a.Name)
	timeout := ws.Spec.Timeout.Duration
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	// Apply, then wait for health apart: drift repair of the app's objects is
	// held back only while the apply writes, not during a long wait.
	res, err := r.engine.Apply(ctx, objs, apply.ApplyOptions{App: a.Name, Namespace: a.Namespace, Prune: true, Timeout: timeout})
	if res != nil {
		for _, c := range res.Changes {
			if c.Action != apply.ActionUnchanged && c.Action != apply.ActionKeep {
				r.metrics.objectsApplied.WithLabelValues(string(c.Action)).Inc()
			}
		}
		out.status.Inventory = berthv1.InventorySummary{
			Objects: len(objs),
			Applied: res.Count(apply.ActionCreate) + res.Count(apply.ActionUpdate),
			Failed:  res.Count(apply.ActionFail),
		}
	}
	// Track what was applied, even on failure: repairs then cover the
	// objects that made it.
	if inv, ierr := r.engine.Inventory(ctx, a.Name, a.Namespace); ierr == nil {
		if terr := r.drift.track(ctx, wsKey, a.Name, a.Namespace, objs, inv); terr != nil {
			log.FromContext(ctx).Error(terr, "watching the objects of an app for drift", "app", a.Name)
		}
	} else {
		r.drift.forget(wsKey, a.Name)
	}
	if err == nil {
		var refs []apply.ObjectRef
		for _, c := range res.Changes {
			if c.Action != apply.ActionDelete && c.Action != apply.ActionKeep {
				refs = append(refs, c.Object)
			}
		}
		_, err = r.engine.Wait(ctx, refs, apply.WaitOptions{App: a.Name, Timeout: timeout})
	}
	var objErr *apply.ObjectsError
	var notReady *apply.NotReadyError
	switch {
	case err == nil:
	case errors.As(err, &objErr):
		return stall(berthv1.ReasonApplyFailed, err)
	case errors.As(err, &notReady):
		out.status.Health = string(health.InProgress)
		if notReady.Failed {
			out.status.Health = string(health.Failed)
			return stall(berthv1.ReasonHealthCheckFailed, err)
		}
		out.state, out.reason, out.msg = stateProgressing, berthv1.ReasonHealthCheckFailed, err.Error()
		out.status.LastError = err.Error()
		setCondition(&out.status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonHealthCheckFailed, err.Error(), gen)
		setCondition(&out.status.Conditions, berthv1.ConditionReconciling, metav1.ConditionTrue, berthv1.ReasonProgressing, "waiting for the app to become healthy", gen)
		apimeta.RemoveStatusCondition(&out.status.Conditions, berthv1.ConditionStalled)
		return out
	default:
		r.mu.Lock()
		delete(r.namespaces, a.Namespace) // it may have been deleted
		r.mu.Unlock()
		out.state, out.reason, out.msg = stateFailed, berthv1.ReasonApplyFailed, err.Error()
		out.status.LastError = err.Error()
		setCondition(&out.status.Conditions, berthv1.ConditionReady, metav1.ConditionFalse, berthv1.ReasonApplyFailed, err.Error(), gen)
		setCondition(&out.status.Conditions, berthv1.ConditionReconciling, metav1.ConditionTrue, berthv1.ReasonProgressing, "retrying with back-off", gen)
		r.recorder.Eventf(ws, corev1.EventTypeWarning, berthv1.ReasonApplyFailed, "app %s at %s: %s", a.Name, short(rev), err.Error())
		return out
	}
	out.state, out.reason = stateReady, berthv1.ReasonSucceeded
	out.status.AppliedRevision = rev
	out.status.Digest = a.Digest
	out.status.Health = string(health.Current)
	out.status.LastError = ""
	setCondition(&out.status.Conditions, berthv1.ConditionReady, metav1.ConditionTrue, berthv1.ReasonSucceeded, "applied and healthy at revision "+short(rev), gen)
	setCondition(&out.status.Conditions, berthv1.ConditionReconciling, metav1.ConditionFalse, berthv1.ReasonSucceeded, "up to date", gen)
	apimeta.RemoveStatusCondition(&out.status.Conditions, berthv1.ConditionStalled)
	if n := res.Count(apply.ActionCreate) + res.Count(apply.ActionUpdate) + res.Count(apply.ActionDelete); n > 0 {
		r.recorder.Eventf(ws, corev1.EventTypeNormal, "Applied", "app %s at %s: %d created, %d updated, %d deleted in %s",
			a.Name, short(rev), res.Count(apply.ActionCreate), res.Count(apply.ActionUpdate), res.Count(apply.ActionDelete), res.Duration.Round(time.Millisecond))
	}
	return out
}

// ensureNamespace creates the app's namespace when its manifests do not.
func (r *reconciler) ensureNamespace(ctx context.Context, name string, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" && o.GetName() == name {
			return nil
		}
	}
	r.mu.Lock()
	known := r.namespaces[name]
	r.mu.Unlock()
	if known {
		return nil
	}
	var ns corev1.Namespace
	err := r.client.Get(ctx, client.ObjectKey{Name: name}, &ns)
	if apierrors.IsNotFound(err) {
		ns = corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{apply.LabelManagedBy: apply.ManagedByValue}}}
		err = r.client.Create(ctx, &ns)
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("creating namespace %s for the app: %w", name, err)
	}
	r.mu.Lock()
	r.namespaces[name] = true
	r.mu.Unlock()
	return nil
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

// stripIgnoredFields removes the fields that an object's
// berth.dev/ignore-fields annotation lists, so berth never applies nor owns
// them and another controller can.
func stripIgnoredFields(objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		spec := o.GetAnnotations()[berthv1.AnnotationIgnoreFields]
		if spec == "" {
			out[i] = o
			continue
		}
		c := o.DeepCopy()
		for _, f := range strings.Split(spec, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			parts := strings.Split(f, ".")
			if parts[0] == "metadata" && len(parts) > 1 && (parts[1] == "name" || parts[1] == "namespace") || parts[0] == "apiVersion" || parts[0] == "kind" {
				return nil, fmt.Errorf("%s: annotation %s lists %q, which identifies the object; list only fields another controller sets, such as spec.replicas", apply.RefOf(o), berthv1.AnnotationIgnoreFields, f)
			}
			unstructured.RemoveNestedField(c.Object, parts...)
		}
		out[i] = c
	}
	return out, nil
}

func setCondition(conds *[]metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string, gen int64) {
	if len(msg) > 2048 {
		msg = msg[:2045] + "..."
	}
	apimeta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
}

func isTrue(conds []metav1.Condition, typ string) bool {
	return apimeta.IsStatusConditionTrue(conds, typ)
}
