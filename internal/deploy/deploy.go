package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/apply"
)

// AnnotationPhase orders an app's rendered objects: components before the app
// that uses them, and within each the stages crds, pre (hooks such as
// migrations), main and post. Objects without one form the last phase.
const AnnotationPhase = "berth.dev/phase"

// AnnotationIgnoreFields on an object lists fields, comma-separated dotted
// paths such as spec.replicas, that berth neither applies nor owns, so another
// controller (an autoscaler) can set them.
const AnnotationIgnoreFields = "berth.dev/ignore-fields"

// LabelKeptFrom marks what an uninstall kept of an app (its volume claims,
// the namespace holding them), with the app's name: a reinstall of the app
// takes them back.
const LabelKeptFrom = "berth.dev/kept-from"

// App is one app to deploy.
type App struct {
	Name      string
	Namespace string
	// DependsOn are the apps that must be ready before this one is applied;
	// those not deployed in the same run are taken as ready.
	DependsOn []string
	Objects   []*unstructured.Unstructured
	// Suspended apps are left alone; their dependants are not held back.
	Suspended bool
	// UpToDate says the caller knows the app is applied and healthy at these
	// objects: it is reported ready without a request.
	UpToDate bool
	// Err is why the app cannot be deployed (a broken manifest, an
	// undecryptable secret): it fails without a request.
	Err error
	// New says the caller has no record of the app ever being applied: its
	// first apply creates the inventory without reading it first
	// (apply.ApplyOptions.AssumeNew), and reads it only if one exists.
	New bool
	// Previous are objects an interrupted apply of the app may have created
	// without its inventory recording them (apply.ApplyOptions.Previous):
	// they are pruned, or deleted with the app, as recorded ones are.
	Previous []*unstructured.Unstructured
}

// Options say how to deploy.
type Options struct {
	// Timeout bounds each phase's wait for health; 5 minutes when zero.
	Timeout time.Duration
	// Workers bounds how many apps are deployed at once; 1 when zero.
	Workers int
	// Revision is recorded as what was deployed (the workspace commit).
	Revision string
	// ForceConflicts takes fields that other field managers own.
	ForceConflicts bool
	// RetryFor is how long an app is tried again, with back-off, after a
	// transient error (see Transient); 0 returns the first error (a caller
	// with its own retries, such as the controller's work queue).
	RetryFor time.Duration
	// Events, when set, receives progress, one event at a time.
	Events func(Event)
	// IntentKept says the caller keeps, where its next run finds it, what its
	// New apps may create (apply.ApplyOptions.IntentKept): their first apply
	// writes the inventory once, after the objects. AppResult.Recorded says
	// when an app's inventory was written.
	IntentKept bool
	// Starting, when set, is called before an app's first write.
	Starting func(app *App)
	// Applied, when set, is called once an app's objects are all applied and
	// waited for, healthy or not (the controller starts watching them for
	// drift there), with the inventory the apply left.
	Applied func(app *App, objs []*unstructured.Unstructured, inv *apply.Inventory)
}

// State is the outcome of one app.
type State string

// States.
const (
	StateReady       State = "Ready"       // applied and healthy
	StateProgressing State = "Progressing" // applied, not healthy before the timeout
	StateFailed      State = "Failed"      // needs a change: objects refused, a workload failed, a broken manifest
	StateError       State = "Error"       // transient (the API server, a conflict): retry
	StateBlocked     State = "Blocked"     // a dependency is not ready; not applied
	StateSuspended   State = "Suspended"   // left alone
)

func (s State) String() string { return string(s) }

// AppResult is what deploying one app did.
type AppResult struct {
	App       string `json:"app"`
	Namespace string `json:"namespace"`
	State     State  `json:"state"`
	// Actions counts the objects by what happened to them, over all phases:
	// an object created in its phase and unchanged in later ones counts once,
	// as created.
	Actions  map[apply.Action]int `json:"actions"`
	Phases   int                  `json:"phases"`
	Objects  int                  `json:"objects"`
	Duration time.Duration        `json:"durationNanos"`
	// BlockedBy lists the dependencies that were not ready.
	BlockedBy []string `json:"blockedBy,omitempty"`
	Error     string   `json:"error,omitempty"`
	// Changes are the changes of the app's objects (their last action).
	Changes []apply.Change `json:"-"`
	Err     error          `json:"-"`
	// Recorded says the app's first phase was applied and its inventory
	// written: it names every object the deploy may have created. Without it,
	// a deploy with IntentKept may have left objects of a New app that only
	// the caller's record names.
	Recorded bool `json:"-"`
}

