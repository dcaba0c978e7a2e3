package render

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"berth.dev/berth/internal/health"
	"berth.dev/berth/internal/pkgspec"
)

// stampHealthRules writes the package's health rules onto the objects they
// govern, as health.AnnotationCondition: the deploy engine judges objects, not
// packages, and the controller sees only rendered objects. A rule matches by
// API group and kind, whatever the version the chart renders.
func stampHealthRules(rules []pkgspec.HealthRule, objs []Object) {
	if len(rules) == 0 {
		return
	}
	for _, o := range objs {
		gvk := o.Object.GroupVersionKind()
		var conds []health.Condition
		for _, r := range rules {
			gv, err := schema.ParseGroupVersion(r.APIVersion)
			if err != nil || gv.Group != gvk.Group || r.Kind != gvk.Kind {
				continue
			}
			status := r.Status
			if status == "" {
				status = "True"
			}
			conds = append(conds, health.Condition{Type: r.Condition, Status: status})
		}
		if len(conds) == 0 {
			continue
		}
		ann := o.Object.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[health.AnnotationCondition] = health.FormatConditions(conds)
		o.Object.SetAnnotations(ann)
	}
}
