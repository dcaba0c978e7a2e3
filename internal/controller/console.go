package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/console"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/workspace"
)

// ConsolePort is the console's container port in the controller's
// Deployment (named "console"), where 'berth console --port-forward' connects.
const ConsolePort = 9443

// ConsolePortName is the name of ConsolePort in the Deployment.
const ConsolePortName = "console"

// ConsoleOptions configure the console the controller serves
// (docs/console.md): the same console as 'berth console', over a clone of a
// Workspace's repository that it commits in and pushes from.
type ConsoleOptions struct {
	// Addr serves the console; "" or "0" serves none.
	Addr string
	// Workspace is the Workspace whose repository the console serves: NAME
	// (in the controller's namespace) or NAMESPACE/NAME; the only one the
	// controller follows when empty.
	Workspace string
	// Executable is the berth binary git runs as the secrets filter in the
	// console's clone; os.Executable() when empty.
	Executable string
	// Retry is how long the console waits before it tries again to set
	// itself up (no Workspace yet, a clone that failed); 15s when zero.
	Retry time.Duration
}

// consoleServer serves the console on every replica (a change is a push and
// a request to reconcile, which the leader sees). Until its clone is made it
// answers 503 with what it is waiting for.
type consoleServer struct {
	cfg     *rest.Config
	rec     *reconciler
	opts    Options
	log     logr.Logger
	lis     net.Listener
	handler atomic.Pointer[http.Handler]
}

func newConsoleServer(cfg *rest.Config, rec *reconciler, opts Options) (*consoleServer, error) {
	if opts.Console.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the berth binary for the console's git filter: %w", err)
		}
		opts.Console.Executable = exe
	}
	if opts.Console.Retry <= 0 {
		opts.Console.Retry = 15 * time.Second
	}
	lis, err := net.Listen("tcp", opts.Console.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the console on %s (pick another with --console-addr): %w", opts.Console.Addr, err)
	}
	s := &consoleServer{cfg: cfg, rec: rec, opts: opts, log: opts.Logger.WithName("console"), lis: lis}
	s.waiting("starting")
	return s, nil
}

func (s *consoleServer) NeedLeaderElection() bool { return false }

// waiting answers every request with 503 and why.
func (s *consoleServer) waiting(why string) {
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "berth console (in the controller) is not ready: "+why, http.StatusServiceUnavailable)
	})
	s.handler.Store(&h)
}

func (s *consoleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.handler.Load()).ServeHTTP(w, r)
}

func (s *consoleServer) Start(ctx context.Context) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			err := s.setup(ctx)
			if err == nil || ctx.Err() != nil {
				return
			}
			s.log.Error(err, "the console is not ready; trying again", "in", s.opts.Console.Retry.String())
			s.waiting(err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.opts.Console.Retry):
			}
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.log.Info("console listening", "addr", s.lis.Addr().String())
	err := srv.Serve(s.lis)
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// workspace picks the Workspace the console serves.
func (s *consoleServer) workspace(ctx context.Context) (*berthv1.Workspace, error) {
	reader := s.rec.reader
	if name := s.opts.Console.Workspace; name != "" {
		ns, n, ok := strings.Cut(name, "/")
		if !ok {
			ns, n = s.opts.Namespace, name
		}
		if ns == "" {
			return nil, fmt.Errorf("--console-workspace %q: give NAMESPACE/NAME, the controller follows every namespace", name)
		}
		var ws berthv1.Workspace
		if err := reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, &ws); err != nil {
			return nil, fmt.Errorf("the Workspace %s/%s named by --console-workspace: %w", ns, n, err)
		}
		return &ws, nil
	}
	var list berthv1.WorkspaceList
	var opts []client.ListOption
	if s.opts.Namespace != "" {
		opts = append(opts, client.InNamespace(s.opts.Namespace))
	}
	if err := reader.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing the Workspaces: %w", err)
	}
	switch len(list.Items) {
	case 0:
		return nil, errors.New("no Workspace to serve yet: create one ('berth bootstrap' does)")
	case 1:
		return &list.Items[0], nil
	}
	names := make([]string, len(list.Items))
	for i, w := range list.Items {
		names[i] = w.Namespace + "/" + w.Name
	}
	return nil, fmt.Errorf("the controller follows several Workspaces (%s): name the console's with --console-workspace", strings.Join(names, ", "))
}

