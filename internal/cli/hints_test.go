package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/lifecycle"
)

func TestConflictHintComesFromTheCLINotTheLibrary(t *testing.T) {
	ce := &apply.ConflictError{Object: apply.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "ns", Name: "c"},
		Conflicts: []apply.Conflict{{Field: ".data.k", Manager: "kubectl"}}, Err: errors.New("conflict")}
	if strings.Contains(ce.Error(), "--") {
		t.Errorf("library error %q names a flag", ce.Error())
	}
	wrapped := &hintedError{msg: "1 object(s) failed (listed above)", cause: fmt.Errorf("apply: %w", ce)}
	if got := hints(wrapped); !strings.Contains(got, "rerun with --force-conflicts") {
		t.Errorf("hints = %q, want the --force-conflicts hint", got)
	}
	if got := hints(fmt.Errorf("config grafana: %w", lifecycle.ErrLocked)); !strings.Contains(got, "berth crypto unlock") {
		t.Errorf("hints of a locked workspace = %q, want 'berth crypto unlock'", got)
	}
	if got := hints(errors.New("other")); got != "" {
		t.Errorf("hints of an unrelated error = %q, want none", got)
	}
}
