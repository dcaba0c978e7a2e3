package upgrades_test

import (
	"encoding/base64"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/upgrades"
	"berth.dev/berth/internal/upgrades/upgradestest"
)

// A credential that may fetch but not push (git's HTTP backend refuses
// anonymous pushes with 403) is a GitWritable=False condition, not an error:
// the cycle still lists what is available. The token travels as a header.
func TestAReadOnlyCredentialIsACondition(t *testing.T) {
	cat := upgradestest.NewCatalog(t, "1.0.0", "1.0.0")
	w := upgradestest.NewWorkspace(t, cat, "")
	w.Install(t, "web", "")
	root := t.TempDir()
	upgradestest.Git(t, w.WS.Root, "clone", "--quiet", "--bare", w.WS.Root, filepath.Join(root, "ws.git"))
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	var authorized atomic.Int64
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("git:t0ken"))
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == want {
			authorized.Add(1)
		}
		backend.ServeHTTP(rw, r)
	}))
	defer srv.Close()

	c := newCycler(t, w)
	c.target.URL = srv.URL + "/ws.git"
	c.target.Auth = upgrades.GitAuth{Password: "t0ken"}
	cat.Publish(t, "1.1.0", "1.1.0")
	res := c.cycle(t)
	cond := apimeta.FindStatusCondition(res.Status.Conditions, berthv1.ConditionGitWritable)
	if cond == nil || cond.Status != "False" || cond.Reason != berthv1.ReasonReadOnlyCredential || !strings.Contains(cond.Message, "spec.upgrades.writeSecretRef") || strings.Contains(cond.Message, "t0ken") {
		t.Errorf("GitWritable = %+v", cond)
	}
	if a := available(t, res, "web"); a.State != "proposed" || !strings.Contains(a.Message, "could not be pushed") || len(res.Status.Proposals) != 0 {
		t.Errorf("available = %+v, proposals %+v", a, res.Status.Proposals)
	}
	if authorized.Load() == 0 {
		t.Error("git never sent the token")
	}
}
