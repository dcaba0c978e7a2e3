// Command oidcprovider serves zitadel/oidc's example OpenID provider for the
// console's browser tests: its login page, static users read from USERS_FILE
// (the example's format plus "Groups"), one web client (CLIENT_ID,
// CLIENT_SECRET, REDIRECT_URI), and a "groups" claim in ID tokens and userinfo.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// groupStorage adds each user's groups to what the example storage asserts.
type groupStorage struct {
	*storage.Storage
	groups map[string][]string // by user ID
}

func (s *groupStorage) add(info *oidc.UserInfo, userID string) {
	if g, ok := s.groups[userID]; ok {
		info.AppendClaims("groups", g)
	}
}

func (s *groupStorage) SetUserinfoFromScopes(ctx context.Context, info *oidc.UserInfo, userID, clientID string, scopes []string) error {
	if err := s.Storage.SetUserinfoFromScopes(ctx, info, userID, clientID, scopes); err != nil {
		return err
	}
	s.add(info, userID)
	return nil
}

func (s *groupStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	s.add(info, req.GetSubject())
	return nil
}

func (s *groupStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	s.add(info, info.Subject)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "oidcprovider:", err)
		os.Exit(1)
	}
}

func run() error {
	addr, issuer := os.Getenv("LISTEN"), os.Getenv("ISSUER")
	file := os.Getenv("USERS_FILE")
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var withGroups map[string]struct{ Groups []string }
	if err := json.Unmarshal(data, &withGroups); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	users, err := storage.StoreFromFile(file)
	if err != nil {
		return err
	}
	groups := map[string][]string{}
	for id, u := range withGroups {
		groups[id] = u.Groups
	}
	storage.RegisterClients(storage.WebClient(os.Getenv("CLIENT_ID"), os.Getenv("CLIENT_SECRET"), strings.Split(os.Getenv("REDIRECT_URI"), ",")...))
	st := &groupStorage{Storage: storage.NewStorage(users), groups: groups}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	router := exampleop.SetupServer(issuer, st, logger, false)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The harness waits for this line.
	fmt.Println("listening on", ln.Addr().String())
	return http.Serve(ln, router)
}
