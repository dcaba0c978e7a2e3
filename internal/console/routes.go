package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"berth.dev/berth/internal/workspace"
)

type userKey struct{}

// request is what a handler gets: the person and their session.
type request struct {
	*http.Request
	user User
	sess *session
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fsSub(webFS, "web/static")
	m.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	m.HandleFunc("GET /signin", s.serveSignIn)
	m.HandleFunc("GET /auth/login", s.serveOIDCLogin)
	m.HandleFunc("GET /auth/callback", s.serveOIDCCallback)
	m.HandleFunc("POST /signout", func(w http.ResponseWriter, r *http.Request) {
		s.auth.signOut(w, r)
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
	})
	m.Handle("GET /events", s.signedIn(RoleViewer, func(w http.ResponseWriter, r *request) { s.serveEvents(w, r.Request) }))
	m.Handle("GET /{$}", s.signedIn(RoleViewer, s.serveOverview))
	m.Handle("GET /apps/{app}", s.signedIn(RoleViewer, s.serveApp))
	m.Handle("GET /apps/{app}/tree", s.signedIn(RoleViewer, s.serveTree))
	m.Handle("GET /apps/{app}/diff", s.signedIn(RoleViewer, s.serveDiff))
	m.Handle("GET /apps/{app}/logs", s.signedIn(RoleViewer, s.serveLogs))
	m.Handle("GET /apps/{app}/dashboards", s.signedIn(RoleViewer, s.serveDashboards))
	m.Handle("POST /apps/{app}/config", s.signedIn(RoleOperator, s.postConfig))
	m.Handle("POST /apps/{app}/rollback", s.signedIn(RoleOperator, s.postRollback))
	m.Handle("POST /apps/{app}/suspend", s.signedIn(RoleOperator, s.postSuspend(true)))
	m.Handle("POST /apps/{app}/resume", s.signedIn(RoleOperator, s.postSuspend(false)))
	m.Handle("POST /apps/{app}/reconcile", s.signedIn(RoleOperator, s.postReconcile))
	m.Handle("GET /upgrades", s.signedIn(RoleViewer, s.serveUpgrades))
	m.Handle("POST /upgrades/approve", s.signedIn(RoleOperator, s.postApprove))
	m.Handle("POST /upgrades/reject", s.signedIn(RoleOperator, s.postReject))
	m.Handle("GET /incidents", s.signedIn(RoleViewer, s.serveIncidents))
	m.Handle("GET /incidents/{ns}/{name}", s.signedIn(RoleViewer, s.serveIncident))
	m.Handle("POST /incidents/{ns}/{name}/ack", s.signedIn(RoleOperator, s.postIncident(false)))
	m.Handle("POST /incidents/{ns}/{name}/resolve", s.signedIn(RoleOperator, s.postIncident(true)))
	m.Handle("GET /apps/{app}/runbooks/{runbook}", s.signedIn(RoleViewer, s.serveRunbook))
	m.Handle("POST /apps/{app}/runbooks/{runbook}/run", s.signedIn(RoleOperator, s.postRunbook))
	m.Handle("GET /fleet", s.signedIn(RoleViewer, s.serveFleet))
	m.Handle("POST /apps/{app}/uninstall", s.signedIn(RoleAdmin, s.postUninstall))
	m.Handle("POST /apps/{app}/secrets/{param}/reveal", s.signedIn(RoleAdmin, s.postReveal))
	m.Handle("GET /catalog", s.signedIn(RoleViewer, s.serveCatalog))
	m.Handle("GET /catalog/{pkg}", s.signedIn(RoleViewer, s.servePackage))
	m.Handle("POST /catalog/{pkg}/install", s.signedIn(RoleAdmin, s.postInstall))
	s.mux = m
}

// signedIn requires a session with at least role; state-changing requests
// also need the session's CSRF token. A person without the role gets 403
// and nothing changes.
func (s *Server) signedIn(role Role, h func(http.ResponseWriter, *request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "same-origin")
		sess := s.auth.session(r)
		if sess == nil {
			if r.Method != http.MethodGet {
				http.Error(w, "sign in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "the form could not be read: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		if r.Method != http.MethodGet && !checkCSRF(r, sess) {
			slog.Warn("console: refused a request without a valid CSRF token", "path", r.URL.Path, "user", sess.user.Name)
			http.Error(w, "refused: the request lacks this session's CSRF token; reload the page and try again", http.StatusForbidden)
			return
		}
		if sess.user.Role < role {
			slog.Warn("console: refused a request above the person's role", "path", r.URL.Path, "user", sess.user.Name, "role", sess.user.Role.String(), "needs", role.String())
			http.Error(w, "refused: this needs the "+role.String()+" role; you are "+sess.user.Role.String(), http.StatusForbidden)
			return
		}
		ctx := context.WithValue(r.Context(), userKey{}, sess.user)
		h(w, &request{Request: r.WithContext(ctx), user: sess.user, sess: sess})
	})
}

// asAuthor returns ctx whose workspace commits are authored by the person.
func (r *request) asAuthor() context.Context {
	return workspace.WithAuthor(r.Context(), workspace.Author{Name: r.user.Name, Email: r.user.Email})
}

func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/"
	}
	return next
}

func (s *Server) serveSignIn(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if t := r.URL.Query().Get("token"); t != "" {
		if s.auth.useToken(r.Context(), w, t) {
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, nil, "signin", map[string]any{"Error": s.signInAgain(), "OIDC": s.auth.oidc != nil, "Next": next})
		return
	}
	s.render(w, nil, "signin", map[string]any{"OIDC": s.auth.oidc != nil, "Next": next})
}

func (s *Server) serveOIDCLogin(w http.ResponseWriter, r *http.Request) {
	if s.auth.oidc == nil {
		http.NotFound(w, r)
		return
	}
	s.auth.startOIDC(w, r, safeNext(r.URL.Query().Get("next")))
}

func (s *Server) serveOIDCCallback(w http.ResponseWriter, r *http.Request) {
	if s.auth.oidc == nil {
		http.NotFound(w, r)
		return
	}
	next, err := s.auth.finishOIDC(w, r)
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, errNoRole) {
			status = http.StatusForbidden
		}
		slog.Warn("console: sign-in failed", "err", err)
		w.WriteHeader(status)
		s.render(w, nil, "signin", map[string]any{"Error": err.Error(), "OIDC": true, "Next": "/"})
		return
	}
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}
