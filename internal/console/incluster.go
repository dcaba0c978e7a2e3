package console

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	berthv1 "berth.dev/berth/api/v1alpha1"
)

// kubeScheme has the Kubernetes types and berth's. (The controller's
// Scheme, which the console cannot import: the controller serves the
// console.)
func kubeScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = berthv1.AddToScheme(s)
	return s
}

// sweepSignIns removes expired sign-in Secrets every minute.
func (s *Server) sweepSignIns(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		s.auth.signIns.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// signInAgain is what the sign-in page says of a refused token.
func (s *Server) signInAgain() string {
	if s.auth.signIns != nil {
		return "This sign-in link was already used, has expired or is wrong. Run 'berth console --port-forward' again for a new one, or sign in with your provider."
	}
	return "This sign-in link was already used or is wrong. Restart 'berth console' for a new one, or sign in with your provider."
}
