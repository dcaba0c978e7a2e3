package console

import (
	"encoding/json"
	"strings"
	"testing"

	"berth.dev/berth/internal/workspace"
)

func TestRoleForGivesTheHighestRoleOfAnyGroup(t *testing.T) {
	roles := workspace.Roles{Viewer: []string{"everyone"}, Operator: []string{"oncall"}, Admin: []string{"platform"}}
	tests := map[string]struct {
		groups []string
		want   Role
	}{
		"none":              {nil, RoleNone},
		"unknown group":     {[]string{"sales"}, RoleNone},
		"viewer":            {[]string{"everyone"}, RoleViewer},
		"operator":          {[]string{"everyone", "oncall"}, RoleOperator},
		"admin beats order": {[]string{"platform", "everyone"}, RoleAdmin},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := RoleFor(roles, tc.groups); got != tc.want {
				t.Errorf("RoleFor(%v) = %v, want %v", tc.groups, got, tc.want)
			}
		})
	}
}

func TestSafeNextKeepsRedirectsOnTheConsole(t *testing.T) {
	tests := map[string]string{
		"":                     "/",
		"/apps/web?x=1":        "/apps/web?x=1",
		"https://evil.example": "/",
		"//evil.example/x":     "/",
		"/\\evil.example":      "/",
	}
	for in, want := range tests {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFilterMatchesSearchAndHealth(t *testing.T) {
	rows := []Row{
		{Name: "web", Package: "webapp", Namespace: "shop", Health: "Healthy"},
		{Name: "db", Package: "postgresql", Namespace: "shop", Health: "Failed", Missing: 1},
		{Name: "cache", Package: "redis", Namespace: "infra", Health: "Healthy", Suspended: true},
	}
	tests := map[string]struct {
		f    Filter
		want []string
	}{
		"all":             {Filter{}, []string{"web", "db", "cache"}},
		"by package":      {Filter{Query: "POSTGRES"}, []string{"db"}},
		"by namespace":    {Filter{Query: "shop"}, []string{"web", "db"}},
		"by health":       {Filter{Health: "Healthy"}, []string{"web", "cache"}},
		"drifted":         {Filter{Health: "drifted"}, []string{"db"}},
		"suspended":       {Filter{Health: "suspended"}, []string{"cache"}},
		"search and kind": {Filter{Query: "shop", Health: "Healthy"}, []string{"web"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, r := range rows {
				if tc.f.match(r) {
					got = append(got, r.Name)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("matched %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("matched %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// A log line is one event whose data is JSON, whatever it holds: markup
// stays text for the page, and a newline cannot end the event early.
func TestLogLineIsOneEventOfJSON(t *testing.T) {
	var b strings.Builder
	text := "</div><script>alert(1)</script>\ndata: {\"text\":\"forged\"}\n\nevent: failed"
	if err := writeSSE(&b, "line", logEvent{Pod: "web-1", Container: "web", Text: text}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "event: line\ndata: ") || !strings.HasSuffix(out, "\n\n") || strings.Count(out, "\n") != 3 {
		t.Fatalf("event = %q, want one event line, one data line and the blank line", out)
	}
	var got logEvent
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(out, "event: line\ndata: "), "\n\n")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Text != text {
		t.Errorf("the line read back = %q, want %q", got.Text, text)
	}
	if strings.Contains(out, "<script>") {
		t.Errorf("the event carries markup unescaped: %q", out)
	}
}

func TestEveryPageParses(t *testing.T) {
	s := &Server{}
	if err := s.parseTemplates(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"overview", "app", "catalog", "package", "signin", "upgrades", "incidents", "incident", "runbook", "fleet"} {
		if s.pages[p] == nil {
			t.Errorf("no page %s", p)
		}
	}
}
