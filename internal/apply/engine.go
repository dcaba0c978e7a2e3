package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Options configure an Engine.
type Options struct {
	// FieldManager is the server-side apply field manager; "berth" by default.
	FieldManager string
	// Workers bounds the requests an engine runs in parallel within a stage.
	Workers int
	// QPS and Burst replace a lower client rate limit of the rest.Config, so that
	// the API server, not the client, bounds throughput. QPS < 0 removes the limit.
	QPS   float32
	Burst int
}

// DefaultOptions returns the options berth uses.
func DefaultOptions() Options {
	return Options{FieldManager: "berth", Workers: 32, QPS: 1000, Burst: 2000}
}

// Engine applies, plans, prunes, deletes and waits for the objects of apps in one
// cluster. It is safe for concurrent use by several goroutines, for different apps.
type Engine struct {
	opts   Options
	dyn    dynamic.Interface
	meta   metadata.Interface
	kube   kubernetes.Interface
	mapper meta.ResettableRESTMapper
	disco  discovery.CachedDiscoveryInterface

	mapperMu sync.Mutex
	eventsMu sync.Mutex // callers' event functions are called one at a time

	watchMu sync.Mutex
	watch   *healthWatch // nil: Wait polls
}

// Clients are the Kubernetes clients an Engine talks through. A process that
// holds several engines, or other users of the same cluster, shares one set:
// one client, one REST mapper, one discovery cache.
type Clients struct {
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
	// Kube is the typed client, speaking protobuf: for the engine's
	// inventories and the health watches of built-in kinds, which then cost
	// the API server and the engine less than JSON.
	Kube kubernetes.Interface
	// Discovery is the discovery cache; the engine invalidates it after it
	// applies CustomResourceDefinitions.
	Discovery discovery.CachedDiscoveryInterface
	// Mapper maps kinds to resources; built on Discovery when nil. The engine
	// resets it after it applies CustomResourceDefinitions.
	Mapper meta.ResettableRESTMapper
}

// NewClients builds the clients an engine needs for the cluster of cfg,
// raising a lower client rate limit to opts.QPS and opts.Burst.
func NewClients(cfg *rest.Config, opts Options) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.RateLimiter == nil && cfg.QPS >= 0 {
		switch {
		case opts.QPS < 0:
			cfg.QPS, cfg.Burst = -1, 0
		case opts.QPS > cfg.QPS:
			cfg.QPS = opts.QPS
			if opts.Burst > cfg.Burst {
				cfg.Burst = opts.Burst
			}
		}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a Kubernetes client: %w", err)
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a Kubernetes client: %w", err)
	}
	pcfg := rest.CopyConfig(cfg)
	pcfg.ContentType = "application/vnd.kubernetes.protobuf"
	pcfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	kube, err := kubernetes.NewForConfig(pcfg)
	if err != nil {
		return nil, fmt.Errorf("creating a Kubernetes client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a Kubernetes client: %w", err)
	}
	disco := memory.NewMemCacheClient(dc)
	return &Clients{Dynamic: dyn, Metadata: md, Kube: kube, Discovery: disco, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(disco)}, nil
}

// NewEngine returns an engine talking to the cluster of cfg, with clients of
// its own. A process that talks to the cluster otherwise too should build one
// set of Clients and use NewEngineForClients.
func NewEngine(cfg *rest.Config, opts Options) (*Engine, error) {
	c, err := NewClients(cfg, opts)
	if err != nil {
		return nil, err
	}
	return NewEngineForClients(*c, opts)
}

// NewEngineForClients returns an engine talking through the caller's clients.
// opts.QPS and opts.Burst do not apply: the clients' own configuration does.
func NewEngineForClients(c Clients, opts Options) (*Engine, error) {
	def := DefaultOptions()
	if opts.FieldManager == "" {
		opts.FieldManager = def.FieldManager
	}
	if opts.Workers <= 0 {
		opts.Workers = def.Workers
	}
	if c.Dynamic == nil || c.Metadata == nil || c.Kube == nil || c.Discovery == nil {
		return nil, errors.New("apply: NewEngineForClients needs a dynamic client, a metadata client, a typed client and a discovery cache")
	}
	if c.Mapper == nil {
		c.Mapper = restmapper.NewDeferredDiscoveryRESTMapper(c.Discovery)
	}
	return &Engine{opts: opts, dyn: c.Dynamic, meta: c.Metadata, kube: c.Kube, mapper: c.Mapper, disco: c.Discovery}, nil
}

// mapping is where an object lives in the API.
type mapping struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// ErrUnknownKind is returned (wrapped) for objects whose kind the API server does
// not serve.
var ErrUnknownKind = errors.New("unknown kind")

