package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"berth.dev/berth/internal/health"
)

// Annotations that make an object a Helm hook. Rendering moves Helm's own
// (helm.sh/hook, helm.sh/hook-weight, helm.sh/hook-delete-policy) to berth's;
// the engine reads berth's first and Helm's otherwise, so that the output of
// 'helm template' applies as Helm would install it.
const (
	// AnnotationHookEvents lists the Helm hook events of a hook, comma
	// separated: "pre-install,pre-upgrade".
	AnnotationHookEvents = "berth.dev/hook-events"
	// AnnotationHookWeight orders the hooks of one event, lowest first: an
	// integer, "0" when absent.
	AnnotationHookWeight = "berth.dev/hook-weight"
	// AnnotationHookDeletePolicy lists a hook's Helm delete policies, comma
	// separated; before-hook-creation when absent, as in Helm.
	AnnotationHookDeletePolicy = "berth.dev/hook-delete-policy"

	helmHook             = "helm.sh/hook"
	helmHookWeight       = "helm.sh/hook-weight"
	helmHookDeletePolicy = "helm.sh/hook-delete-policy"
)

// Helm hook events the engine runs.
const (
	HookPreInstall  = "pre-install"
	HookPostInstall = "post-install"
	HookPreUpgrade  = "pre-upgrade"
	HookPostUpgrade = "post-upgrade"
	HookPreDelete   = "pre-delete"
	HookPostDelete  = "post-delete"
)

// Helm hook delete policies.
const (
	HookBeforeCreation = "before-hook-creation"
	HookSucceeded      = "hook-succeeded"
	HookFailed         = "hook-failed"
)

// Operation says whether an apply installs an app or upgrades it, which
// decides the Helm hooks it runs.
type Operation string

// Operations.
const (
	// OperationAuto is an install when the app has no inventory yet, an
	// upgrade otherwise.
	OperationAuto Operation = ""
	// OperationInstall runs pre-install and post-install hooks.
	OperationInstall Operation = "install"
	// OperationUpgrade runs pre-upgrade and post-upgrade hooks.
	OperationUpgrade Operation = "upgrade"
)

// hook is what makes an object a Helm hook.
type hook struct {
	events   []string
	weight   int
	policies []string
}

func (h *hook) has(event string) bool { return slices.Contains(h.events, event) }

func (h *hook) policy(p string) bool { return slices.Contains(h.policies, p) }

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func annotation(ann map[string]string, berth, helm string) (string, bool) {
	if v, ok := ann[berth]; ok {
		return v, true
	}
	v, ok := ann[helm]
	return v, ok
}

// IsHook reports whether obj is a Helm hook: applied when its events happen,
// not kept in line with the manifests the way the app's other objects are.
func IsHook(obj *unstructured.Unstructured) bool { return isHook(obj.GetAnnotations()) }

func isHook(ann map[string]string) bool {
	_, ok := annotation(ann, AnnotationHookEvents, helmHook)
	return ok
}

// hookOf returns obj's hook, or nil when it is none.
func hookOf(obj *unstructured.Unstructured) *hook {
	ann := obj.GetAnnotations()
	events, ok := annotation(ann, AnnotationHookEvents, helmHook)
	if !ok {
		return nil
	}
	h := &hook{events: splitList(events)}
	if w, ok := annotation(ann, AnnotationHookWeight, helmHookWeight); ok {
		// Helm reads a weight that is not a number as 0.
		h.weight, _ = strconv.Atoi(strings.TrimSpace(w))
	}
	p, _ := annotation(ann, AnnotationHookDeletePolicy, helmHookDeletePolicy)
	h.policies = splitList(p)
	if len(h.policies) == 0 {
		h.policies = []string{HookBeforeCreation}
	}
	return h
}

// isRun reports kinds whose hooks run to completion: the engine waits for a
// Job to complete and a Pod to succeed; other hooks are done once applied.
func isRun(r ObjectRef) bool {
	return (r.Group == "batch" && r.Kind == "Job") || (r.Group == "" && r.Kind == "Pod")
}

func isJob(r ObjectRef) bool { return r.Group == "batch" && r.Kind == "Job" }

// hookEvents returns the pre and post events of op.
func hookEvents(op Operation) (pre, post string) {
	if op == OperationInstall {
		return HookPreInstall, HookPostInstall
	}
	return HookPreUpgrade, HookPostUpgrade
}

// sortHooks orders hooks as Helm runs them: by weight, then stage, kind and name.
func sortHooks(items []*item) {
	slices.SortStableFunc(items, func(a, b *item) int {
		if a.hook.weight != b.hook.weight {
			return a.hook.weight - b.hook.weight
		}
		if a.stage != b.stage {
			return int(a.stage) - int(b.stage)
		}
		if c := strings.Compare(a.ref.Kind, b.ref.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.ref.Name, b.ref.Name)
	})
}