// setup clones the Workspace's repository with its write credential and
// starts the console over it.
func (s *consoleServer) setup(ctx context.Context) error {
	ws, err := s.workspace(ctx)
	if err != nil {
		return err
	}
	nn := ws.Namespace + "/" + ws.Name
	s.waiting("cloning the repository of Workspace " + nn)
	target, err := s.rec.writeTarget(ctx, ws)
	if err != nil {
		return fmt.Errorf("the Workspace %s: %w", nn, err)
	}
	dir := filepath.Join(s.opts.CacheDir, "console", filepath.FromSlash(target.Key))
	k := upgrades.NewCheckout(dir, target, upgrades.Options{Executable: s.opts.Console.Executable, CacheDir: filepath.Join(s.opts.CacheDir, "console"),
		AuthorName: "berth console", AuthorEmail: "berth-console@berth.dev"})
	if err := k.Sync(ctx); err != nil {
		return fmt.Errorf("the Workspace %s: %w", nn, err)
	}
	wsp, err := workspace.Open(k.Root())
	if err != nil {
		return fmt.Errorf("the Workspace %s: %w", nn, err)
	}
	refs := make([]catalog.Ref, 0, len(wsp.Config.Catalogs))
	for _, r := range wsp.Config.Catalogs {
		refs = append(refs, catalog.Ref{Name: r.Name, Type: catalog.Type(r.Type), URL: r.URL})
	}
	home := filepath.Join(s.opts.CacheDir, "console-home")
	set, err := catalog.OpenRefs(home, wsp.Root, refs)
	if err != nil {
		return fmt.Errorf("the Workspace %s: berth.yaml: catalogs: %w", nn, err)
	}
	cfg := rest.CopyConfig(s.cfg)
	env := &lifecycle.Env{WS: wsp, Catalogs: set, Cluster: func() (*rest.Config, error) { return cfg, nil },
		ChartCache: filepath.Join(home, "charts"), LockTimeout: time.Minute, FleetCluster: ws.Spec.Cluster,
		Follow: &lifecycle.Follow{Namespace: ws.Namespace, Name: ws.Name, Push: k.Push, Fetch: k.Fetch}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	copts := console.DefaultOptions()
	copts.Env, copts.Cluster = env, cfg
	copts.SignIns = &console.SignIns{Client: cs, Namespace: ws.Namespace}
	copts.Sync = s.follower(ws, k)
	if c := wsp.Config.Console; c != nil {
		copts.Roles = c.Roles
		if o := c.OIDC; o != nil {
			if o.RedirectURL == "" {
				s.log.Info("console.oidc in berth.yaml has no redirectURL, which the console in the controller needs (its address as people reach it): signing in with the provider is off; 'berth console --port-forward' still signs in")
			} else {
				secretEnv := o.ClientSecretEnv
				if secretEnv == "" {
					secretEnv = workspace.DefaultClientSecretEnv
				}
				copts.OIDC = &console.OIDCOptions{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: os.Getenv(secretEnv), RedirectURL: o.RedirectURL, Scopes: o.Scopes, GroupsClaim: o.GroupsClaim}
			}
		}
	}
	srv, err := console.New(ctx, copts)
	if err != nil {
		return fmt.Errorf("the Workspace %s: %w", nn, err)
	}
	h := srv.Handler()
	s.handler.Store(&h)
	s.log.Info("console serving", "workspace", nn, "revision", k.Head(ctx))
	return nil
}

// follower returns the console's Sync: when the controller has fetched a
// revision the checkout is not at, the checkout fetches it too, so the
// console follows what the controller follows without polling the remote
// itself.
func (s *consoleServer) follower(ws *berthv1.Workspace, k *upgrades.Checkout) func(context.Context) error {
	key := client.ObjectKeyFromObject(ws)
	var seen string
	return func(ctx context.Context) error {
		var cur berthv1.Workspace
		if err := s.rec.client.Get(ctx, key, &cur); err != nil {
			return err
		}
		rev := cur.Status.LastFetchedRevision
		if rev == "" || rev == seen || rev == k.Head(ctx) {
			return nil
		}
		seen = rev
		return k.Sync(ctx)
	}
}

// ConsoleAddr is the address the console listens on, once New returned; ""
// when it serves none.
func (c *Controller) ConsoleAddr() string {
	if c.console == nil {
		return ""
	}
	return c.console.lis.Addr().String()
}
