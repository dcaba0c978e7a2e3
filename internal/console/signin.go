package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// A sign-in Secret lets someone who may create Secrets in the controller's
// namespace sign in to the console the controller serves, once: 'berth
// console --port-forward' makes a random token, keeps it, and creates a
// Secret holding only the token's hash, the person and an expiry; the
// console finds the Secret by the hash of the token it is given, and deletes
// it as it opens the session.
const (
	// LabelSignIn marks the sign-in Secrets.
	LabelSignIn = "berth.dev/console-signin"
	// SignInTTL is how long a sign-in Secret may be used.
	SignInTTL = 5 * time.Minute

	signInPrefix = "berth-console-signin-"
	keyHash      = "tokenHash"
	keyName      = "name"
	keyEmail     = "email"
	keyExpires   = "expires"
)

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// SignInSecretName is the name of the sign-in Secret of token: derived from
// its hash, never from the token.
func SignInSecretName(token string) string { return signInPrefix + hashToken(token)[:40] }

// SignIn is a minted one-time sign-in.
type SignIn struct {
	// Token goes in the sign-in URL, and nowhere else.
	Token string
	// Secret is the name of the sign-in Secret, in the controller's namespace.
	Secret  string
	Expires time.Time
}

// MintSignIn creates a one-time sign-in for u (as the commit author) in the
// controller's namespace; it can be used until ttl has passed
// (SignInTTL when zero). Only someone allowed to create Secrets there can.
func MintSignIn(ctx context.Context, cs kubernetes.Interface, namespace string, u User, ttl time.Duration) (*SignIn, error) {
	if ttl <= 0 {
		ttl = SignInTTL
	}
	token := randomString(32)
	s := &SignIn{Token: token, Secret: SignInSecretName(token), Expires: time.Now().Add(ttl).UTC()}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.Secret, Namespace: namespace, Labels: map[string]string{LabelSignIn: "true"}},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{keyHash: hashToken(token), keyName: u.Name, keyEmail: u.Email, keyExpires: s.Expires.Format(time.RFC3339)},
	}
	if _, err := cs.CoreV1().Secrets(namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating the console's sign-in Secret in namespace %s: %w", namespace, err)
	}
	return s, nil
}

// DeleteSignIn removes a sign-in that was not used; one already used (or
// gone) is fine.
func DeleteSignIn(ctx context.Context, cs kubernetes.Interface, namespace string, s *SignIn) error {
	err := cs.CoreV1().Secrets(namespace).Delete(ctx, s.Secret, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the sign-in Secret %s/%s: %w", namespace, s.Secret, err)
	}
	return nil
}

// SignIns redeems the sign-in Secrets of the controller's namespace.
type SignIns struct {
	Client    kubernetes.Interface
	Namespace string
}

// errSignIn is any refused sign-in token: unknown, used, expired or not a
// sign-in Secret. The page does not say which.
var errSignIn = errors.New("unknown, used or expired sign-in token")

// redeem exchanges token for the person its Secret names, once: the Secret
// is deleted (with its UID as a precondition, so of two visitors only one
// succeeds) before the session opens. An expired one is deleted and refused.
func (s *SignIns) redeem(ctx context.Context, token string) (User, error) {
	name := SignInSecretName(token)
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return User{}, errSignIn
	}
	if err != nil {
		return User{}, fmt.Errorf("reading the sign-in Secret: %w", err)
	}
	if sec.Labels[LabelSignIn] != "true" || subtle.ConstantTimeCompare(sec.Data[keyHash], []byte(hashToken(token))) != 1 {
		return User{}, errSignIn
	}
	uid := sec.UID
	if err := secrets.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return User{}, errSignIn
		}
		return User{}, fmt.Errorf("deleting the used sign-in Secret: %w", err)
	}
	exp, err := time.Parse(time.RFC3339, string(sec.Data[keyExpires]))
	if err != nil || time.Now().After(exp) {
		return User{}, errSignIn
	}
	u := User{Name: string(sec.Data[keyName]), Email: string(sec.Data[keyEmail]), Role: RoleAdmin}
	if u.Name == "" {
		u.Name = "berth console --port-forward"
	}
	return u, nil
}

// sweep deletes the sign-in Secrets past their expiry (a 'berth console
// --port-forward' killed before it cleaned up).
func (s *SignIns) sweep(ctx context.Context) {
	list, err := s.Client.CoreV1().Secrets(s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelSignIn + "=true"})
	if err != nil {
		return
	}
	for _, sec := range list.Items {
		exp, err := time.Parse(time.RFC3339, string(sec.Data[keyExpires]))
		if err == nil && time.Now().Before(exp) {
			continue
		}
		uid := sec.UID
		_ = s.Client.CoreV1().Secrets(s.Namespace).Delete(ctx, sec.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	}
}
