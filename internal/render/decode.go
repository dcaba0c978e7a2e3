package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// decodeObjects parses a multi-document YAML file into objects.
func decodeObjects(source string, b []byte) ([]*unstructured.Unstructured, error) {
	return decodeObjectsFrom(source, 1, b)
}

// decodeObjectsFrom is decodeObjects for part of a file whose first
// document is the file's document first, so errors number documents right.
func decodeObjectsFrom(source string, first int, b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for i := first - 1; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d is not valid YAML: %w", source, i+1, err)
		}
		if len(doc) == 0 {
			continue
		}
		obj, err := jsonValue(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		u := &unstructured.Unstructured{Object: obj.(map[string]any)}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("%s: document %d has no apiVersion or kind; every object needs both", source, i+1)
		}
		if u.GetName() == "" && u.GetGenerateName() == "" {
			return nil, fmt.Errorf("%s: document %d (%s) has no metadata.name", source, i+1, u.GetKind())
		}
		out = append(out, u)
	}
	return out, nil
}

// jsonValue converts a decoded YAML value, in place, into the types the
// Kubernetes libraries expect, the types a round trip through JSON gives:
// numbers become float64 and timestamps RFC 3339 strings. It is that round
// trip without the encoding, which dominated the time of a render.
func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case nil, string, bool:
		return v, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case uint64:
		return float64(v), nil
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("unsupported value: %v", v)
		}
		return v, nil
	case time.Time:
		b, err := v.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return string(b[1 : len(b)-1]), nil
	case map[string]any:
		for k, e := range v {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
		return v, nil
	case []any:
		for i, e := range v {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	default:
		return nil, fmt.Errorf("unsupported type: %T; keys of a mapping must be strings", v)
	}
}
