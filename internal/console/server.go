package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"

	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/workspace"
)

//go:embed web
var webFS embed.FS

// Options configures a console Server.
type Options struct {
	// Env is the workspace the console serves; every change goes through it.
	Env *lifecycle.Env
	// Cluster is the workspace's cluster, read through informer caches; nil
	// serves the workspace alone.
	Cluster *rest.Config
	// TokenUser is who signs in with the one-time token: the person who
	// started the console, as the commit author. Role admin.
	TokenUser User
	// SignIns, when set, signs people in with the one-time tokens of the
	// sign-in Secrets in the controller's namespace ('berth console
	// --port-forward' makes them); no token is made at start then. The
	// console in the controller sets it.
	SignIns *SignIns
	// Sync, when set, brings the workspace's checkout up to date before
	// HEAD is read, between changes (never during one): the console in the
	// controller commits in a clone of its own.
	Sync func(ctx context.Context) error
	// OIDC, when set, signs people in with an OpenID provider; Roles maps
	// their groups to roles.
	OIDC  *OIDCOptions
	Roles workspace.Roles
	// Secure marks cookies Secure: set it when the console is served over TLS.
	Secure bool
	// DeployTimeout bounds the deploy after each change.
	DeployTimeout time.Duration
	// PageSize is how many apps the overview shows per page.
	PageSize int
	// ClusterTimeout bounds the read of each cluster on the fleet page;
	// fleet.DefaultStatusOptions' when zero.
	ClusterTimeout time.Duration
}

// DefaultOptions returns the defaults of Options besides Env.
func DefaultOptions() Options {
	return Options{DeployTimeout: 5 * time.Minute, PageSize: 50}
}

// Server is the console's HTTP server.
type Server struct {
	opts  Options
	env   *lifecycle.Env
	auth  *auth
	cache *clusterCache
	pages map[string]*template.Template
	mux   *http.ServeMux

	mu   sync.RWMutex
	view *gitView
	// writeMu serialises the changes this console makes.
	writeMu sync.Mutex

	live *broker
	// changes counts changes to the workspace or the cluster; the overview's
	// rows are recomputed only when it has moved.
	changes   atomic.Uint64
	rowsMu    sync.Mutex
	rowsAt    uint64
	rowsCache []Row
	// follow names the controller's Workspace that follows this repository
	// ("namespace/name"), or is "" when none does.
	follow atomic.Value

	clientsOnce sync.Once
	kube        *clients
	clientsErr  error
	// logStreams counts the log streams open in browsers.
	logStreams atomic.Int64
}

// New starts a console over opts.Env: it reads the workspace, starts and
// syncs the cluster caches, and prepares sign-in. ctx bounds the caches and
// the watch on the workspace's HEAD.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Env == nil || opts.Env.WS == nil {
		return nil, errors.New("console: no workspace")
	}
	d := DefaultOptions()
	if opts.DeployTimeout == 0 {
		opts.DeployTimeout = d.DeployTimeout
	}
	if opts.PageSize <= 0 {
		opts.PageSize = d.PageSize
	}
	s := &Server{opts: opts, env: opts.Env, live: newBroker()}
	s.auth = &auth{sessions: map[string]*session{}, pending: map[string]*pending{}, token: randomString(24), tokenUser: opts.TokenUser, secure: opts.Secure, ttl: 12 * time.Hour}
	s.auth.tokenUser.Role = RoleAdmin
	if opts.SignIns != nil {
		s.auth.token, s.auth.signIns = "", opts.SignIns
		go s.sweepSignIns(ctx)
	}
	if opts.OIDC != nil {
		if err := s.auth.setupOIDC(ctx, *opts.OIDC, opts.Roles); err != nil {
			return nil, err
		}
	}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	if opts.Cluster != nil {
		c, err := newClusterCache(ctx, opts.Cluster, s.changed)
		if err != nil {
			return nil, fmt.Errorf("console: watching the cluster: %w", err)
		}
		s.cache = c
		s.findController(ctx)
	}
	go s.live.run(ctx)
	go s.watchHead(ctx)
	s.routes()
	return s, nil
}

