package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/testcluster"
)

// TestAlertmanagerWebhook: only a caller with a Workspace's webhook token is
// heard; a malformed payload is refused with 400 without echoing it; a
// firing alert opens one incident, the same notification again changes
// nothing, its resolution resolves it, and firing again reopens it.
func TestAlertmanagerWebhook(t *testing.T) {
	installCRD(t)
	installIncidentCRD(t)
	ns := testcluster.Namespace(t)
	k := kube(t)
	ctx := context.Background()
	const token = "alert-token"
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"}, Data: map[string][]byte{"token": []byte(token)}}); err != nil {
		t.Fatal(err)
	}
	createWorkspace(t, k, ns, "main", "https://git.example.com/acme/platform.git", func(ws *berthv1.Workspace) {
		ws.Spec.WebhookSecretRef = &berthv1.LocalSecretReference{Name: "hook"}
	})
	srv := httptest.NewServer(&alertHook{client: k, reader: k, log: logr.Discard()})
	defer srv.Close()

	alert := func(status, startsAt string) string {
		return `{"version":"4","status":"` + status + `","alerts":[{"status":"` + status + `",
			"labels":{"alertname":"PostgresHighConnections","severity":"warning","berth_app":"shop-db"},
			"annotations":{"summary":"connections above 90% of max_connections","runbook":"scale-resources"},
			"startsAt":"` + startsAt + `","fingerprint":"abc123"}]}`
	}
	post := func(method, auth, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL, bytes.NewReader([]byte(body)))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got WebhookResponse
		_ = json.NewDecoder(resp.Body).Decode(&got)
		return resp.StatusCode, got.Message
	}
	incident := func() *berthv1.Incident {
		t.Helper()
		var inc berthv1.Incident
		if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-db-alert-postgreshighconnections"}, &inc); err != nil {
			return nil
		}
		return &inc
	}
	first := alert("firing", "2026-12-06T23:00:00Z")
	refused := map[string]struct {
		method, auth, body string
		code               int
		want               string
	}{
		"no token":      {http.MethodPost, "", first, http.StatusUnauthorized, "bearer token"},
		"wrong token":   {http.MethodPost, "Bearer guess", first, http.StatusUnauthorized, "bearer token"},
		"not JSON":      {http.MethodPost, "Bearer " + token, "{not json", http.StatusBadRequest, "not JSON"},
		"wrong version": {http.MethodPost, "Bearer " + token, `{"version":"3","alerts":[]}`, http.StatusBadRequest, `version: want "4"`},
		"no alertname": {http.MethodPost, "Bearer " + token, `{"version":"4","alerts":[{"status":"firing","labels":{"password":"hunter2"},"startsAt":"2026-12-06T23:00:00Z"}]}`,
			http.StatusBadRequest, "alerts[0].labels.alertname: missing"},
		"GET": {http.MethodGet, "Bearer " + token, "", http.StatusMethodNotAllowed, "POST"},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			code, msg := post(tc.method, tc.auth, tc.body)
			if code != tc.code || !strings.Contains(msg, tc.want) || strings.Contains(msg, "hunter2") {
				t.Errorf("%d %q, want %d with %q (and no label value)", code, msg, tc.code, tc.want)
			}
		})
	}
	if inc := incident(); inc != nil {
		t.Fatalf("a refused notification opened %s", inc.Name)
	}

	if code, msg := post(http.MethodPost, "Bearer "+token, first); code != http.StatusAccepted {
		t.Fatalf("firing: %d %s", code, msg)
	}
	inc := incident()
	if inc == nil || inc.Status.State != berthv1.IncidentOpen || inc.Status.Count != 1 || inc.Spec.App != "shop-db" || inc.Spec.Cause != berthv1.CauseAlert ||
		inc.Status.Message != "warning: connections above 90% of max_connections (runbook: scale-resources)" {
		t.Fatalf("incident after firing: %+v", inc)
	}
	post(http.MethodPost, "Bearer "+token, first) // Alertmanager repeats notifications
	if inc := incident(); inc.Status.Count != 1 {
		t.Errorf("a repeated notification counted: %+v", inc.Status)
	}
	post(http.MethodPost, "Bearer "+token, alert("resolved", "2026-12-06T23:00:00Z"))
	if inc := incident(); inc.Status.State != berthv1.IncidentResolved {
		t.Errorf("after resolved: %+v", inc.Status)
	}
	post(http.MethodPost, "Bearer "+token, alert("firing", "2026-12-07T01:00:00Z"))
	if inc := incident(); inc.Status.State != berthv1.IncidentOpen || inc.Status.Count != 2 {
		t.Errorf("firing again: %+v", inc.Status)
	}
}