// Count returns how many objects had action a.
func (r *AppResult) Count(a apply.Action) int { return r.Actions[a] }

// Wrote reports whether the deploy created, updated or deleted anything.
func (r *AppResult) Wrote() bool {
	return r.Actions[apply.ActionCreate]+r.Actions[apply.ActionUpdate]+r.Actions[apply.ActionDelete] > 0
}

// Result is the outcome of a deploy, apps in the order they were given.
type Result struct {
	Apps     []AppResult   `json:"apps"`
	Duration time.Duration `json:"durationNanos"`
}

// Err returns an *AppError for the first app (in order) that is not ready or
// suspended, nil when every app is.
func (r *Result) Err() error {
	var failed []string
	var first *AppResult
	for i := range r.Apps {
		a := &r.Apps[i]
		if a.State == StateReady || a.State == StateSuspended {
			continue
		}
		if first == nil {
			first = a
		} else {
			failed = append(failed, a.App)
		}
	}
	if first == nil {
		return nil
	}
	return &AppError{App: first.App, State: first.State, Others: failed, Err: first.Err}
}

// AppError says which app did not deploy and why.
type AppError struct {
	App   string
	State State
	// Others are the apps that did not deploy either (blocked, failed).
	Others []string
	Err    error
}

func (e *AppError) Error() string {
	msg := fmt.Sprintf("app %s did not deploy (%s): %v", e.App, strings.ToLower(string(e.State)), e.Err)
	if len(e.Others) > 0 {
		msg += fmt.Sprintf("; not deployed either: %s", strings.Join(e.Others, ", "))
	}
	return msg
}

func (e *AppError) Unwrap() error { return e.Err }

// EventType says what an Event reports.
type EventType string

// Event types.
const (
	EventAppStarted EventType = "app-started" // an app's deploy begins
	EventPhase      EventType = "phase"       // a phase was applied (and waited for)
	EventObject     EventType = "object"      // the engine's event about one object (Apply holds it)
	EventAppDone    EventType = "app-done"    // an app is done; Result holds the outcome
	EventRetry      EventType = "retry"       // a transient error; the app is tried again (Err, Message)
)

// Event is a step of a deploy.
type Event struct {
	Type EventType
	App  string
	// Phase is the 1-based phase of EventPhase and EventObject, of Phases.
	Phase, Phases int
	// Objects are the refs the phase applied (EventPhase).
	Objects []apply.ObjectRef
	Apply   *apply.Event
	Result  *AppResult
	Err     error
	Message string
}

// Deployer deploys apps to the cluster of one engine.
type Deployer struct {
	engine *apply.Engine
	dyn    dynamic.Interface

	mu         sync.Mutex
	namespaces map[string]bool // namespaces known to exist
	foreign    map[string]bool // namespace -> it existed before the app that names it
	eventsMu   sync.Mutex
}

// New returns a Deployer over engine; dyn creates the apps' namespaces.
func New(engine *apply.Engine, dyn dynamic.Interface) *Deployer {
	return &Deployer{engine: engine, dyn: dyn, namespaces: map[string]bool{}, foreign: map[string]bool{}}
}

func (d *Deployer) emit(opts Options, ev Event) {
	if opts.Events == nil {
		return
	}
	d.eventsMu.Lock()
	defer d.eventsMu.Unlock()
	opts.Events(ev)
}

// Deploy deploys apps (in dependency order, as workspace.Snapshot.Order gives
// them), several at once up to opts.Workers, each once the apps it depends on
// are ready. An app that is not ready blocks its dependants only.
func (d *Deployer) Deploy(ctx context.Context, apps []*App, opts Options) *Result {
	start := time.Now()
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	results := make([]AppResult, len(apps))
	done := map[string]chan struct{}{}
	index := map[string]int{}
	for i, a := range apps {
		done[a.Name] = make(chan struct{})
		index[a.Name] = i
	}
	if opts.Workers == 1 {
		// One at a time, in the order given.
		for i, a := range apps {
			if blocked := blockedBy(a, results, index); len(blocked) > 0 {
				results[i] = d.blocked(a, blocked, opts)
				continue
			}
			results[i] = d.DeployApp(ctx, a, opts)
		}
		return &Result{Apps: results, Duration: time.Since(start)}
	}
	sem := make(chan struct{}, opts.Workers)
	var wg sync.WaitGroup
	for i, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[a.Name])
			for _, dep := range a.DependsOn {
				if ch, ok := done[dep]; ok {
					<-ch
				}
			}
			if blocked := blockedBy(a, results, index); len(blocked) > 0 {
				results[i] = d.blocked(a, blocked, opts)
				return
			}
			sem <- struct{}{}
			results[i] = d.DeployApp(ctx, a, opts)
			<-sem
		}()
	}
	wg.Wait()
	return &Result{Apps: results, Duration: time.Since(start)}
}

