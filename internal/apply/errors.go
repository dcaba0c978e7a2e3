package apply

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ConflictError is an object whose apply other field managers refused: they own
// fields of the manifest. ApplyOptions.ForceConflicts takes them over.
type ConflictError struct {
	Object    ObjectRef
	Conflicts []Conflict
	Err       error
}

func (e *ConflictError) Error() string {
	parts := make([]string, len(e.Conflicts))
	for i, c := range e.Conflicts {
		parts[i] = fmt.Sprintf("%s is owned by %q", c.Field, c.Manager)
	}
	return fmt.Sprintf("%s: field conflict: %s: %v", e.Object, strings.Join(parts, ", "), e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }

// ErrNoApp is returned when an operation names no app.
var ErrNoApp = errors.New("no app name: berth labels every object with it and records what it applied under it")

// MaxAppNameLength is the longest app name: the app's inventory Secret is named
// InventoryName(app), "berth-inventory-" (16 characters) and the name, and the
// Secret's name must be a DNS label (63) for the label berth.dev/app to hold it
// too. Every app name in berth passes this rule, the workspace's included.
const MaxAppNameLength = 63 - len("berth-inventory-")

// ValidateAppName checks that app can name an app: a DNS label of at most
// MaxAppNameLength characters. It is the one rule for app names.
func ValidateAppName(app string) error {
	if app == "" {
		return ErrNoApp
	}
	if len(app) > MaxAppNameLength || len(validation.IsDNS1123Label(app)) > 0 {
		return fmt.Errorf("app name %q is not valid: use at most %d lowercase letters, digits and '-', starting and ending with a letter or digit", app, MaxAppNameLength)
	}
	return nil
}
