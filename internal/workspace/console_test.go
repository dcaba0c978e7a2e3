package workspace

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWithAuthorRecordsThePersonAndKeepsTheCommitter(t *testing.T) {
	w := newWorkspace(t)
	committer := gitOut(t, w.Root, "log", "-1", "--format=%cn <%ce>")
	ctx := WithAuthor(context.Background(), Author{Name: "Ada <Lovelace>", Email: "ada@example.com"})
	err := w.Change(ctx, "note", []string{"apps/note.txt"}, func() error {
		return w.WriteFile("apps/note.txt", []byte("hi\n"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := gitOut(t, w.Root, "log", "-1", "--format=%an <%ae>"); got != "Ada Lovelace <ada@example.com>" {
		t.Errorf("author = %q, want the signed-in person (angle brackets dropped from the name)", got)
	}
	if got := gitOut(t, w.Root, "log", "-1", "--format=%cn <%ce>"); got != committer {
		t.Errorf("committer = %q, want the repository's identity %q", got, committer)
	}
	// Without an author in the context, commits are the repository's own.
	err = w.Change(context.Background(), "note 2", []string{"apps/note.txt"}, func() error {
		return w.WriteFile("apps/note.txt", []byte("hi again\n"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := gitOut(t, w.Root, "log", "-1", "--format=%an <%ae>"); got != committer {
		t.Errorf("author without WithAuthor = %q, want %q", got, committer)
	}
}

func TestConsoleConfigIsReadAndCheckedWithTheFileAndField(t *testing.T) {
	good := "apiVersion: " + APIVersion + `
kind: Workspace
cluster: {}
defaults: {channel: stable}
console:
  oidc: {issuer: "https://login.example.com", clientID: berth}
  roles: {viewer: [everyone], operator: [oncall], admin: [platform]}
`
	var cfg Config
	if err := ParseConfig("berth.yaml", []byte(good), &cfg); err != nil {
		t.Fatal(err)
	}
	want := &ConsoleConfig{OIDC: &OIDCConfig{Issuer: "https://login.example.com", ClientID: "berth"}, Roles: Roles{Viewer: []string{"everyone"}, Operator: []string{"oncall"}, Admin: []string{"platform"}}}
	if d := cmp.Diff(want, cfg.Console); d != "" {
		t.Errorf("console config (-want +got):\n%s", d)
	}
	bad := map[string]struct{ console, want string }{
		"no issuer":    {"console: {oidc: {clientID: x}, roles: {admin: [a]}}", "berth.yaml: console.oidc.issuer"},
		"no client":    {"console: {oidc: {issuer: 'https://x'}, roles: {admin: [a]}}", "console.oidc.clientID"},
		"no roles":     {"console: {oidc: {issuer: 'https://x', clientID: c}}", "console.roles"},
		"empty group":  {"console: {roles: {operator: ['']}}", "console.roles.operator[0]"},
		"unknown role": {"console: {roles: {owner: [a]}}", "unknown field"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			doc := "apiVersion: " + APIVersion + "\nkind: Workspace\ncluster: {}\n" + tc.console + "\n"
			err := ParseConfig("berth.yaml", []byte(doc), &Config{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one naming %q", err, tc.want)
			}
		})
	}
	// Open checks it too.
	w := newWorkspace(t)
	data, err := w.ReadFile(ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.Abs(ConfigFile), append(data, []byte("console: {oidc: {clientID: x}}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(w.Root); err == nil || !strings.Contains(err.Error(), "console.oidc.issuer") {
		t.Errorf("Open = %v, want an error naming console.oidc.issuer", err)
	}
}
