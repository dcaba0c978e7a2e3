package render

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	return unstructured.NestedString(obj, fields...)
}
