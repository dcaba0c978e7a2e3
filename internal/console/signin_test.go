package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/testcluster"
)

// A sign-in Secret holds the token's hash, never the token, and opens one
// session as the person it names, with role admin; then it is gone.
func TestSignInSecretWorksOnceAsThePerson(t *testing.T) {
	ctx := context.Background()
	cs := testcluster.Clientset(t)
	ns := testcluster.Namespace(t)
	s, err := MintSignIn(ctx, cs, ns, User{Name: "Grace Hopper", Email: "grace@example.com"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, s.Secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sec.Data {
		if strings.Contains(string(v), s.Token) || strings.Contains(sec.Name, s.Token) {
			t.Errorf("the sign-in Secret holds the token in %s", k)
		}
	}
	if sec.Labels[LabelSignIn] != "true" || time.Until(s.Expires) > SignInTTL || time.Until(s.Expires) < SignInTTL-time.Minute {
		t.Errorf("labels %v, expires %s", sec.Labels, s.Expires)
	}
	a := &auth{sessions: map[string]*session{}, signIns: &SignIns{Client: cs, Namespace: ns}, ttl: time.Hour}
	rec := httptest.NewRecorder()
	if !a.useToken(ctx, rec, s.Token) {
		t.Fatal("the minted token was refused")
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != cookieSession || !cookies[0].HttpOnly {
		t.Fatalf("session cookie = %+v", cookies)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(cookies[0])
	if got := a.session(req); got == nil || got.user.Name != "Grace Hopper" || got.user.Email != "grace@example.com" || got.user.Role != RoleAdmin {
		t.Errorf("session = %+v", got)
	}
	if _, err := cs.CoreV1().Secrets(ns).Get(ctx, s.Secret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the used sign-in Secret is still there: %v", err)
	}
	if a.useToken(ctx, httptest.NewRecorder(), s.Token) {
		t.Error("the token worked twice")
	}
}

// Tokens that must not sign in: expired (its Secret is deleted too), wrong,
// or whose Secret is not a sign-in Secret (no label) or holds another hash.
func TestSignInSecretRefusals(t *testing.T) {
	ctx := context.Background()
	cs := testcluster.Clientset(t)
	ns := testcluster.Namespace(t)
	signIns := &SignIns{Client: cs, Namespace: ns}
	mint := func(token string, mutate func(*corev1.Secret)) {
		t.Helper()
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: SignInSecretName(token), Namespace: ns, Labels: map[string]string{LabelSignIn: "true"}},
			StringData: map[string]string{keyHash: hashToken(token), keyName: "Mallory", keyExpires: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)},
		}
		mutate(sec)
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		token   string
		mutate  func(*corev1.Secret)
		deleted bool
	}{
		"expired": {token: "expired-token", mutate: func(s *corev1.Secret) {
			s.StringData[keyExpires] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		}, deleted: true},
		"not labelled": {token: "unlabelled-token", mutate: func(s *corev1.Secret) { s.Labels = nil }},
		"another hash": {token: "other-hash-token", mutate: func(s *corev1.Secret) { s.StringData[keyHash] = hashToken("something else") }},
		"no secret":    {token: "never-minted"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if tt.mutate != nil {
				mint(tt.token, tt.mutate)
			}
			if u, err := signIns.redeem(ctx, tt.token); err != errSignIn {
				t.Fatalf("redeem = %+v, %v; want refused", u, err)
			}
			_, err := cs.CoreV1().Secrets(ns).Get(ctx, SignInSecretName(tt.token), metav1.GetOptions{})
			if gone := apierrors.IsNotFound(err); tt.mutate != nil && gone != tt.deleted {
				t.Errorf("Secret deleted = %v, want %v", gone, tt.deleted)
			}
		})
	}
	// The sweep removes expired sign-in Secrets and leaves the others.
	mint("stale-token", func(s *corev1.Secret) {
		s.StringData[keyExpires] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	})
	fresh, err := MintSignIn(ctx, cs, ns, User{Name: "Ada"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	signIns.sweep(ctx)
	if _, err := cs.CoreV1().Secrets(ns).Get(ctx, SignInSecretName("stale-token"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the expired sign-in Secret survived the sweep: %v", err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Get(ctx, fresh.Secret, metav1.GetOptions{}); err != nil {
		t.Errorf("the sweep deleted a fresh sign-in Secret: %v", err)
	}
}
