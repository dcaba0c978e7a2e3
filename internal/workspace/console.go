package workspace

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ConsoleConfig is berth.yaml's console: section: how people sign in to
// 'berth console' and what each may do.
type ConsoleConfig struct {
	// OIDC is the team's OpenID provider; without it the console signs in only
	// through the one-time URL it prints at start.
	OIDC *OIDCConfig `json:"oidc,omitempty"`
	// Roles map the provider's groups to what their members may do.
	Roles Roles `json:"roles,omitempty"`
}

// OIDCConfig names an OpenID provider and the console's client there. The
// client secret is never in the workspace: it is read from the environment
// variable ClientSecretEnv.
type OIDCConfig struct {
	Issuer   string `json:"issuer"`
	ClientID string `json:"clientID"`
	// ClientSecretEnv names the environment variable holding the client
	// secret; BERTH_CONSOLE_CLIENT_SECRET when empty. A public client (PKCE
	// only) leaves it unset.
	ClientSecretEnv string `json:"clientSecretEnv,omitempty"`
	// RedirectURL is the console's callback as the provider knows it
	// (https://console.example.com/auth/callback); derived from the address
	// the console listens on when empty.
	RedirectURL string `json:"redirectURL,omitempty"`
	// GroupsClaim is the claim holding the person's groups; "groups" when empty.
	GroupsClaim string `json:"groupsClaim,omitempty"`
	// Scopes are requested besides openid; profile, email and groups when empty.
	Scopes []string `json:"scopes,omitempty"`
}

// Roles lists, per role, the groups whose members have it. A person has the
// highest role any of their groups grants; one in no listed group cannot
// sign in.
type Roles struct {
	// Viewer reads everything but secret values.
	Viewer []string `json:"viewer,omitempty"`
	// Operator also configures, rolls back, suspends, resumes and reconciles.
	Operator []string `json:"operator,omitempty"`
	// Admin also installs and uninstalls.
	Admin []string `json:"admin,omitempty"`
}

// DefaultClientSecretEnv is where the console reads its OIDC client secret
// when console.oidc.clientSecretEnv is not set.
const DefaultClientSecretEnv = "BERTH_CONSOLE_CLIENT_SECRET"

func (c *ConsoleConfig) validate() error {
	if c == nil {
		return nil
	}
	if o := c.OIDC; o != nil {
		u, err := url.Parse(o.Issuer)
		if o.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("oidc.issuer: want the provider's URL (https://login.example.com), got %q", o.Issuer)
		}
		if o.ClientID == "" {
			return errors.New("oidc.clientID: set the console's client ID at the provider")
		}
		if o.RedirectURL != "" {
			if u, err := url.Parse(o.RedirectURL); err != nil || u.Host == "" {
				return fmt.Errorf("oidc.redirectURL: want an absolute URL ending in /auth/callback, got %q", o.RedirectURL)
			}
		}
		if len(c.Roles.Viewer)+len(c.Roles.Operator)+len(c.Roles.Admin) == 0 {
			return errors.New("roles: with oidc, list the groups of at least one role (viewer, operator, admin), or nobody can sign in")
		}
	}
	for role, groups := range map[string][]string{"viewer": c.Roles.Viewer, "operator": c.Roles.Operator, "admin": c.Roles.Admin} {
		for i, g := range groups {
			if strings.TrimSpace(g) == "" {
				return fmt.Errorf("roles.%s[%d]: a group name is empty", role, i)
			}
		}
	}
	return nil
}

// Author is the person a commit is made for: the signed-in user of the console.
type Author struct {
	Name  string
	Email string
}

type authorKey struct{}

// WithAuthor returns a context whose workspace commits name a as their author
// (the committer stays the repository's configured identity), so that a
// change made through the console is recorded as the signed-in person's.
func WithAuthor(ctx context.Context, a Author) context.Context {
	return context.WithValue(ctx, authorKey{}, a)
}

// AuthorOf returns the author WithAuthor put in ctx, if any: who a change
// is made for, for records that name the person (a runbook run's).
func AuthorOf(ctx context.Context) (Author, bool) {
	a, ok := ctx.Value(authorKey{}).(Author)
	return a, ok && a.Name != ""
}

// authorFrom returns the --author argument of ctx's author, or "".
func authorFrom(ctx context.Context) string {
	a, ok := ctx.Value(authorKey{}).(Author)
	if !ok || a.Name == "" {
		return ""
	}
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '<' || r == '>' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, s)
	}
	email := clean(a.Email)
	if email == "" {
		email = "unknown@berth.invalid"
	}
	return clean(a.Name) + " <" + email + ">"
}
