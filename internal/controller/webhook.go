package controller

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
)

// webhook receives push notifications from GitHub, GitLab and Gitea, checks
// their signature with the token of each Workspace following the pushed
// repository and branch, and asks for an immediate fetch of those Workspaces.
type webhook struct {
	client client.Client
	reader client.Reader // uncached, for Secrets
	log    logr.Logger
	// trigger, when set, reconciles a Workspace in this process and reports
	// whether it could; otherwise the push is recorded on the Workspace.
	trigger func(*berthv1.Workspace) bool
}

// push is what the three forges' push payloads share.
type push struct {
	Ref        string `json:"ref"`
	Repository struct {
		CloneURL string `json:"clone_url"`
		SSHURL   string `json:"ssh_url"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
	Project struct { // GitLab
		HTTPURL string `json:"git_http_url"`
		SSHURL  string `json:"git_ssh_url"`
		WebURL  string `json:"web_url"`
	} `json:"project"`
}

// WebhookResponse is the JSON body the webhook answers with.
type WebhookResponse struct {
	// Workspaces are the Workspaces (namespace/name) asked to fetch.
	Workspaces []string `json:"workspaces"`
	Message    string   `json:"message,omitempty"`
}

const maxPayload = 5 << 20

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, WebhookResponse{Message: "POST a push event"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil || len(body) > maxPayload {
		reply(w, http.StatusBadRequest, WebhookResponse{Message: "unreadable or oversized payload"})
		return
	}
	var verify func(token []byte) bool
	var event string
	switch {
	case r.Header.Get("X-GitHub-Event") != "":
		event = r.Header.Get("X-GitHub-Event")
		verify = hmacVerifier(body, strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256="))
	case r.Header.Get("X-Gitea-Event") != "":
		event = r.Header.Get("X-Gitea-Event")
		verify = hmacVerifier(body, r.Header.Get("X-Gitea-Signature"))
	case r.Header.Get("X-Gitlab-Event") != "":
		event = strings.ToLower(strings.TrimSuffix(r.Header.Get("X-Gitlab-Event"), " Hook"))
		got := []byte(r.Header.Get("X-Gitlab-Token"))
		verify = func(token []byte) bool { return len(got) > 0 && subtle.ConstantTimeCompare(got, token) == 1 }
	default:
		reply(w, http.StatusBadRequest, WebhookResponse{Message: "not a GitHub, GitLab or Gitea webhook (no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header)"})
		return
	}
	if event == "ping" {
		reply(w, http.StatusOK, WebhookResponse{Message: "pong"})
		return
	}
	if event != "push" {
		reply(w, http.StatusAccepted, WebhookResponse{Message: fmt.Sprintf("ignored %q event: only push events trigger a fetch", event)})
		return
	}
	var p push
	if err := json.Unmarshal(body, &p); err != nil {
		reply(w, http.StatusBadRequest, WebhookResponse{Message: "payload is not a push event: " + err.Error()})
		return
	}
	branch, ok := strings.CutPrefix(p.Ref, "refs/heads/")
	if !ok {
		reply(w, http.StatusAccepted, WebhookResponse{Message: "ignored: not a branch push"})
		return
	}
	repos := map[string]bool{}
	for _, u := range []string{p.Repository.CloneURL, p.Repository.SSHURL, p.Repository.HTMLURL, p.Project.HTTPURL, p.Project.SSHURL, p.Project.WebURL} {
		if u != "" {
			repos[normalizeRepoURL(u)] = true
		}
	}
	var list berthv1.WorkspaceList
	if err := h.client.List(r.Context(), &list); err != nil {
		reply(w, http.StatusServiceUnavailable, WebhookResponse{Message: "listing Workspaces: " + err.Error()})
		return
	}
	matched, signed := 0, []string{}
	for i := range list.Items {
		ws := &list.Items[i]
		b := ws.Spec.Branch
		if b == "" {
			b = "main"
		}
		if b != branch || !repos[normalizeRepoURL(ws.Spec.URL)] {
			continue
		}
		matched++
		if ws.Spec.WebhookSecretRef == nil {
			continue
		}
		var s corev1.Secret
		if err := h.reader.Get(r.Context(), client.ObjectKey{Namespace: ws.Namespace, Name: ws.Spec.WebhookSecretRef.Name}, &s); err != nil {
			h.log.Error(err, "reading the webhook token", "workspace", client.ObjectKeyFromObject(ws).String())
			continue
		}
		token := s.Data[berthv1.WebhookTokenKey]
		if len(token) == 0 || !verify(token) {
			continue
		}
		if h.trigger != nil && h.trigger(ws.DeepCopy()) {
			signed = append(signed, client.ObjectKeyFromObject(ws).String())
			continue
		}
		patch := client.MergeFrom(ws.DeepCopy())
		if ws.Annotations == nil {
			ws.Annotations = map[string]string{}
		}
		ws.Annotations[berthv1.AnnotationFetchRequestedAt] = time.Now().UTC().Format(time.RFC3339Nano)
		if err := h.client.Patch(r.Context(), ws, patch); err != nil {
			reply(w, http.StatusServiceUnavailable, WebhookResponse{Message: "recording the push on the Workspace: " + err.Error()})
			return
		}
		signed = append(signed, client.ObjectKeyFromObject(ws).String())
	}
	switch {
	case matched == 0:
		reply(w, http.StatusNotFound, WebhookResponse{Workspaces: signed, Message: "no Workspace follows this repository and branch"})
	case len(signed) == 0:
		// Say nothing about which Workspaces exist to an unsigned caller.
		reply(w, http.StatusUnauthorized, WebhookResponse{Workspaces: signed, Message: "signature does not match the token of any Workspace following this repository (spec.webhookSecretRef)"})
	default:
		h.log.Info("push received", "branch", branch, "workspaces", signed)
		reply(w, http.StatusAccepted, WebhookResponse{Workspaces: signed})
	}
}

// hmacVerifier checks a hex HMAC-SHA256 of body, as GitHub and Gitea sign.
func hmacVerifier(body []byte, sigHex string) func([]byte) bool {
	sig, err := hex.DecodeString(sigHex)
	return func(token []byte) bool {
		if err != nil || len(sig) == 0 {
			return false
		}
		m := hmac.New(sha256.New, token)
		m.Write(body)
		return hmac.Equal(m.Sum(nil), sig)
	}
}

// normalizeRepoURL reduces the spellings of one repository's URL (https, ssh,
// scp-like, with or without .git and credentials) to host/path.
func normalizeRepoURL(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		if at := strings.Index(s, "@"); at >= 0 {
			s = s[at+1:]
		}
		s = "ssh://" + strings.Replace(s, ":", "/", 1)
	}
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	p := strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	return strings.ToLower(u.Hostname()) + "/" + p
}

func reply(w http.ResponseWriter, code int, body WebhookResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