// blockedBy lists the dependencies of a, deployed before it in this run, that
// are not ready.
func blockedBy(a *App, results []AppResult, index map[string]int) []string {
	var out []string
	for _, dep := range a.DependsOn {
		if i, ok := index[dep]; ok {
			if st := results[i].State; st != "" && st != StateReady && st != StateSuspended {
				out = append(out, dep)
			}
		}
	}
	return out
}

func (d *Deployer) blocked(a *App, deps []string, opts Options) AppResult {
	r := AppResult{App: a.Name, Namespace: a.Namespace, State: StateBlocked, BlockedBy: deps,
		Err: fmt.Errorf("not deployed: it depends on %s, which is not ready", strings.Join(deps, ", "))}
	r.Error = r.Err.Error()
	d.emit(opts, Event{Type: EventAppDone, App: a.Name, Result: &r})
	return r
}

// DeployApp deploys one app phase by phase: each phase is applied together
// with the phases before it (so the inventory always holds the whole app) and
// must be healthy before the next; the last one prunes what the app no longer
// has.
func (d *Deployer) DeployApp(ctx context.Context, a *App, opts Options) AppResult {
	start := time.Now()
	r := AppResult{App: a.Name, Namespace: a.Namespace, Actions: map[apply.Action]int{}}
	finish := func(st State, err error) AppResult {
		r.State, r.Err, r.Duration = st, err, time.Since(start)
		if err != nil {
			r.Error = err.Error()
		}
		d.emit(opts, Event{Type: EventAppDone, App: a.Name, Result: &r})
		return r
	}
	switch {
	case a.Suspended:
		return finish(StateSuspended, nil)
	case a.Err != nil:
		return finish(StateFailed, a.Err)
	case a.UpToDate:
		return finish(StateReady, nil)
	}
	d.emit(opts, Event{Type: EventAppStarted, App: a.Name})
	if opts.Starting != nil {
		opts.Starting(a)
	}
	// Transient errors (the API server restarting, throttling, an etcd leader
	// change) are retried with back-off for opts.RetryFor.
	deadline := time.Now().Add(opts.RetryFor)
	for attempt := 0; ; attempt++ {
		st, err := d.deployPhases(ctx, a, opts, &r)
		if st != StateError || !Transient(err) || ctx.Err() != nil {
			return finish(st, err)
		}
		wait := min(time.Second<<attempt, 16*time.Second)
		if time.Now().Add(wait).After(deadline) {
			return finish(st, err)
		}
		d.emit(opts, Event{Type: EventRetry, App: a.Name, Err: err, Message: fmt.Sprintf("retrying in %s after a transient error: %v", wait, err)})
		select {
		case <-ctx.Done():
			return finish(st, err)
		case <-time.After(wait):
		}
	}
}

// deployPhases applies and waits for an app's phases once.
func (d *Deployer) deployPhases(ctx context.Context, a *App, opts Options, r *AppResult) (State, error) {
	objs, err := StripIgnoredFields(a.Objects)
	if err != nil {
		return StateFailed, err
	}
	if objs, err = d.leaveForeignNamespace(ctx, a, objs); err != nil {
		return StateError, err
	}
	r.Objects = len(objs)
	if err := d.ensureNamespace(ctx, a.Namespace, objs); err != nil {
		return StateError, err
	}
	phases := Phases(objs)
	if len(phases) == 0 {
		phases = [][]*unstructured.Unstructured{nil} // nothing rendered: prune what is left
	}
	r.Phases = len(phases)
	// Install or upgrade is decided once, by the first phase's apply before
	// it writes the inventory (from the inventory it reads anyway): it says
	// which Helm hooks run in every phase.
	op := apply.OperationAuto
	changes := map[string]apply.Change{}
	defer func() { r.Changes, r.Actions = summarize(changes) }()
	hooks := map[string]bool{}
	for _, o := range objs {
		if apply.IsHook(o) {
			hooks[hookKey(apply.RefOf(o))] = true
		}
	}
	var set []*unstructured.Unstructured
	for i, ph := range phases {
		set = append(set, ph...)
		last := i == len(phases)-1
		// The apply waits for the phase's health itself, so that the final
		// inventory is written while it waits (apply.Engine.Apply).
		res, err := d.engine.Apply(ctx, set, apply.ApplyOptions{
			App: a.Name, Namespace: a.Namespace, Prune: last, ForceConflicts: opts.ForceConflicts, Operation: op,
			Revision: opts.Revision, Wait: true, AssumeNew: a.New && i == 0, IntentKept: opts.IntentKept && a.New && i == 0,
			Previous: a.Previous, Timeout: opts.timeout(), Events: d.objectEvents(opts, a.Name, i+1, len(phases)),
		})
		if i == 0 {
			r.Recorded = res != nil && res.Inventory != nil
		}
		refs := record(changes, res, hooks, last)
		// A result comes back when every object was applied, even when
		// they did not all become healthy: the drift watch then follows
		// them all the same.
		var objErr *apply.ObjectsError
		if res != nil && !errors.As(err, &objErr) {
			op = res.Operation
			if last && opts.Applied != nil {
				opts.Applied(a, objs, res.Inventory)
			}
			d.emit(opts, Event{Type: EventPhase, App: a.Name, Phase: i + 1, Phases: len(phases), Objects: refs})
		}
		if err != nil {
			return classify(err), fmt.Errorf("phase %d of %d: %w", i+1, len(phases), err)
		}
	}
	return StateReady, nil
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 5 * time.Minute
	}
	return o.Timeout
}