// decideHooks decides the hooks of one event together, as Helm runs them:
// all of them when any changed since they last succeeded (one may need what
// an earlier one creates, and a hook-succeeded policy deleted it), none when
// every one succeeded before with the same manifest.
func (e *Engine) decideHooks(items []*item, old map[string]Entry, event string, opts ApplyOptions) {
	var changed []string
	for _, it := range items {
		if !it.hashed() {
			continue
		}
		if en, ok := old[it.ref.key()]; !ok || en.Desired != it.hash {
			changed = append(changed, it.ref.ShortString())
		}
	}
	for _, it := range items {
		if it.change.Action == ActionFail || !it.mapped {
			continue
		}
		en, recorded := old[it.ref.key()]
		if len(changed) == 0 {
			it.change.Action = ActionUnchanged
			it.change.Reason = event + " hook: ran with this manifest already"
			it.entry = en
			continue
		}
		it.force = opts.ForceConflicts || recorded
		it.change.Action = ActionCreate
		switch {
		case !recorded || en.Desired == "":
			it.change.Reason = event + " hook: runs"
		case slices.Contains(changed, it.ref.ShortString()):
			it.change.Reason = event + " hook: changed, runs again"
		default:
			it.change.Reason = event + " hook: runs again with " + strings.Join(changed, ", ")
		}
	}
}

// runHooks runs the hooks of one event, in weight order: per weight, the
// old objects that a before-hook-creation policy names are deleted (and gone),
// the other kinds are applied, then the Jobs and Pods, which must complete.
// Once all succeeded, those with hook-succeeded are deleted; when one fails,
// those with hook-failed (and the earlier ones with hook-succeeded, as Helm
// does) are deleted, and the error names the hook. A hook that is gone after
// it ran (a Job with ttlSecondsAfterFinished: 0) has succeeded.
func (e *Engine) runHooks(ctx context.Context, items []*item, event string, opts ApplyOptions, start time.Time) error {
	var todo []*item
	for _, it := range items {
		if it.change.Action == ActionCreate || it.change.Action == ActionUpdate {
			todo = append(todo, it)
		}
	}
	sortHooks(todo)
	var done []*item
	for i := 0; i < len(todo); {
		j := i
		for j < len(todo) && todo[j].hook.weight == todo[i].hook.weight {
			j++
		}
		group := todo[i:j]
		i = j
		err := e.runHookGroup(ctx, group, event, opts, start)
		done = append(done, group...)
		if err != nil {
			for _, it := range done {
				if it.change.Action != ActionFail && it.hook.policy(HookSucceeded) {
					e.deleteHookObject(ctx, it, opts.Events)
				}
				if it.change.Action == ActionFail && it.hook.policy(HookFailed) {
					e.deleteHookObject(ctx, it, opts.Events)
				}
			}
			return err
		}
	}
	for k := len(done) - 1; k >= 0; k-- {
		if done[k].hook.policy(HookSucceeded) {
			e.deleteHookObject(ctx, done[k], opts.Events)
		}
	}
	return nil
}

