package console

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/lifecycle"
)

// The review of an install that brings a shared app names it in the
// commit's subject, lists the app's objects first, and marks secret files.
func TestReviewOfAnInstallWithSharedApps(t *testing.T) {
	res := &lifecycle.InstallResult{App: "shop", Summary: "shop (webshop 2.0.0)",
		Dependencies: []lifecycle.InstallDependency{
			{Name: "cache", Package: "redis", Version: "7.4.1", Shared: "redis", New: true},
			{Name: "db", Package: "postgresql", Version: "16.4.0", Shared: "postgresql"},
			{Name: "search", Package: "opensearch", Version: "2.1.0"},
		},
		Preview: &lifecycle.Preview{Files: []lifecycle.FileChange{
			{Status: "A", Path: "apps/shop/app.yaml"}, {Status: "A", Path: "apps/shop/secrets.yaml"},
			{Status: "A", Path: "rendered/redis/secrets/secret_redis_redis.yaml"}, {Status: "M", Path: "berth.lock"},
		}},
		Objects: []lifecycle.RenderedObject{
			{App: "redis", Kind: "StatefulSet", Namespace: "redis", Name: "redis"},
			{App: "shop", Kind: "Service", Namespace: "shop", Name: "shop"},
			{App: "shop", Kind: "Deployment", Namespace: "shop", Name: "web"},
			{App: "shop", Kind: "Deployment", Namespace: "shop", Name: "api"},
		},
	}
	rv := reviewOf(res, &pendingInstall{pkg: "webshop", version: "2.0.0", opts: lifecycle.InstallOptions{Name: "shop"}}, false)
	if rv.Message != "install shop (webshop 2.0.0) with shared redis 7.4.1" {
		t.Errorf("commit subject = %q", rv.Message)
	}
	if rv.Namespace != "shop" || !strings.Contains(rv.Follows, "2.0.0") {
		t.Errorf("namespace %q, follows %q; want the app's name and the pinned version", rv.Namespace, rv.Follows)
	}
	wantKinds := []kindCount{
		{App: "shop", Kind: "Deployment", Names: []string{"shop/api", "shop/web"}},
		{App: "shop", Kind: "Service", Names: []string{"shop/shop"}},
		{App: "redis", Kind: "StatefulSet", Names: []string{"redis/redis"}},
	}
	if d := cmp.Diff(wantKinds, rv.Kinds); d != "" {
		t.Errorf("objects by kind (-want +got):\n%s", d)
	}
	wantFiles := []reviewFile{
		{Status: "added", Path: "apps/shop/app.yaml"}, {Status: "added", Path: "apps/shop/secrets.yaml", Secret: true},
		{Status: "added", Path: "rendered/redis/secrets/secret_redis_redis.yaml", Secret: true}, {Status: "changed", Path: "berth.lock"},
	}
	if d := cmp.Diff(wantFiles, rv.Files); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
}

// A review is its session's, used once, and forgotten after its time.
func TestReviewsAreTheSessionsAndUsedOnce(t *testing.T) {
	id := putReview(&pendingInstall{csrf: "mine", pkg: "notes", expires: time.Now().Add(reviewTTL)})
	if takeReview(id, "theirs", "notes") != nil || takeReview(id, "mine", "webapp") != nil {
		t.Fatal("another session, or another package's form, took the review")
	}
	if takeReview(id, "mine", "notes") == nil {
		t.Fatal("the session could not take its review")
	}
	if takeReview(id, "mine", "notes") != nil {
		t.Error("a review was taken twice")
	}
	old := putReview(&pendingInstall{csrf: "mine", pkg: "notes", expires: time.Now().Add(-1)})
	if takeReview(old, "mine", "notes") != nil {
		t.Error("an expired review was taken")
	}
}