func (d *Deployer) objectEvents(opts Options, app string, phase, phases int) func(apply.Event) {
	if opts.Events == nil {
		return nil
	}
	return func(ev apply.Event) {
		d.emit(opts, Event{Type: EventObject, App: app, Phase: phase, Phases: phases, Apply: &ev})
	}
}

// record keeps each object's first action that is not "unchanged" (later
// phases re-apply earlier ones unchanged) and returns the refs to wait for:
// not the hooks, which the engine runs to completion itself (and which may be
// gone after success, or not run at this operation).
func record(changes map[string]apply.Change, res *apply.Result, hooks map[string]bool, last bool) []apply.ObjectRef {
	if res == nil {
		return nil
	}
	var refs []apply.ObjectRef
	for _, c := range res.Changes {
		if c.Action == apply.ActionKeep && !last {
			continue // a later phase's object, not applied yet: not a prune candidate
		}
		k := c.Object.String()
		if prev, ok := changes[k]; !ok || prev.Action == apply.ActionUnchanged || c.Action == apply.ActionFail || c.Action == apply.ActionDelete {
			changes[k] = c
		}
		if c.Action != apply.ActionDelete && c.Action != apply.ActionKeep && c.Action != apply.ActionFail && c.Action != apply.ActionSkip && !hooks[hookKey(c.Object)] {
			refs = append(refs, c.Object)
		}
	}
	return refs
}

func hookKey(r apply.ObjectRef) string { return r.Group + "/" + r.Kind + "/" + r.Name }

func summarize(changes map[string]apply.Change) ([]apply.Change, map[apply.Action]int) {
	out := make([]apply.Change, 0, len(changes))
	counts := map[apply.Action]int{}
	for _, k := range slices.Sorted(maps.Keys(changes)) {
		out = append(out, changes[k])
		counts[changes[k].Action]++
	}
	return out, counts
}

// Transient reports whether err is worth retrying as it is: the API server
// unreachable or restarting, throttling, a timeout on its side, an etcd leader
// change.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err) {
		return true
	}
	var se interface{ Status() metav1.Status }
	if errors.As(err, &se) && se.Status().Code >= 500 {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "etcdserver: leader changed", "etcdserver: request timed out", "http2: client connection lost", "TLS handshake timeout"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// classify says what an error of the engine means for the app.
func classify(err error) State {
	var objErr *apply.ObjectsError
	var notReady *apply.NotReadyError
	switch {
	case errors.As(err, &notReady) && notReady.Failed:
		return StateFailed
	case errors.As(err, &notReady):
		return StateProgressing
	case errors.As(err, &objErr):
		return StateFailed
	case errors.Is(err, apply.ErrUnknownKind):
		return StateFailed
	}
	return StateError
}

var namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// ensureNamespace creates the app's namespace when its objects do not, once
// per Deployer.
func (d *Deployer) ensureNamespace(ctx context.Context, name string, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" && o.GetName() == name {
			return nil
		}
	}
	d.mu.Lock()
	known := d.namespaces[name]
	d.mu.Unlock()
	if known {
		return nil
	}
	_, err := d.dyn.Resource(namespaceGVR).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{apply.LabelManagedBy: apply.ManagedByValue}}}
		u, cerr := runtime.DefaultUnstructuredConverter.ToUnstructured(ns)
		if cerr != nil {
			return cerr
		}
		_, err = d.dyn.Resource(namespaceGVR).Create(ctx, &unstructured.Unstructured{Object: u}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("creating namespace %s for the app: %w", name, err)
	}
	d.mu.Lock()
	d.namespaces[name] = true
	d.mu.Unlock()
	return nil
}

