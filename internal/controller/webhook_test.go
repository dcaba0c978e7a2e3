package controller

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/testcluster"
)

func TestNormalizeRepoURL(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"https":            {"https://git.example.com/acme/platform.git", "git.example.com/acme/platform"},
		"https no .git":    {"https://git.example.com/acme/platform", "git.example.com/acme/platform"},
		"credentials":      {"https://user:tok@Git.Example.com/acme/platform.git/", "git.example.com/acme/platform"},
		"ssh":              {"ssh://git@git.example.com:2222/acme/platform.git", "git.example.com/acme/platform"},
		"scp-like":         {"git@git.example.com:acme/platform.git", "git.example.com/acme/platform"},
		"another repo":     {"https://git.example.com/acme/other.git", "git.example.com/acme/other"},
		"gitlab subgroups": {"https://gitlab.example.com/a/b/c.git", "gitlab.example.com/a/b/c"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := normalizeRepoURL(tt.in); got != tt.want {
				t.Errorf("normalizeRepoURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestWebhookSignatures sends push events as GitHub, GitLab and Gitea sign them
// to the webhook, against Workspaces in a real API server.
func TestWebhookSignatures(t *testing.T) {
	installCRD(t)
	ns := testcluster.Namespace(t)
	k := kube(t)
	ctx := context.Background()
	const token = "hook-token"
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"}, Data: map[string][]byte{"token": []byte(token)}}); err != nil {
		t.Fatal(err)
	}
	const url = "https://git.example.com/acme/platform.git"
	createWorkspace(t, k, ns, "signed", url, func(ws *berthv1.Workspace) {
		ws.Spec.WebhookSecretRef = &berthv1.LocalSecretReference{Name: "hook"}
	})
	createWorkspace(t, k, ns, "other-branch", url, func(ws *berthv1.Workspace) {
		ws.Spec.Branch = "release"
		ws.Spec.WebhookSecretRef = &berthv1.LocalSecretReference{Name: "hook"}
	})
	createWorkspace(t, k, ns, "unsigned", url, nil)
	h := &webhook{client: k, reader: k}
	srv := httptest.NewServer(h)
	defer srv.Close()

	github := []byte(`{"ref":"refs/heads/main","repository":{"clone_url":"https://git.example.com/acme/platform.git","ssh_url":"git@git.example.com:acme/platform.git"}}`)
	gitlab := []byte(`{"ref":"refs/heads/main","project":{"git_http_url":"https://git.example.com/acme/platform.git"}}`)
	elsewhere := []byte(`{"ref":"refs/heads/main","repository":{"clone_url":"https://git.example.com/acme/other.git"}}`)
	sign := func(body []byte, tok string) string {
		m := hmac.New(sha256.New, []byte(tok))
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	tests := map[string]struct {
		body    []byte
		headers map[string]string
		code    int
		want    []string
	}{
		"github signed":           {github, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(github, token)}, http.StatusAccepted, []string{ns + "/signed"}},
		"github wrong token":      {github, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(github, "guess")}, http.StatusUnauthorized, nil},
		"github unsigned":         {github, map[string]string{"X-GitHub-Event": "push"}, http.StatusUnauthorized, nil},
		"github ping":             {[]byte(`{}`), map[string]string{"X-GitHub-Event": "ping"}, http.StatusOK, nil},
		"gitea signed":            {github, map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(github, token)}, http.StatusAccepted, []string{ns + "/signed"}},
		"gitea tampered body":     {append([]byte(" "), github...), map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(github, token)}, http.StatusUnauthorized, nil},
		"gitlab token":            {gitlab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": token}, http.StatusAccepted, []string{ns + "/signed"}},
		"gitlab wrong token":      {gitlab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, http.StatusUnauthorized, nil},
		"no workspace follows it": {elsewhere, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(elsewhere, token)}, http.StatusNotFound, nil},
		"unknown forge":           {github, map[string]string{"X-Other-Event": "push"}, http.StatusBadRequest, nil},
		"tag push":                {[]byte(`{"ref":"refs/tags/v1"}`), map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign([]byte(`{"ref":"refs/tags/v1"}`), token)}, http.StatusAccepted, nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var before berthv1.Workspace
			if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signed"}, &before); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(tt.body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got WebhookResponse
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.code {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, got.Message, tt.code)
			}
			if diff := cmp.Diff(tt.want, got.Workspaces, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("workspaces (-want +got):\n%s", diff)
			}
			var after berthv1.Workspace
			if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signed"}, &after); err != nil {
				t.Fatal(err)
			}
			changed := before.Annotations[berthv1.AnnotationFetchRequestedAt] != after.Annotations[berthv1.AnnotationFetchRequestedAt]
			if changed != (len(tt.want) > 0) {
				t.Errorf("fetch requested = %v, want %v", changed, len(tt.want) > 0)
			}
		})
	}
}