// Token returns the one-time sign-in token ("" once it has been used).
func (s *Server) Token() string {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	return s.auth.token
}

// SignInURL returns the URL that signs its first visitor in, for base (the
// console's address).
func (s *Server) SignInURL(base string) string {
	return strings.TrimSuffix(base, "/") + "/signin?token=" + url.QueryEscape(s.Token())
}

// Handler returns the console's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// reload reads the workspace at HEAD.
func (s *Server) reload(ctx context.Context) error {
	v, err := loadGitView(ctx, s.env.WS)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.view = v
	s.mu.Unlock()
	s.changed()
	return nil
}

// changed records that the workspace or the cluster changed: pages open in
// browsers are told, and the overview's rows are recomputed when next asked.
func (s *Server) changed() {
	s.changes.Add(1)
	s.live.changed()
}

func (s *Server) gitView() *gitView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.view
}

// watchHead reloads the workspace when its HEAD moves (a commit from the
// CLI, a pull).
func (s *Server) watchHead(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.opts.Sync != nil {
			s.writeMu.Lock()
			err := s.opts.Sync(ctx)
			s.writeMu.Unlock()
			if err != nil {
				slog.Warn("console: updating the workspace's checkout", "err", err)
			}
		}
		head, _, err := s.env.WS.Head(ctx)
		if err == nil && head != s.gitView().Head {
			_ = s.reload(ctx)
			s.findController(ctx)
		}
	}
}

// findController looks for the Workspace that follows this repository (its
// controller is then the one actor); at start and when HEAD moves.
func (s *Server) findController(ctx context.Context) {
	if s.cache == nil || s.cache.workspaces == nil {
		s.follow.Store("")
		return
	}
	c, err := s.env.Controller(ctx)
	if err != nil || c == nil {
		s.follow.Store("")
		return
	}
	s.follow.Store(c.Workspace.Namespace + "/" + c.Workspace.Name)
}

func (s *Server) parseTemplates() error {
	funcs := template.FuncMap{
		"lower": strings.ToLower,
		"short": func(s string) string {
			if len(s) > 8 {
				return s[:8]
			}
			return s
		},
		"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"add":  func(a, b int) int { return a + b },
		// upgradeMode is what an available upgrade in state offers.
		"upgradeMode": func(state string) string {
			if state == "rejected" || state == "held" {
				return "held"
			}
			return "open"
		},
		// decide is the data of the approve / reject buttons of one version.
		// mode is "proposal" (approve, reject), "held" (approve: allow it
		// again) or "open" (reject).
		"decide": func(page map[string]any, app, version, mode string) map[string]any {
			return map[string]any{"Operator": page["Operator"], "CSRF": page["CSRF"], "App": app, "Version": version, "Approve": mode != "open", "Reject": mode != "held"}
		},
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/templates/layout.html")
	if err != nil {
		return err
	}
	pages, err := fs.Glob(webFS, "web/templates/*.html")
	if err != nil {
		return err
	}
	s.pages = map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "web/templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(webFS, p)
		if err != nil {
			return err
		}
		s.pages[name] = t
	}
	return nil
}

// broker fans "something changed" out to the pages open in browsers, at
// most twice a second, as server-sent events.
type broker struct {
	mu    sync.Mutex
	subs  map[chan struct{}]bool
	dirty bool
}

func newBroker() *broker { return &broker{subs: map[chan struct{}]bool{}} }

func (b *broker) changed() {
	b.mu.Lock()
	b.dirty = true
	b.mu.Unlock()
}

func (b *broker) run(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		if b.dirty {
			b.dirty = false
			for ch := range b.subs {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
		b.mu.Unlock()
	}
}

func (b *broker) subscribe() (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.subs[ch] = true
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}

// serveEvents streams a "change" event whenever the cluster or the
// workspace changed; pages then refresh their live parts.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	ch, done := s.live.subscribe()
	defer done()
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	keepalive := time.NewTicker(25 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ch:
			fmt.Fprint(w, "event: change\ndata: {}\n\n")
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		}
		fl.Flush()
	}
}