// leaveForeignNamespace drops the app's Namespace object from objs when the
// namespace existed before berth deployed the app (it is labelled neither as
// the app's nor as kept from it): berth then uses it as it is, never owns it,
// and never deletes it with the app.
func (d *Deployer) leaveForeignNamespace(ctx context.Context, a *App, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	i := slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" && o.GetName() == a.Namespace
	})
	if i < 0 {
		return objs, nil
	}
	d.mu.Lock()
	foreign, known := d.foreign[a.Namespace]
	d.mu.Unlock()
	if !known {
		ns, err := d.dyn.Resource(namespaceGVR).Get(ctx, a.Namespace, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			foreign = false
		case err != nil:
			return nil, fmt.Errorf("reading namespace %s: %w", a.Namespace, err)
		default:
			l := ns.GetLabels()
			foreign = l[apply.LabelApp] != a.Name && l[LabelKeptFrom] != a.Name
		}
		d.mu.Lock()
		d.foreign[a.Namespace] = foreign
		d.mu.Unlock()
	}
	if !foreign {
		return objs, nil
	}
	return slices.Delete(slices.Clone(objs), i, i+1), nil
}

// ForgetNamespace makes the next deploy into namespace check that it exists
// (it may have been deleted).
func (d *Deployer) ForgetNamespace(name string) {
	d.mu.Lock()
	delete(d.namespaces, name)
	delete(d.foreign, name)
	d.mu.Unlock()
}

// ForeignObjects lists (up to a few) objects in namespace that are not app's
// and not made by Kubernetes itself: what keeps berth from deleting the
// namespace with the app.
func (d *Deployer) ForeignObjects(ctx context.Context, namespace, app string) ([]string, error) {
	return d.engine.ForeignObjects(ctx, namespace, app)
}

// Remove deletes an app that the workspace no longer has: every object of its
// inventory, then the inventory. a.Objects are the app's objects as last
// deployed, when the caller has them: its pre-delete and post-delete hooks
// run around the deletion, as in Helm. An app whose inventory is already gone
// is done: there is nothing left to delete.
func (d *Deployer) Remove(ctx context.Context, a *App, opts Options) AppResult {
	start := time.Now()
	name, namespace := a.Name, a.Namespace
	r := AppResult{App: name, Namespace: namespace, Actions: map[apply.Action]int{}}
	d.emit(opts, Event{Type: EventAppStarted, App: name})
	res, err := d.engine.Delete(ctx, apply.DeleteOptions{App: name, Namespace: namespace, Wait: true, Timeout: opts.timeout(),
		Hooks: a.Objects, Previous: a.Previous, Events: d.objectEvents(opts, name, 1, 1)})
	if errors.Is(err, apply.ErrNoInventory) {
		err = nil
	}
	if res != nil {
		r.Changes = res.Changes
		for _, c := range res.Changes {
			r.Actions[c.Action]++
		}
	}
	r.Duration = time.Since(start)
	r.State = StateReady
	if err != nil {
		r.State, r.Err, r.Error = classify(err), err, err.Error()
	}
	d.emit(opts, Event{Type: EventAppDone, App: name, Result: &r})
	return r
}

// Phases groups objects by their phase annotation, in ascending order;
// objects without one come last.
func Phases(objs []*unstructured.Unstructured) [][]*unstructured.Unstructured {
	byPhase := map[int][]*unstructured.Unstructured{}
	for _, o := range objs {
		p, err := strconv.Atoi(o.GetAnnotations()[AnnotationPhase])
		if err != nil {
			p = 1 << 20
		}
		byPhase[p] = append(byPhase[p], o)
	}
	keys := slices.Sorted(maps.Keys(byPhase))
	out := make([][]*unstructured.Unstructured, 0, len(keys))
	for _, k := range keys {
		out = append(out, byPhase[k])
	}
	return out
}

// StripIgnoredFields removes the fields that each object's ignore-fields
// annotation lists, so berth neither applies nor owns them.
func StripIgnoredFields(objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		spec := o.GetAnnotations()[AnnotationIgnoreFields]
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
				return nil, fmt.Errorf("%s: annotation %s lists %q, which identifies the object; list only fields another controller sets, such as spec.replicas", apply.RefOf(o), AnnotationIgnoreFields, f)
			}
			unstructured.RemoveNestedField(c.Object, parts...)
		}
		out[i] = c
	}
	return out, nil
}
