package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"berth.dev/berth/internal/workspace"
)

// Role is what a signed-in person may do.
type Role int

// Roles, each allowed what the one before it is.
const (
	RoleNone Role = iota
	// RoleViewer reads.
	RoleViewer
	// RoleOperator configures, rolls back, suspends, resumes, reconciles.
	RoleOperator
	// RoleAdmin installs.
	RoleAdmin
)

func (r Role) String() string {
	return [...]string{"none", "viewer", "operator", "admin"}[r]
}

// RoleFor returns the highest role any of groups is granted by roles.
func RoleFor(roles workspace.Roles, groups []string) Role {
	has := func(list []string) bool {
		for _, g := range groups {
			if slices.Contains(list, g) {
				return true
			}
		}
		return false
	}
	switch {
	case has(roles.Admin):
		return RoleAdmin
	case has(roles.Operator):
		return RoleOperator
	case has(roles.Viewer):
		return RoleViewer
	}
	return RoleNone
}

// User is a signed-in person.
type User struct {
	Name    string
	Email   string
	Subject string
	Groups  []string
	Role    Role
}

type session struct {
	user    User
	csrf    string
	expires time.Time
}

// pending is an OpenID sign-in between the redirect to the provider and its
// callback.
type pending struct {
	verifier, nonce, next string
	expires               time.Time
}

// auth signs people in and keeps their sessions (in memory: a restart signs
// everyone out).
type auth struct {
	mu       sync.Mutex
	sessions map[string]*session
	pending  map[string]*pending
	// token is the one-time sign-in token printed at start; "" once used.
	token     string
	tokenUser User
	// signIns, when set, also redeems the sign-in Secrets of the
	// controller's namespace (the console in the controller).
	signIns *SignIns
	secure  bool
	ttl     time.Duration

	oidc     *oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider
	groups   string
	roles    workspace.Roles
}

const (
	cookieSession = "berth_session"
	headerCSRF    = "X-CSRF-Token"
	fieldCSRF     = "csrf"
)

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *auth) newSession(w http.ResponseWriter, u User) {
	id := randomString(32)
	a.mu.Lock()
	a.sessions[id] = &session{user: u, csrf: randomString(32), expires: time.Now().Add(a.ttl)}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: id, Path: "/", HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode, MaxAge: int(a.ttl.Seconds())})
}

func (a *auth) session(r *http.Request) *session {
	c, err := r.Cookie(cookieSession)
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[c.Value]
	if s == nil || time.Now().After(s.expires) {
		delete(a.sessions, c.Value)
		return nil
	}
	return s
}

func (a *auth) signOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieSession); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: "", Path: "/", HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// useToken exchanges a one-time token for a session: the token printed at
// start, or a sign-in Secret's (signIns). Either works once.
func (a *auth) useToken(ctx context.Context, w http.ResponseWriter, token string) bool {
	a.mu.Lock()
	ok := a.token != "" && subtle.ConstantTimeCompare([]byte(a.token), []byte(token)) == 1
	if ok {
		a.token = ""
	}
	a.mu.Unlock()
	if ok {
		a.newSession(w, a.tokenUser)
		return true
	}
	if a.signIns == nil {
		return false
	}
	u, err := a.signIns.redeem(ctx, token)
	if err != nil {
		if !errors.Is(err, errSignIn) {
			slog.Warn("console: a sign-in could not be checked", "err", err)
		}
		return false
	}
	slog.Info("console: signed in with a sign-in Secret", "user", u.Name, "email", u.Email)
	a.newSession(w, u)
	return true
}

// checkCSRF accepts a state-changing request only with the session's token,
// in the X-CSRF-Token header (htmx) or the csrf form field.
func checkCSRF(r *http.Request, s *session) bool {
	got := r.Header.Get(headerCSRF)
	if got == "" {
		got = r.PostFormValue(fieldCSRF)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// OIDCOptions configures sign-in with an OpenID provider.
type OIDCOptions struct {
	Issuer, ClientID, ClientSecret, RedirectURL string
	Scopes                                      []string
	GroupsClaim                                 string
}

func (a *auth) setupOIDC(ctx context.Context, o OIDCOptions, roles workspace.Roles) error {
	p, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		return fmt.Errorf("OpenID provider %s: %w", o.Issuer, err)
	}
	scopes := o.Scopes
	if len(scopes) == 0 {
		scopes = []string{"profile", "email", "groups"}
	}
	a.provider = p
	a.oidc = &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: o.RedirectURL, Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, scopes...)}
	a.verifier = p.Verifier(&oidc.Config{ClientID: o.ClientID})
	a.groups = o.GroupsClaim
	if a.groups == "" {
		a.groups = "groups"
	}
	a.roles = roles
	return nil
}

// startOIDC redirects to the provider: authorization code with PKCE, a state
// and a nonce kept server-side for ten minutes.
func (a *auth) startOIDC(w http.ResponseWriter, r *http.Request, next string) {
	state, nonce, verifier := randomString(24), randomString(24), oauth2.GenerateVerifier()
	a.mu.Lock()
	for k, p := range a.pending {
		if time.Now().After(p.expires) {
			delete(a.pending, k)
		}
	}
	a.pending[state] = &pending{verifier: verifier, nonce: nonce, next: next, expires: time.Now().Add(10 * time.Minute)}
	a.mu.Unlock()
	http.Redirect(w, r, a.oidc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// errNoRole means the person signed in but none of their groups has a role.
var errNoRole = errors.New("none of your groups has a role in this workspace's console (berth.yaml console.roles)")

// finishOIDC handles the provider's callback: it checks the state, exchanges
// the code with the PKCE verifier, verifies the ID token and its nonce, and
// maps the person's groups to a role.
func (a *auth) finishOIDC(w http.ResponseWriter, r *http.Request) (next string, err error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("the OpenID provider refused the sign-in: %s %s", e, q.Get("error_description"))
	}
	a.mu.Lock()
	p := a.pending[q.Get("state")]
	delete(a.pending, q.Get("state"))
	a.mu.Unlock()
	if p == nil || time.Now().After(p.expires) {
		return "", errors.New("this sign-in is unknown or expired; start again")
	}
	ctx := r.Context()
	tok, err := a.oidc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		return "", fmt.Errorf("exchanging the code at the OpenID provider: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return "", errors.New("the OpenID provider returned no ID token")
	}
	idt, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		return "", fmt.Errorf("verifying the ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.nonce)) != 1 {
		return "", errors.New("the ID token's nonce does not match this sign-in")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return "", err
	}
	// Providers put profile and groups in the ID token or only in userinfo.
	if info, err := a.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		extra := map[string]any{}
		if info.Claims(&extra) == nil {
			for k, v := range extra {
				if _, have := claims[k]; !have {
					claims[k] = v
				}
			}
		}
	}
	u := User{Subject: idt.Subject}
	u.Email, _ = claims["email"].(string)
	u.Name, _ = claims["name"].(string)
	if u.Name == "" {
		u.Name, _ = claims["preferred_username"].(string)
	}
	if u.Name == "" {
		u.Name = u.Email
	}
	if list, ok := claims[a.groups].([]any); ok {
		for _, g := range list {
			if s, ok := g.(string); ok {
				u.Groups = append(u.Groups, s)
			}
		}
	}
	u.Role = RoleFor(a.roles, u.Groups)
	if u.Role == RoleNone {
		return "", errNoRole
	}
	a.newSession(w, u)
	return p.next, nil
}
