package health

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// AnnotationCondition carries a package's health rules on the objects they
// govern, as TYPE=STATUS pairs joined by commas ("Ready=True"). Render stamps
// it, so that whoever applies the rendered objects, the CLI or the controller,
// judges them by the same rules without reading the package.
const AnnotationCondition = "berth.dev/health-condition"

// Condition is one rule: the object's condition Type must have Status.
type Condition struct {
	Type   string
	Status string
}

func (c Condition) String() string { return c.Type + "=" + c.Status }

// FormatConditions returns the value of AnnotationCondition for conds.
func FormatConditions(conds []Condition) string {
	parts := make([]string, len(conds))
	for i, c := range conds {
		parts[i] = c.String()
	}
	return strings.Join(parts, ",")
}

// ParseConditions reads a value of AnnotationCondition.
func ParseConditions(s string) ([]Condition, error) {
	var out []Condition
	for _, part := range strings.Split(s, ",") {
		typ, status, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || typ == "" || status == "" {
			return nil, fmt.Errorf("%q is not TYPE=STATUS", part)
		}
		out = append(out, Condition{Type: typ, Status: status})
	}
	return out, nil
}

// rules judges obj by the conditions its AnnotationCondition requires; ok is
// false when it has none. A required condition that is absent means the
// object's controller has not reported yet: in progress, not healthy.
func rules(obj *unstructured.Unstructured) (Result, bool) {
	v, ok := obj.GetAnnotations()[AnnotationCondition]
	if !ok {
		return Result{}, false
	}
	conds, err := ParseConditions(v)
	if err != nil {
		return Result{Failed, fmt.Sprintf("annotation %s: %v", AnnotationCondition, err)}, true
	}
	for _, want := range conds {
		c, found := condition(obj, want.Type)
		if !found {
			return Result{InProgress, fmt.Sprintf("waiting for condition %s", want)}, true
		}
		if c.status != want.Status {
			msg := fmt.Sprintf("condition %s is %s, want %s", want.Type, c.status, want.Status)
			if d := c.describe(); d != "" {
				msg += ": " + d
			}
			return Result{InProgress, msg}, true
		}
	}
	return Result{Current, FormatConditions(conds)}, true
}
