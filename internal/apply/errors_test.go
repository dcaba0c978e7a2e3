package apply

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateAppNameIsTheOneRule(t *testing.T) {
	longest := strings.Repeat("a", MaxAppNameLength)
	tests := map[string]struct {
		name    string
		wantErr string
	}{
		"longest":               {name: longest},
		"one too long":          {name: longest + "b", wantErr: "at most 47"},
		"upper case":            {name: "Web", wantErr: "not valid"},
		"leading dash":          {name: "-web", wantErr: "not valid"},
		"empty":                 {name: "", wantErr: "no app name"},
		"digits and dashes":     {name: "web-2", wantErr: ""},
		"inventory name is fit": {name: longest, wantErr: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := ValidateAppName(tc.name)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateAppName(%q) = %v", tc.name, err)
				}
				if n := len(InventoryName(tc.name)); n > 63 {
					t.Errorf("inventory name of %q has %d characters, more than a DNS label", tc.name, n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ValidateAppName(%q) = %v, want an error containing %q", tc.name, err, tc.wantErr)
			}
		})
	}
	if !errors.Is(ValidateAppName(""), ErrNoApp) {
		t.Errorf("an empty name should be ErrNoApp")
	}
}