func (e *Engine) mappingFor(gvk schema.GroupVersionKind) (mapping, error) {
	e.mapperMu.Lock()
	defer e.mapperMu.Unlock()
	m, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return mapping{}, fmt.Errorf("%w: the API server does not serve kind %s in %s (install the CustomResourceDefinition that defines it, or fix apiVersion/kind)", ErrUnknownKind, gvk.Kind, gvk.GroupVersion())
		}
		return mapping{}, fmt.Errorf("looking up kind %s in %s: %w", gvk.Kind, gvk.GroupVersion(), err)
	}
	return mapping{gvr: m.Resource, namespaced: m.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

// mappingForGroupKind maps a recorded reference, preferring its recorded version
// but accepting whichever the API server serves now.
func (e *Engine) mappingForGroupKind(r ObjectRef) (mapping, error) {
	m, err := e.mappingFor(r.GroupVersionKind())
	if err == nil || !errors.Is(err, ErrUnknownKind) {
		return m, err
	}
	e.mapperMu.Lock()
	defer e.mapperMu.Unlock()
	rm, err2 := e.mapper.RESTMapping(r.GroupKind())
	if err2 != nil {
		return mapping{}, err
	}
	return mapping{gvr: rm.Resource, namespaced: rm.Scope.Name() == meta.RESTScopeNameNamespace}, nil
}

func (e *Engine) resetMapper() {
	e.mapperMu.Lock()
	e.mapper.Reset()
	e.mapperMu.Unlock()
}

// EventType says what an Event reports.
type EventType string

// Event types.
const (
	EventStage    EventType = "stage"    // a stage starts
	EventApplied  EventType = "applied"  // an object was applied (or found unchanged)
	EventFailed   EventType = "failed"   // an object failed
	EventDeleted  EventType = "deleted"  // an object was pruned or deleted
	EventWaiting  EventType = "waiting"  // an object is not ready yet; Message says why
	EventReady    EventType = "ready"    // an object became ready
	EventProgress EventType = "progress" // a note about the operation as a whole
)

// Event is a step of an operation, streamed to the caller while it runs.
type Event struct {
	Type    EventType
	Object  ObjectRef
	Action  Action
	Message string
	Elapsed time.Duration
}

// Action is what berth does, or would do, to one object.
type Action string

// Actions.
const (
	ActionCreate    Action = "create"
	ActionUpdate    Action = "update"
	ActionUnchanged Action = "unchanged"
	ActionDelete    Action = "delete"
	ActionKeep      Action = "keep" // a pruning candidate that is kept; Reason says why
	ActionSkip      Action = "skip" // not applied: a hook before it failed; Reason says which
	ActionFail      Action = "fail"
)

func (a Action) String() string { return string(a) }

// Conflict is a field that another field manager owns with a different value.
type Conflict struct {
	Field   string `json:"field"`
	Manager string `json:"manager"`
	Message string `json:"message"`
}

// Change is what happened, or would happen, to one object.
type Change struct {
	Object    ObjectRef  `json:"object"`
	Stage     Stage      `json:"-"`
	Action    Action     `json:"action"`
	Reason    string     `json:"reason,omitempty"`
	Diff      string     `json:"diff,omitempty"`
	Error     string     `json:"error,omitempty"`
	Conflicts []Conflict `json:"conflicts,omitempty"`
	Health    string     `json:"health,omitempty"`

	err    error
	forget bool // drop from the inventory: gone, or no longer the app's

}

// Err returns the error of a failed change.
func (c Change) Err() error { return c.err }

// Result is the outcome of an apply, plan or delete.
type Result struct {
	App       string `json:"app"`
	Namespace string `json:"namespace"`
	DryRun    bool   `json:"dryRun,omitempty"`
	// Operation is what the apply was, for Helm hooks: install or upgrade.
	Operation Operation     `json:"operation,omitempty"`
	Changes   []Change      `json:"changes"`
	Duration  time.Duration `json:"durationNanos"`
	// Inventory is the app's inventory as this apply left it (nil for a dry
	// run): a caller that needs it has no reason to read it again.
	Inventory *Inventory `json:"-"`
}

// Count returns how many changes have the action a.
func (r *Result) Count(a Action) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Failed returns the failed changes.
func (r *Result) Failed() []Change {
	var out []Change
	for _, c := range r.Changes {
		if c.Action == ActionFail {
			out = append(out, c)
		}
	}
	return out
}

// ObjectsError reports the objects that failed while the others were handled.
type ObjectsError struct {
	Failed []Change
}

func (e *ObjectsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d object(s) failed:", len(e.Failed))
	for _, c := range e.Failed {
		fmt.Fprintf(&b, "\n  %s", c.Error)
	}
	return b.String()
}

// Unwrap returns the errors of the failed objects.
func (e *ObjectsError) Unwrap() []error {
	var errs []error
	for _, c := range e.Failed {
		if c.err != nil {
			errs = append(errs, c.err)
		}
	}
	return errs
}

func (e *Engine) emit(fn func(Event), ev Event) {
	if fn != nil {
		e.eventsMu.Lock()
		defer e.eventsMu.Unlock()
		fn(ev)
	}
}

// parallel runs fn for every index in [0,n) on at most workers goroutines.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int)) {
	if n == 0 {
		return
	}
	if workers > n {
		workers = n
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(ctx, i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
