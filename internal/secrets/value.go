package secrets

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

// Masked is what a Value shows instead of itself.
const Masked = "********"

// Value holds a secret value (a configuration parameter marked secret, a generated
// password). Every way of printing it (fmt verbs, errors, slog, JSON, text
// marshalling) shows Masked, so it cannot leak into logs, errors, plan output or
// -o json by accident; only Reveal gives the value, for writing it to an
// encrypted file or a Kubernetes Secret.
type Value struct{ s string }

// NewValue wraps a secret value.
func NewValue(s string) Value { return Value{s: s} }

// Reveal returns the secret value itself.
func (v Value) Reveal() string { return v.s }

// IsZero reports whether the value is empty.
func (v Value) IsZero() bool { return v.s == "" }

// Equal compares two values in constant time (go-cmp uses it too).
func (v Value) Equal(o Value) bool {
	return subtle.ConstantTimeCompare([]byte(v.s), []byte(o.s)) == 1
}

func (v Value) String() string   { return Masked }
func (v Value) GoString() string { return "secrets.Value(" + Masked + ")" }

// Format masks every fmt verb, %x and %q included.
func (v Value) Format(f fmt.State, _ rune) { io.WriteString(f, Masked) }

// LogValue masks the value in log/slog output.
func (v Value) LogValue() slog.Value { return slog.StringValue(Masked) }

// MarshalJSON masks the value in JSON (and so in YAML written through JSON).
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Masked + `"`), nil }

// MarshalText masks the value for every text encoder.
func (v Value) MarshalText() ([]byte, error) { return []byte(Masked), nil }
