package lifecycle

import (
	"context"
	"fmt"
)

// NotSetError means a secret parameter has no value the user set.
type NotSetError struct{ App, Param string }

func (e *NotSetError) Error() string {
	return fmt.Sprintf("app %s: the secret parameter %s has no value set", e.App, e.Param)
}

// SecretValue returns the value the user set for app's secret parameter
// param, decrypted from apps/APP/secrets.yaml (the console reveals it to a
// person allowed to). Generated values are not kept there and are not
// returned. The error never holds the value.
func (e *Env) SecretValue(ctx context.Context, app, param string) (string, error) {
	if _, err := e.WS.App(app); err != nil {
		return "", err
	}
	s, err := e.readSecrets(app)
	if err != nil {
		return "", err
	}
	v, ok := s.Values[param]
	if !ok || v == nil {
		return "", &NotSetError{App: app, Param: param}
	}
	return fmt.Sprint(v), nil
}
