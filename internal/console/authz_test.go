package console

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// client is a person's HTTP session with the console.
type client struct {
	t *testing.T
	*http.Client
	base string
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, Client: &http.Client{Jar: jar}, base: base}
}

func (c *client) get(path string) (int, string) {
	c.t.Helper()
	resp, err := c.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *client) post(path string, form url.Values) (int, string) {
	c.t.Helper()
	resp, err := c.PostForm(c.base+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var (
	hiddenID  = regexp.MustCompile(`name="id" value="([^"]+)"`)
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// signInOIDC signs user in through the provider's login form, as a browser
// without JavaScript would.
func (c *client) signInOIDC(issuer, user string) {
	c.t.Helper()
	status, body := c.get("/auth/login?next=/")
	m := hiddenID.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		c.t.Fatalf("the provider's login page: %d\n%s", status, body)
	}
	resp, err := c.PostForm(strings.TrimSuffix(issuer, "/")+"/login/username", url.Values{"id": {m[1]}, "username": {user}, "password": {password}})
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Host != mustURL(c.t, c.base).Host {
		c.t.Fatalf("signing in as %s ended at %s with %d:\n%s", user, resp.Request.URL, resp.StatusCode, b)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// csrf returns the session's CSRF token from a page.
func (c *client) csrf(path string) string {
	c.t.Helper()
	_, body := c.get(path)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no CSRF token on %s:\n%s", path, body)
	}
	return m[1]
}

func TestRolesAndCSRFGuardEveryChange(t *testing.T) {
	f := newFixture(t)
	head := f.git("rev-parse", "HEAD")
	change := url.Values{"p.replicas": {"2"}, "p.greeting": {"hello"}, "p.logLevel": {"debug"}}
	appPath := "/apps/" + f.app

	// Not signed in: sent to sign in; a POST is refused.
	anon := newClient(t, f.url)
	if status, body := anon.get("/"); status != http.StatusOK || !strings.Contains(body, "Sign in to the berth console") {
		t.Errorf("anonymous GET / = %d, want the sign-in page", status)
	}
	if status, _ := anon.post(appPath+"/config", change); status != http.StatusUnauthorized {
		t.Errorf("anonymous POST = %d, want 401", status)
	}

	// A viewer reads, and is refused every change, CSRF token or not.
	viewer := newClient(t, f.url)
	viewer.signInOIDC(f.issuer, viewerUser)
	status, body := viewer.get("/")
	if status != http.StatusOK || !strings.Contains(body, f.app) || !strings.Contains(body, `class="role">viewer<`) {
		t.Fatalf("viewer's overview = %d, want the app listed and the viewer role shown:\n%s", status, body)
	}
	token := viewer.csrf(appPath)
	for _, path := range []string{"/config", "/rollback", "/reconcile", "/suspend"} {
		form := url.Values{"csrf": {token}}
		for k, v := range change {
			form[k] = v
		}
		if status, _ := viewer.post(appPath+path, form); status != http.StatusForbidden {
			t.Errorf("viewer's POST %s = %d, want 403", path, status)
		}
	}
	if status, _ := viewer.post("/catalog/notes/install", url.Values{"csrf": {token}, "p.title": {"Viewer notes"}}); status != http.StatusForbidden {
		t.Errorf("viewer's install = %d, want 403", status)
	}
	for _, path := range []string{"/upgrades/approve", "/upgrades/reject", appPath + "/runbooks/scale/run", appPath + "/uninstall", appPath + "/secrets/apiToken/reveal", "/incidents/" + f.appNS + "/any/ack", "/incidents/" + f.appNS + "/any/resolve"} {
		form := url.Values{"csrf": {token}, "app": {f.app}, "version": {"1.1.0"}, "p.replicas": {"2"}, "confirm": {f.app}}
		if status, _ := viewer.post(path, form); status != http.StatusForbidden {
			t.Errorf("viewer's POST %s = %d, want 403", path, status)
		}
	}

	// An operator may configure, but not install, uninstall or reveal.
	operator := newClient(t, f.url)
	operator.signInOIDC(f.issuer, operatorUser)
	opToken := operator.csrf(appPath)
	if status, _ := operator.post("/catalog/notes/install", url.Values{"csrf": {opToken}, "p.title": {"Operator notes"}}); status != http.StatusForbidden {
		t.Errorf("operator's install = %d, want 403", status)
	}
	for _, path := range []string{appPath + "/uninstall", appPath + "/secrets/apiToken/reveal"} {
		if status, _ := operator.post(path, url.Values{"csrf": {opToken}, "confirm": {f.app}}); status != http.StatusForbidden {
			t.Errorf("operator's POST %s = %d, want 403", path, status)
		}
	}

	// The one-time token signs in once, as an admin; without the CSRF token
	// even an admin's change is refused, and a token from another session too.
	admin := newClient(t, f.url)
	if status, body := admin.get("/signin?token=" + url.QueryEscape(f.srv.Token())); status != http.StatusOK || !strings.Contains(body, `class="role">admin<`) {
		t.Fatalf("token sign-in = %d, want the overview as admin", status)
	}
	if status, _ := newClient(t, f.url).get("/signin?token=" + url.QueryEscape("used")); status != http.StatusUnauthorized {
		t.Errorf("a wrong token = %d, want 401", status)
	}
	if f.srv.Token() != "" {
		t.Errorf("the one-time token still works after its use")
	}
	if status, _ := admin.post(appPath+"/config", change); status != http.StatusForbidden {
		t.Errorf("admin's POST without CSRF token = %d, want 403", status)
	}
	withOther := url.Values{"csrf": {token}}
	for k, v := range change {
		withOther[k] = v
	}
	if status, _ := admin.post(appPath+"/config", withOther); status != http.StatusForbidden {
		t.Errorf("admin's POST with another session's CSRF token = %d, want 403", status)
	}

	// An admin's install review commits nothing, and it is hers: another
	// admin's session cannot install it, nor can she twice.
	adminToken := admin.csrf(appPath)
	status, body = admin.post("/catalog/notes/install", url.Values{"csrf": {adminToken}, "name": {f.app + "-notes"}, "namespace": {f.app + "-notes"}, "p.title": {"Admin notes"}})
	m := regexp.MustCompile(`name="review" value="([^"]+)"`).FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("admin's install review = %d, without a review to confirm:\n%s", status, body)
	}
	other := newClient(t, f.url)
	other.signInOIDC(f.issuer, adminUser)
	if status, body := other.post("/catalog/notes/install", url.Values{"csrf": {other.csrf(appPath)}, "review": {m[1]}}); status != http.StatusConflict || !strings.Contains(body, "This review is no longer known") {
		t.Errorf("another session's use of a review = %d, want 409 and nothing installed", status)
	}
	if status, _ := admin.post("/catalog/notes/install", url.Values{"csrf": {adminToken}, "review": {m[1]}, "back": {"1"}}); status != http.StatusOK {
		t.Errorf("Back from the review = %d, want the form", status)
	}
	if status, _ := admin.post("/catalog/notes/install", url.Values{"csrf": {adminToken}, "review": {m[1]}}); status != http.StatusConflict {
		t.Errorf("a review used (by Back) installed = %d, want 409", status)
	}

	if got := f.git("rev-parse", "HEAD"); got != head {
		t.Errorf("refused requests changed the workspace: HEAD %s -> %s", head, got)
	}
	if st := f.git("status", "--porcelain"); st != "" {
		t.Errorf("refused requests left changes in the work tree:\n%s", st)
	}

	// No page shows a secret value: the generated session key stays in the
	// encrypted secrets file.
	_, page := admin.get(appPath)
	if strings.Contains(page, "sessionKey") || !strings.Contains(page, `type="password" id="p-apiToken"`) {
		t.Errorf("app page shows a generated secret parameter or lacks the masked secret field")
	}
}
