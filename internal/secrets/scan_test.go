package secrets

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHistoryHoldsNoPlaintext walks a workspace through install, a configuration
// change, sharing and a rotation, then scans every object git holds for the
// secret values, raw and base64 (as a rendered Kubernetes Secret holds them).
func TestHistoryHoldsNoPlaintext(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	key, _ := initRepo(t, dir)
	values := [][]byte{[]byte("Zr8-cobalt-walrus-91"), []byte("Qq4-amber-heron-07"), []byte("tls-private-Mv3-basalt")}
	secretManifest := func(v []byte) string {
		return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: " + base64.StdEncoding.EncodeToString(v) + "\n"
	}
	steps := []struct {
		name  string
		apply func(t *testing.T) []string
	}{
		{"install", func(t *testing.T) []string {
			writeFile(t, dir, "apps/db/app.yaml", "package: postgresql\nvalues:\n  replicas: 1\n")
			writeFile(t, dir, "apps/db/secrets.yaml", "password: "+string(values[0])+"\n")
			writeFile(t, dir, "rendered/db/secrets/secret-db.yaml", secretManifest(values[0]))
			return []string{".gitattributes", "apps", "rendered"}
		}},
		{"config change", func(t *testing.T) []string {
			writeFile(t, dir, "apps/db/secrets.yaml", "password: "+string(values[1])+"\n")
			writeFile(t, dir, "rendered/db/secrets/secret-db.yaml", secretManifest(values[1]))
			writeFile(t, dir, "apps/db/secrets/tls.key", string(values[2]))
			return []string{"apps", "rendered"}
		}},
		{"sharing", func(t *testing.T) []string {
			paths, err := AddRecipient(ctx, dir, key, newIdentity(t).Recipient().String())
			if err != nil {
				t.Fatal(err)
			}
			return paths
		}},
		{"rotation", func(t *testing.T) []string {
			res, err := Rotate(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			return res.Paths
		}},
	}
	for _, s := range steps {
		if _, err := Commit(ctx, dir, s.name, s.apply(t)...); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if n := commitCount(t, dir); n != len(steps) {
		t.Fatalf("%d commits, want %d", n, len(steps))
	}
	findings, err := ScanObjects(ctx, dir, values)
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 0 {
		t.Fatalf("plaintext secrets in git objects: %+v", findings)
	}
	leaks, err := PlaintextInHistory(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) != 0 {
		t.Fatalf("secret paths committed in plaintext: %+v", leaks)
	}

	// The scanner is not blind: a leak through a plain git commit of a path
	// outside the secret paths, then reset away, is still found.
	writeFile(t, dir, "notes.txt", "db password is "+string(values[1])+"\n")
	run(t, dir, "git", "add", "notes.txt")
	run(t, dir, "git", "commit", "-q", "-m", "notes")
	run(t, dir, "git", "reset", "-q", "--hard", "HEAD~1")
	findings, err = ScanObjects(ctx, dir, values)
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 1 || findings[0].Secret != 1 || findings[0].Type != "blob" || findings[0].Encoding != "raw" {
		t.Fatalf("findings = %+v; want the reset-away blob holding secret 1", findings)
	}
}

func TestPlaintextInHistory(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	// Committed before berth protected the path: a leak git-crypt users suffer.
	writeFile(t, dir, "apps/db/secrets.yaml", "password: early\n")
	writeFile(t, dir, "apps/db/app.yaml", "package: postgresql\n")
	run(t, dir, "git", "add", ".")
	run(t, dir, "git", "commit", "-q", "-m", "before encryption")
	first := strings.TrimSpace(run(t, dir, "git", "rev-parse", "HEAD"))
	leakedBlob := strings.TrimSpace(run(t, dir, "git", "rev-parse", "HEAD:apps/db/secrets.yaml"))
	initRepo(t, dir)
	writeFile(t, dir, "apps/db/secrets.yaml", "password: later\n")
	if _, err := Commit(ctx, dir, "encrypt", ".gitattributes", "apps"); err != nil {
		t.Fatal(err)
	}
	leaks, err := PlaintextInHistory(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []HistoryLeak{{Path: "apps/db/secrets.yaml", Blob: leakedBlob, Commit: first}}
	if diff := cmp.Diff(want, leaks); diff != "" {
		t.Fatalf("leaks (-want +got):\n%s", diff)
	}
	// A repository without commits has no history to leak.
	if leaks, err := PlaintextInHistory(ctx, newRepo(t)); err != nil || len(leaks) != 0 {
		t.Fatalf("empty repository: %v, %v", leaks, err)
	}
	// Scanning outside a repository names the problem.
	if _, err := ScanObjects(ctx, filepath.Join(t.TempDir()), nil); err == nil || !strings.Contains(err.Error(), "not inside a git working tree") {
		t.Fatalf("ScanObjects outside a repository: %v", err)
	}
}
