package controller

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/incident"
)

// alertHook receives Alertmanager's webhook (/hooks/alertmanager): a firing
// alert opens an incident (or counts on it), a resolved one resolves it. The
// caller authenticates with a bearer token, the webhook token of a Workspace
// (spec.webhookSecretRef); incidents go to that Workspace's namespace.
type alertHook struct {
	client client.Client
	reader client.Reader // uncached, for Secrets and Incidents
	log    logr.Logger
}

func (h *alertHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, WebhookResponse{Message: "POST an Alertmanager notification"})
		return
	}
	ws, err := h.authenticate(r)
	if err != nil {
		reply(w, http.StatusServiceUnavailable, WebhookResponse{Message: err.Error()})
		return
	}
	if ws == nil {
		reply(w, http.StatusUnauthorized, WebhookResponse{Message: "the bearer token matches the webhook token of no Workspace (spec.webhookSecretRef); set it in Alertmanager's http_config.authorization"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil || len(body) > maxPayload {
		reply(w, http.StatusBadRequest, WebhookResponse{Message: "unreadable or oversized payload"})
		return
	}
	var p incident.AlertmanagerPayload
	if err := json.Unmarshal(body, &p); err != nil {
		h.refuse(w, "payload is not JSON of an Alertmanager notification")
		return
	}
	if err := p.Validate(); err != nil {
		h.refuse(w, "payload is not an Alertmanager notification: "+err.Error())
		return
	}
	rec := &incident.Recorder{Client: h.client, Reader: h.reader}
	var opened, resolved []string
	for _, a := range p.Alerts {
		c := incident.AlertCause(a, ws.Namespace)
		if a.Status == "firing" {
			if _, err := rec.Observe(r.Context(), c); err != nil {
				reply(w, http.StatusServiceUnavailable, WebhookResponse{Message: err.Error()})
				return
			}
			opened = append(opened, c.Name())
			continue
		}
		_, err := rec.Resolve(r.Context(), ws.Namespace, c.Name(), "", "the alert resolved")
		switch {
		case apierrors.IsNotFound(err):
			// Resolved before berth heard it fire: nothing to resolve.
		case err != nil:
			reply(w, http.StatusServiceUnavailable, WebhookResponse{Message: err.Error()})
			return
		default:
			resolved = append(resolved, c.Name())
		}
	}
	h.log.Info("alerts received", "workspace", client.ObjectKeyFromObject(ws).String(), "firing", opened, "resolved", resolved)
	reply(w, http.StatusAccepted, WebhookResponse{Workspaces: []string{client.ObjectKeyFromObject(ws).String()},
		Message: fmt.Sprintf("firing: %s; resolved: %s", strings.Join(opened, ", "), strings.Join(resolved, ", "))})
}

// refuse answers 400 and logs why, never the body: labels and annotations
// may carry secrets.
func (h *alertHook) refuse(w http.ResponseWriter, msg string) {
	h.log.Info("refused an Alertmanager notification", "reason", msg)
	reply(w, http.StatusBadRequest, WebhookResponse{Message: msg})
}

// authenticate returns the Workspace whose webhook token the request's
// bearer token is, or nil.
func (h *alertHook) authenticate(r *http.Request) (*berthv1.Workspace, error) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		return nil, nil
	}
	var list berthv1.WorkspaceList
	if err := h.client.List(r.Context(), &list); err != nil {
		return nil, fmt.Errorf("listing Workspaces: %w", err)
	}
	for i := range list.Items {
		ws := &list.Items[i]
		if ws.Spec.WebhookSecretRef == nil {
			continue
		}
		var s corev1.Secret
		if err := h.reader.Get(r.Context(), client.ObjectKey{Namespace: ws.Namespace, Name: ws.Spec.WebhookSecretRef.Name}, &s); err != nil {
			continue
		}
		token := s.Data[berthv1.WebhookTokenKey]
		if len(token) > 0 && subtle.ConstantTimeCompare([]byte(got), token) == 1 {
			return ws, nil
		}
	}
	return nil, nil
}
