package upgrades

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/workspace"
)

func TestNotifySendsSlackAndJSONAndNeverTheURL(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(r.URL.Path, "broken") {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	t.Setenv("SLACK_HOOK", srv.URL+"/slack/T0K3N")
	t.Setenv("BROKEN_HOOK", srv.URL+"/broken/S3CRET")
	notifications := []workspace.Notification{
		{Name: "chat", Format: workspace.FormatSlack, URLEnv: "SLACK_HOOK", Events: []string{"rolledBack"}},
		{Name: "audit", Format: workspace.FormatJSON, URLSecret: &workspace.SecretKeyRef{Name: "hooks", Key: "audit"}},
		{Name: "down", URLEnv: "BROKEN_HOOK"},
	}
	secretURL := func(_ context.Context, n workspace.Notification) (string, error) {
		return srv.URL + "/audit/" + n.URLSecret.Key, nil
	}
	events := []Event{
		{Type: EventProposed, App: "web", From: "1.0.0", To: "1.1.0", Branch: "berth/upgrade/web/1.1.0", Message: "proposed"},
		{Type: EventRolledBack, App: "api", From: "2.1.0", To: "2.0.0", Message: "not healthy"},
	}
	errs := Notify(context.Background(), srv.Client(), "ns/ws", notifications, secretURL, events)
	if diff := cmp.Diff([]string{`{"text":"berth (ns/ws): rolledBack not healthy"}`}, got["/slack/T0K3N"]); diff != "" {
		t.Errorf("slack (-want +got):\n%s", diff)
	}
	if len(got["/audit/audit"]) != 2 {
		t.Fatalf("json notification got %v", got["/audit/audit"])
	}
	var p NotificationPayload
	if err := json.Unmarshal([]byte(got["/audit/audit"][0]), &p); err != nil {
		t.Fatal(err)
	}
	if p.Workspace != "ns/ws" || p.Type != EventProposed || p.App != "web" || p.Branch != "berth/upgrade/web/1.1.0" {
		t.Errorf("json payload = %+v", p)
	}
	if len(errs) != 2 {
		t.Fatalf("errors = %v, want the two events of the broken webhook", errs)
	}
	for _, err := range errs {
		if !strings.Contains(err.Error(), "notification down") || !strings.Contains(err.Error(), "500") || strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("error %q: want the notification named, the status, and never the URL", err)
		}
	}
	// An unreachable webhook: the client's error carries the URL; ours does not.
	t.Setenv("BROKEN_HOOK", "http://127.0.0.1:1/unreachable/S3CRET")
	for _, err := range Notify(context.Background(), srv.Client(), "ns/ws", notifications[2:], nil, events[:1]) {
		if strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("error %q leaks the URL", err)
		}
	}
	if errs := Notify(context.Background(), srv.Client(), "ns/ws", []workspace.Notification{{Name: "x", URLEnv: "UNSET_HOOK_VAR"}}, nil, events[:1]); len(errs) != 1 || !strings.Contains(errs[0].Error(), "UNSET_HOOK_VAR (urlEnv) is empty") {
		t.Errorf("empty env: %v", errs)
	}
}
