package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/apply"
	"berth.dev/berth/internal/deploy"
)

// PreflightError lists what the cluster would refuse of a change; nothing was
// committed.
type PreflightError struct {
	Problems []string
}

func (e *PreflightError) Error() string {
	return fmt.Sprintf("the cluster would refuse this change, so nothing was committed:\n  %s", strings.Join(e.Problems, "\n  "))
}

// preflight plans the rendered apps against the cluster: a server-side dry run
// of every object that would change. Kinds that a CRD of the same change
// defines are not checked (their CRD is applied first, and may not exist yet
// or differ); a Job's template is immutable but the engine re-creates a Job
// whose template changed.
func (e *Env) preflight(ctx context.Context, p *plan, rendered map[string][]*unstructured.Unstructured) error {
	eng, err := e.engine()
	if err != nil {
		return err
	}
	defined := map[string]bool{}
	for _, objs := range rendered {
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				g, _, _ := unstructured.NestedString(o.Object, "spec", "group")
				k, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
				defined[g+"/"+k] = true
			}
		}
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(rendered)) {
		objs, err := deploy.StripIgnoredFields(rendered[name])
		if err != nil {
			return err
		}
		res, err := eng.Plan(ctx, objs, apply.PlanOptions{App: name, Namespace: p.apps[name].Namespace})
		var failed *apply.ObjectsError
		if err != nil && (res == nil || !errors.As(err, &failed)) {
			return fmt.Errorf("checking app %s against the cluster: %w", name, err)
		}
		for _, c := range res.Changes {
			if c.Action != apply.ActionFail {
				continue
			}
			switch {
			case defined[c.Object.Group+"/"+c.Object.Kind]:
				// Its CRD is applied first by this change; until then the
				// kind is unknown, or served by an older CRD.
				continue
			case c.Object.Kind == "Job" && c.Object.Group == "batch" && strings.Contains(c.Error, "field is immutable"):
				continue
			case c.Object.Kind == "StatefulSet" && strings.Contains(c.Error, "Forbidden") && strings.Contains(c.Error, "spec"):
				problems = append(problems, fmt.Sprintf("app %s, %s: a StatefulSet's volume claim templates and most of its spec cannot change in place (%s); change it back, or uninstall and reinstall the app", name, c.Object, c.Error))
				continue
			}
			problems = append(problems, fmt.Sprintf("app %s, %s: %s", name, c.Object, c.Error))
		}
	}
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	return nil
}
