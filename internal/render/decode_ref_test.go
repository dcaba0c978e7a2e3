package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

// decodeObjectsReference is how berth decoded objects before decodeObjects
// converted values itself: through JSON and YAML again. It is the reference
// decodeObjects must agree with.
func decodeObjectsReference(source string, b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for i := 0; ; i++ {
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
		// A round trip through JSON gives the types the Kubernetes libraries expect.
		js, err := sigsyaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
		u := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal(js, &u.Object); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}
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
