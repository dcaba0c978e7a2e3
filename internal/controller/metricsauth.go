package controller

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// authFilter lets a request to the metrics port through only with a bearer
// token the API server authenticates (TokenReview) for a user allowed to get
// the request's path as a nonResourceURL (SubjectAccessReview): what
// controller-runtime's filters.WithAuthenticationAndAuthorization does,
// without its dependency on k8s.io/apiserver. No cache: a scrape or a profile
// costs two small requests to the API server.
func authFilter(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || token == "" {
				http.Error(w, "Unauthorized: a bearer token is required", http.StatusUnauthorized)
				return
			}
			tr, err := cs.AuthenticationV1().TokenReviews().Create(r.Context(), &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
			if err != nil {
				log.Error(err, "reviewing a token")
				http.Error(w, "the API server could not review the token", http.StatusInternalServerError)
				return
			}
			if !tr.Status.Authenticated {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			u := tr.Status.User
			extra := map[string]authzv1.ExtraValue{}
			for k, v := range u.Extra {
				extra[k] = authzv1.ExtraValue(v)
			}
			sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(r.Context(), &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
				NonResourceAttributes: &authzv1.NonResourceAttributes{Path: r.URL.Path, Verb: strings.ToLower(r.Method)},
			}}, metav1.CreateOptions{})
			if err != nil {
				log.Error(err, "reviewing access")
				http.Error(w, "the API server could not review the access", http.StatusInternalServerError)
				return
			}
			if !sar.Status.Allowed {
				http.Error(w, fmt.Sprintf("Forbidden: user %q may not get %s", u.Username, r.URL.Path), http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}
