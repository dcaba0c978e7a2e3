package render

import (
	"math"
	"unicode/utf8"

	yamlv2 "go.yaml.in/yaml/v2"
	sigsyaml "sigs.k8s.io/yaml"
)

// marshalYAML writes an object as sigs.k8s.io/yaml.Marshal does (the form
// kubectl and berth's output always had), without its detour: that encodes
// to JSON, parses the JSON as YAML and encodes that, which took as long as
// rendering the chart. Objects of ASCII text take appendYAML, others
// yaml.v2's encoder; values neither can write the same way (huge integers,
// invalid UTF-8) take the detour.
func marshalYAML(obj map[string]any) ([]byte, error) {
	if b, ok := appendYAML(nil, obj); ok {
		return b, nil
	}
	if v, ok := yamlValue(obj); ok {
		return yamlv2.Marshal(v)
	}
	return sigsyaml.Marshal(obj)
}

// yamlValue returns a copy of v with the types the JSON detour gives: a
// number JSON writes without a fraction or exponent is an integer.
func yamlValue(v any) (any, bool) {
	switch v := v.(type) {
	case nil, bool:
		return v, true
	case string:
		return v, utf8.ValidString(v)
	case int64:
		return v, true
	case int:
		return int64(v), true
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, false
		}
		if v != math.Trunc(v) {
			return v, true
		}
		if math.Abs(v) < 1<<53 {
			return int64(v), true
		}
		// Beyond 2^53 encoding/json writes the shortest decimal that reads
		// back as v, not v's digits, and YAML reads that as int64, uint64
		// or float64: leave those to the detour.
		return nil, false
	case map[string]any:
		if v == nil {
			return nil, true
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			c, ok := yamlValue(e)
			if !ok || !utf8.ValidString(k) {
				return nil, false
			}
			out[k] = c
		}
		return out, true
	case []any:
		if v == nil {
			return nil, true
		}
		out := make([]any, len(v))
		for i, e := range v {
			c, ok := yamlValue(e)
			if !ok {
				return nil, false
			}
			out[i] = c
		}
		return out, true
	default:
		return nil, false
	}
}
