package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
)

// Options configure a Controller.
type Options struct {
	// Namespace limits the Workspaces the controller reconciles to one
	// namespace; all namespaces when empty.
	Namespace string
	// CacheDir holds a bare clone of each Workspace's repository.
	CacheDir string
	// Workers bounds how many apps are applied at once.
	Workers int
	// Resync is how often every app is applied in full even when git did not
	// change: a safety net behind event-driven drift repair, reading only.
	Resync time.Duration
	// FetchTimeout bounds one git fetch.
	FetchTimeout time.Duration
	// ProgressDelay is how long an apply runs before the Workspace says
	// Reconciling=True.
	ProgressDelay time.Duration
	// MetricsAddr serves /metrics; "0" disables it.
	MetricsAddr string
	// SecureMetrics serves MetricsAddr over HTTPS and lets a request in only
	// with a bearer token the API server authenticates (TokenReview) for a
	// user allowed to get the path (SubjectAccessReview, a nonResourceURL).
	// It also serves pprof there, under /debug/pprof/, as it does on a
	// loopback MetricsAddr.
	SecureMetrics bool
	// ProbeAddr serves /healthz and /readyz; "0" disables it.
	ProbeAddr string
	// WebhookAddr serves /hooks/git; "0" disables it.
	WebhookAddr string
	// PprofAddr serves /debug/pprof; "0" or empty disables it.
	PprofAddr string
	// LeaderElection lets one of several replicas reconcile at a time, using a
	// Lease in LeaderElectionNamespace.
	LeaderElection          bool
	LeaderElectionNamespace string
	// Logger receives the controller's logs.
	Logger logr.Logger
	// Registry receives the controller's metrics; controller-runtime's
	// registry (served on MetricsAddr) when nil.
	Registry prometheus.Registerer
	// DeployEvents, when set, receives the deploy library's events of every
	// reconcile, with the Workspace's namespace/name.
	DeployEvents func(workspace string, ev deploy.Event)
	// Upgrades configures upgrades over the air (docs/upgrades.md).
	Upgrades UpgradeOptions
	// Console serves the console over a Workspace (docs/console.md).
	Console ConsoleOptions
}

// DefaultOptions returns the options of the controller as deployed.
func DefaultOptions() Options {
	return Options{
		CacheDir:      filepath.Join(os.TempDir(), "berth-controller"),
		Workers:       8,
		Resync:        time.Hour,
		FetchTimeout:  time.Minute,
		ProgressDelay: 2 * time.Second,
		MetricsAddr:   ":8080",
		ProbeAddr:     ":8081",
		WebhookAddr:   ":9292",
		Logger:        logr.Discard(),
	}
}

// Controller is berth's GitOps controller for one cluster.
type Controller struct {
	opts    Options
	mgr     manager.Manager
	rec     *reconciler
	hooks   *webhook
	catalog *catalogHook
	webAddr string
	webLis  net.Listener
	console *consoleServer
}

// Scheme returns a scheme with the Kubernetes types and berth's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = berthv1.AddToScheme(s)
	return s
}

