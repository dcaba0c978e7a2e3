package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrints(t *testing.T) {
	const raw = "Tz5-violet-pangolin-30"
	v := NewValue(raw)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("configured", "password", v)
	js, err := json.Marshal(map[string]any{"password": v, "nested": struct{ P Value }{v}})
	if err != nil {
		t.Fatal(err)
	}
	var jsonLogged bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLogged, nil)).Info("configured", "password", v)
	renderings := map[string]string{
		"%v":         fmt.Sprintf("%v", v),
		"%+v struct": fmt.Sprintf("%+v", struct{ P Value }{v}),
		"%#v":        fmt.Sprintf("%#v", v),
		"%s":         fmt.Sprintf("%s", v),
		"%q":         fmt.Sprintf("%q", v),
		"%x":         fmt.Sprintf("%x", v),
		"error":      fmt.Errorf("setting %v: %w", v, errors.New("boom")).Error(),
		"slog text":  logged.String(),
		"slog json":  jsonLogged.String(),
		"json":       string(js),
	}
	for name, got := range renderings {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(got, raw) || strings.Contains(got, fmt.Sprintf("%x", raw)) {
				t.Fatalf("the secret leaked: %s", got)
			}
			if !strings.Contains(got, Masked) {
				t.Fatalf("no mask shown: %s", got)
			}
		})
	}
	if v.Reveal() != raw {
		t.Fatal("Reveal does not return the value")
	}
	if !v.Equal(NewValue(raw)) || v.Equal(NewValue(raw+"x")) {
		t.Fatal("Equal is wrong")
	}
}