// runHookGroup runs the hooks of one weight.
func (e *Engine) runHookGroup(ctx context.Context, group []*item, event string, opts ApplyOptions, start time.Time) error {
	var recreate []*item
	for _, it := range group {
		if it.live != nil && (it.hook.policy(HookBeforeCreation) || isRun(it.ref)) {
			recreate = append(recreate, it)
		}
	}
	parallel(ctx, e.opts.Workers, len(recreate), func(ctx context.Context, i int) {
		// A run that ran already runs again only as a new object.
		it := recreate[i]
		if err := e.deleteAndWait(ctx, it, string(it.live.UID), opts.Timeout); err != nil {
			it.fail(fmt.Errorf("%s: deleting the hook's previous object before it runs again: %w", it.ref, err))
			return
		}
		it.live = nil
	})
	var resources, runs []*item
	for _, it := range group {
		switch {
		case it.change.Action == ActionFail:
		case isRun(it.ref):
			runs = append(runs, it)
		default:
			resources = append(resources, it)
		}
	}
	parallel(ctx, e.opts.Workers, len(resources), func(ctx context.Context, i int) {
		e.applyItem(ctx, resources[i], opts)
	})
	parallel(ctx, e.opts.Workers, len(runs), func(ctx context.Context, i int) {
		it := runs[i]
		out := e.applyItemOut(ctx, it, opts)
		if out == nil {
			return
		}
		if err := e.waitRun(ctx, it, out, opts, start); err != nil {
			it.fail(err)
			e.emit(opts.Events, Event{Type: EventFailed, Object: it.ref, Action: ActionFail, Message: it.change.Error})
		}
	})
	var failed []string
	for _, it := range group {
		if it.change.Action == ActionFail {
			failed = append(failed, it.ref.ShortString())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s hook %s failed", event, strings.Join(failed, ", "))
	}
	return nil
}

// runState says whether a hook Job or Pod has finished, and how.
func runState(obj *unstructured.Unstructured) health.Result {
	if obj.GetKind() == "Pod" {
		phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
		switch phase {
		case "Succeeded":
			return health.Result{Status: health.Current, Message: "succeeded"}
		case "Failed":
			msg, _, _ := unstructured.NestedString(obj.Object, "status", "message")
			return health.Result{Status: health.Failed, Message: strings.TrimSpace("failed " + msg)}
		}
		if phase == "" {
			phase = "Pending"
		}
		return health.Result{Status: health.InProgress, Message: strings.ToLower(phase)}
	}
	return health.Compute(obj)
}

// waitRun follows a hook Job or Pod from the version the apply returned until
// it succeeds, fails, or is deleted (by its own TTL: it succeeded, since a
// failure is seen before), or the timeout passes. A watch sees every change,
// so a Job deleted right after it completed is never mistaken for one that
// was not found.
func (e *Engine) waitRun(ctx context.Context, it *item, applied *unstructured.Unstructured, opts ApplyOptions, start time.Time) error {
	uid := applied.GetUID()
	if st := runState(applied); st.Status != health.InProgress {
		return runResult(it, st)
	}
	tctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	ri := e.resource(it.m, it.ref.Namespace)
	rv := applied.GetResourceVersion()
	last := health.Result{Status: health.InProgress, Message: "created"}
	for {
		w, err := ri.Watch(tctx, metav1.ListOptions{FieldSelector: "metadata.name=" + it.ref.Name, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if tctx.Err() != nil {
				break
			}
			return fmt.Errorf("%s: following the hook: %w", it.ref, err)
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				// The version expired: read the object afresh.
				w.Stop()
				got, err := ri.Get(tctx, it.ref.Name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) || (err == nil && got.GetUID() != uid) {
					return nil
				}
				if err != nil {
					if tctx.Err() != nil {
						break
					}
					return fmt.Errorf("%s: following the hook: %w", it.ref, err)
				}
				rv = got.GetResourceVersion()
				if st := runState(got); st.Status != health.InProgress {
					return e.hookDone(it, st, opts, start)
				}
				break
			}
			obj, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			rv = obj.GetResourceVersion()
			if ev.Type == watch.Bookmark || obj.GetUID() != uid {
				continue
			}
			if ev.Type == watch.Deleted {
				e.emit(opts.Events, Event{Type: EventReady, Object: it.ref, Message: "gone after it ran: succeeded", Elapsed: time.Since(start)})
				return nil
			}
			st := runState(obj)
			if st.Status != health.InProgress {
				return e.hookDone(it, st, opts, start)
			}
			if st != last {
				last = st
				e.emit(opts.Events, Event{Type: EventWaiting, Object: it.ref, Message: st.Message, Elapsed: time.Since(start)})
			}
		}
		w.Stop()
		if tctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: hook did not complete within %s: %s", it.ref, opts.Timeout, last.Message)
}

// hookDone reports a hook that finished, as succeeded (EventReady) or not.
func (e *Engine) hookDone(it *item, st health.Result, opts ApplyOptions, start time.Time) error {
	if st.Status == health.Current {
		e.emit(opts.Events, Event{Type: EventReady, Object: it.ref, Message: "succeeded", Elapsed: time.Since(start)})
	}
	return runResult(it, st)
}

func runResult(it *item, st health.Result) error {
	if st.Status == health.Failed {
		return fmt.Errorf("%s: hook failed: %s", it.ref, st.Message)
	}
	return nil
}

// deleteHookObject deletes a hook's object after it ran, as its delete policy
// says; a failure to do so is a note, not a failure of the hook.
func (e *Engine) deleteHookObject(ctx context.Context, it *item, events func(Event)) {
	if it.uid == "" {
		return
	}
	err := e.deleteObject(ctx, it.m, it.ref, it.uid)
	if err != nil {
		e.emit(events, Event{Type: EventProgress, Object: it.ref, Message: "could not delete the hook after it ran: " + err.Error()})
		return
	}
	e.emit(events, Event{Type: EventDeleted, Object: it.ref, Action: ActionDelete, Message: "hook delete policy"})
}

// deleteObject deletes one object, the one of uid only, in the background; an
// object already gone is no error.
func (e *Engine) deleteObject(ctx context.Context, m mapping, ref ObjectRef, uid string) error {
	u := types.UID(uid)
	policy := metav1.DeletePropagationBackground
	err := e.resource(m, ref.Namespace).Delete(ctx, ref.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &u},
		PropagationPolicy: &policy,
	})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Conflict: the UID precondition failed, the object is another one now.
		return nil
	}
	return errors.New(apiMessage(err))
}

// deleteAndWait deletes the object of uid and waits until it is gone.
func (e *Engine) deleteAndWait(ctx context.Context, it *item, uid string, timeout time.Duration) error {
	if err := e.deleteObject(ctx, it.m, it.ref, uid); err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := wait.PollUntilContextCancel(tctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got, err := e.meta.Resource(it.m.gvr).Namespace(it.ref.Namespace).Get(ctx, it.ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return string(got.UID) != uid, nil
	})
	if err != nil {
		return fmt.Errorf("still there after %s (finalizers may hold it): %w", timeout, err)
	}
	return nil
}