// New returns a controller for the cluster of cfg. Start runs it.
func New(cfg *rest.Config, opts Options) (*Controller, error) {
	def := DefaultOptions()
	if opts.CacheDir == "" {
		opts.CacheDir = def.CacheDir
	}
	if opts.Workers <= 0 {
		opts.Workers = def.Workers
	}
	if opts.Resync <= 0 {
		opts.Resync = def.Resync
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = def.FetchTimeout
	}
	if opts.ProgressDelay <= 0 {
		opts.ProgressDelay = def.ProgressDelay
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	if opts.Registry == nil {
		opts.Registry = ctrlmetrics.Registry
	}
	if err := resolvePort(&opts.MetricsAddr); err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		// controller-runtime's default (20 QPS) would throttle the first
		// sync of a thousand apps; the API server's fairness is the limit.
		cfg.QPS, cfg.Burst = 200, 400
	}
	// One set of clients, one discovery cache and one REST mapper for the
	// engine, the deploy library and the drift repairer.
	clients, err := apply.NewClients(cfg, apply.DefaultOptions())
	if err != nil {
		return nil, err
	}
	engine, err := apply.NewEngineForClients(*clients, apply.DefaultOptions())
	if err != nil {
		return nil, err
	}
	mopts := ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  opts.Logger,
		Metrics:                 metricsOptions(opts),
		HealthProbeBindAddress:  opts.ProbeAddr,
		PprofBindAddress:        opts.PprofAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "berth-controller",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// A restart of the API server must not cost the lease.
		LeaseDuration:                 ptr(60 * time.Second),
		RenewDeadline:                 ptr(45 * time.Second),
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: ptr(true)},
		Client: client.Options{Cache: &client.CacheOptions{
			// Read Secrets and Namespaces directly: caching every one in the
			// cluster would cost memory and wider RBAC.
			DisableFor: []client.Object{&corev1.Secret{}, &corev1.Namespace{}},
		}},
	}
	if opts.ProbeAddr == "0" {
		mopts.HealthProbeBindAddress = ""
	}
	if opts.PprofAddr == "0" {
		mopts.PprofBindAddress = ""
	}
	if opts.Namespace != "" {
		mopts.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{opts.Namespace: {}}}
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return nil, fmt.Errorf("creating the controller manager: %w", err)
	}
	m := newMetrics(opts.Registry)
	drift := newDriftRepairer(engine, clients.Metadata, mgr.GetRESTMapper(), opts.Logger.WithName("drift"), m)
	if err := mgr.Add(drift); err != nil {
		return nil, err
	}
	// Apps waiting for health share one watch per resource instead of each
	// polling: the first sync of many apps costs the API server far fewer
	// LISTs, and an app is seen healthy as soon as it is.
	err = mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		engine.WatchHealth(ctx.Done())
		<-ctx.Done()
		return nil
	}))
	if err != nil {
		return nil, err
	}
	rec := &reconciler{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(), engine: engine, deployer: deploy.New(engine, clients.Dynamic), drift: drift, metrics: m, opts: opts,
		recorder:   mgr.GetEventRecorderFor("berth-controller"),
		fullSynced: map[types.NamespacedName]bool{},
		snapshots:  map[types.NamespacedName]*snapshotCache{},
		apps:       newAppStatuses(mgr.GetClient()),
	}
	// Pushes received by the leader trigger a reconcile in process, without
	// writing the (large) Workspace; other replicas record them on it.
	pushes := make(chan event.GenericEvent, 64)
	err = ctrl.NewControllerManagedBy(mgr).
		For(&berthv1.Workspace{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesRawSource(source.Channel(pushes, &handler.EnqueueRequestForObject{})).
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: 4}).
		Complete(rec)
	if err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	hooks := &webhook{client: mgr.GetClient(), reader: mgr.GetAPIReader(), log: opts.Logger.WithName("webhook"),
		trigger: func(ws *berthv1.Workspace) bool {
			select {
			case <-mgr.Elected():
			default:
				return false // not the leader: its controller is not running
			}
			select {
			case pushes <- event.GenericEvent{Object: ws}:
				return true
			default:
				return false // busy: record it on the Workspace instead
			}
		}}
	c := &Controller{opts: opts, mgr: mgr, rec: rec, hooks: hooks, webAddr: opts.WebhookAddr}
	if opts.Upgrades.Enabled {
		loop, err := newUpgradeLoop(rec, opts, opts.Logger.WithName("upgrades"), rec.recorder, hooks.trigger)
		if err != nil {
			return nil, err
		}
		if err := mgr.Add(loop); err != nil {
			return nil, err
		}
		c.catalog = &catalogHook{client: mgr.GetClient(), reader: mgr.GetAPIReader(), log: opts.Logger.WithName("webhook"),
			trigger: func(nn types.NamespacedName) bool {
				select {
				case <-mgr.Elected():
				default:
					return false
				}
				select {
				case loop.trigger <- nn:
					return true
				default:
					return false
				}
			}}
	}
	if opts.Console.Addr != "" && opts.Console.Addr != "0" {
		if c.console, err = newConsoleServer(cfg, rec, opts); err != nil {
			return nil, err
		}
		if err := mgr.Add(c.console); err != nil {
			return nil, err
		}
	}
	if opts.WebhookAddr != "" && opts.WebhookAddr != "0" {
		lis, err := net.Listen("tcp", opts.WebhookAddr)
		if err != nil {
			return nil, fmt.Errorf("listening for webhooks on %s (pick another with --webhook-addr): %w", opts.WebhookAddr, err)
		}
		c.webLis = lis
		if err := mgr.Add(&httpServer{lis: lis, handler: c.Handler()}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Handler serves /hooks/git.
func (c *Controller) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/hooks/git", c.hooks)
	mux.Handle("/hooks/alertmanager", &alertHook{client: c.hooks.client, reader: c.hooks.reader, log: c.opts.Logger.WithName("alertmanager")})
	if c.catalog != nil {
		mux.Handle("/hooks/catalog", c.catalog)
	}
	return mux
}

// WebhookAddr is the address the webhook listens on, once New returned.
func (c *Controller) WebhookAddr() string {
	if c.webLis == nil {
		return ""
	}
	return c.webLis.Addr().String()
}

// MetricsAddr is the address /metrics (and pprof, see Options.SecureMetrics)
// listens on, once New returned; "" when disabled.
func (c *Controller) MetricsAddr() string {
	if c.opts.MetricsAddr == "0" {
		return ""
	}
	return c.opts.MetricsAddr
}

// resolvePort replaces port 0 in addr with a free port, so that the address
// can be reported ('berth debug profile' reads the local controller's).
func resolvePort(addr *string) error {
	host, port, err := net.SplitHostPort(*addr)
	if err != nil || port != "0" {
		return nil // "0" disables; a bad address fails when bound
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return fmt.Errorf("finding a free port for --metrics-addr %s: %w", *addr, err)
	}
	*addr = l.Addr().String()
	return l.Close()
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error {
	return c.mgr.Start(ctx)
}

// httpServer runs the webhook endpoint on every replica, leader or not: a push
// is recorded on the Workspace, which the leader sees.
type httpServer struct {
	lis     net.Listener
	handler http.Handler
}

func (s *httpServer) NeedLeaderElection() bool { return false }

func (s *httpServer) Start(ctx context.Context) error {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(s.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// metricsOptions serves /metrics, and pprof where only a user the API server
// authenticates (SecureMetrics) or a local one (a loopback address) reaches it:
// profiling is always on, at no cost until a profile is asked for.
func metricsOptions(opts Options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: opts.MetricsAddr}
	if opts.SecureMetrics {
		m.SecureServing = true
		m.FilterProvider = authFilter
	}
	if opts.SecureMetrics || isLoopback(opts.MetricsAddr) {
		m.ExtraHandlers = map[string]http.Handler{
			"/debug/pprof/":        http.HandlerFunc(pprof.Index),
			"/debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
			"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
			"/debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
			"/debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
		}
	}
	return m
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
