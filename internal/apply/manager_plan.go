package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// PlanOptions say what to plan.
type PlanOptions struct {
	App       string
	Namespace string
	// Prune plans the deletion of objects that the set no longer holds;
	// without it they are reported as kept.
	Prune          bool
	ForceConflicts bool
}

// DefaultPlanOptions returns the options of a plain plan.
func DefaultPlanOptions() PlanOptions { return PlanOptions{Namespace: "default"} }

// Plan reports what Apply would do, changing nothing: per object create, update,
// delete or unchanged, and for updates a unified YAML diff of the fields berth
// manages, from a server-side dry run of the objects that changed only. Secret
// values are masked.
func (e *Engine) Plan(ctx context.Context, objs []*unstructured.Unstructured, opts PlanOptions) (*Result, error) {
	return e.Apply(ctx, objs, ApplyOptions{
		App: opts.App, Namespace: opts.Namespace, Prune: opts.Prune,
		ForceConflicts: opts.ForceConflicts, DryRun: true, Timeout: time.Minute,
	})
}

// planItems dry-runs the items that would change and diffs them.
func (e *Engine) planItems(ctx context.Context, st []*item, newNamespaces map[string]bool, hooks bool) {
	var todo []*item
	for _, it := range st {
		if hooks && it.change.Action == ActionCreate && it.live != nil {
			// A hook that runs again is deleted and created anew: there is
			// nothing to diff it with.
			continue
		}
		if it.change.Action == ActionCreate && newNamespaces[it.ref.Namespace] {
			// A dry run cannot create an object in a namespace that
			// does not exist yet.
			it.change.Reason = "its namespace is created by this apply"
			continue
		}
		if it.change.Action == ActionCreate || it.change.Action == ActionUpdate {
			todo = append(todo, it)
		}
	}
	parallel(ctx, e.opts.Workers, len(todo), func(ctx context.Context, i int) {
		e.planItem(ctx, todo[i])
	})
}

func (e *Engine) planItem(ctx context.Context, it *item) {
	ri := e.resource(it.m, it.ref.Namespace)
	var live *unstructured.Unstructured
	if it.change.Action == ActionUpdate || it.live == nil {
		got, err := ri.Get(ctx, it.ref.Name, metav1.GetOptions{})
		switch {
		case err == nil:
			live = got
			if it.live == nil {
				it.change.Action = ActionUpdate
				if it.change.Reason == "" {
					it.change.Reason = fmt.Sprintf("exists without the %s label; berth adopts it", LabelApp)
				} else {
					it.change.Reason = fmt.Sprintf("drift: its %s label was removed", LabelApp)
				}
			}
		case !apierrors.IsNotFound(err):
			it.fail(fmt.Errorf("%s: reading it: %w", it.ref, err))
			return
		}
	}
	out, err := ri.Apply(ctx, it.ref.Name, it.obj, metav1.ApplyOptions{FieldManager: e.opts.FieldManager, Force: it.force, DryRun: []string{metav1.DryRunAll}})
	if err != nil && isJob(it.ref) && isImmutable(err) {
		it.change.Reason = strings.TrimPrefix(it.change.Reason+"; ", "; ") + "re-created (a Job's pod template cannot change)"
		return
	}
	if err != nil {
		it.change.Conflicts = conflicts(err)
		it.fail(applyError(it.ref, err, it.change.Conflicts))
		return
	}
	if live == nil {
		return
	}
	diff, err := managedDiff(live, out, e.opts.FieldManager)
	if err != nil {
		it.fail(fmt.Errorf("%s: computing its diff: %w", it.ref, err))
		return
	}
	it.change.Diff = diff
	if diff == "" && it.change.Reason != "" && !strings.HasPrefix(it.change.Reason, "drift") && it.live != nil {
		// The server would change nothing berth manages: for example a
		// manifest reformatted, or its default values spelled out.
		it.change.Reason += " (no effect on the fields berth manages)"
	}
}

// managedDiff is a unified diff of the fields berth manages before and after.
func managedDiff(before, after *unstructured.Unstructured, manager string) (string, error) {
	set := map[string]any{}
	for _, o := range []*unstructured.Unstructured{before, after} {
		if en := managerEntry(o.GetManagedFields(), manager); en != nil && en.FieldsV1 != nil {
			var m map[string]any
			if err := json.Unmarshal(en.FieldsV1.Raw, &m); err != nil {
				return "", err
			}
			mergeFields(set, m)
		}
	}
	b := filterFields(before.Object, set)
	a := filterFields(after.Object, set)
	bm, _ := b.(map[string]any)
	am, _ := a.(map[string]any)
	return yamlDiff(bm, am, isSecret(before), "live", "after apply")
}

// ObjectDiff is a unified diff of two versions of an object as YAML (nil
// for the side where it does not exist), with a Secret's values masked as
// Plan masks them: its keys show, and which of them changed, never a value.
// It does not change before or after.
func ObjectDiff(before, after map[string]any, fromFile, toFile string) (string, error) {
	secret := false
	for _, m := range []map[string]any{before, after} {
		if m != nil {
			secret = secret || isSecret(&unstructured.Unstructured{Object: m})
		}
	}
	b, err := copyObject(before)
	if err != nil {
		return "", err
	}
	a, err := copyObject(after)
	if err != nil {
		return "", err
	}
	return yamlDiff(b, a, secret, fromFile, toFile)
}

func isSecret(o *unstructured.Unstructured) bool {
	return o.GetKind() == "Secret" && o.GroupVersionKind().Group == ""
}

// copyObject copies an object through JSON, which is what its values are.
func copyObject(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(data, &out)
}

// yamlDiff diffs before and after as YAML, a nil side as no text; a
// Secret's values are masked first (in before and after).
func yamlDiff(before, after map[string]any, secret bool, fromFile, toFile string) (string, error) {
	if secret {
		maskSecret(before, after)
	}
	text := func(m map[string]any) (string, error) {
		if m == nil {
			return "", nil
		}
		y, err := yaml.Marshal(m)
		return string(y), err
	}
	by, err := text(before)
	if err != nil {
		return "", err
	}
	ay, err := text(after)
	if err != nil {
		return "", err
	}
	if by == ay {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(by), B: difflib.SplitLines(ay),
		FromFile: fromFile, ToFile: toFile, Context: 3,
	})
}

func mergeFields(dst, src map[string]any) {
	for k, v := range src {
		sv, _ := v.(map[string]any)
		dv, ok := dst[k].(map[string]any)
		if !ok {
			dv = map[string]any{}
			dst[k] = dv
		}
		mergeFields(dv, sv)
	}
}

// filterFields keeps the parts of v named by a managedFields (FieldsV1) set.
func filterFields(v any, set map[string]any) any {
	if len(set) == 0 {
		return v
	}
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, sub := range set {
			name, ok := strings.CutPrefix(k, "f:")
			if !ok {
				continue
			}
			if fv, ok := t[name]; ok {
				subSet, _ := sub.(map[string]any)
				out[name] = filterFields(fv, withoutSelf(subSet))
			}
		}
		return out
	case []any:
		var out []any
		for _, el := range t {
			for k, sub := range set {
				if listElementMatches(el, k) {
					subSet, _ := sub.(map[string]any)
					out = append(out, filterFields(el, withoutSelf(subSet)))
					break
				}
			}
		}
		return out
	}
	return v
}

func withoutSelf(set map[string]any) map[string]any {
	if _, ok := set["."]; !ok {
		return set
	}
	out := make(map[string]any, len(set))
	for k, v := range set {
		if k != "." {
			out[k] = v
		}
	}
	if len(out) == 0 {
		// The element itself and nothing below: keep it whole.
		return nil
	}
	return out
}

func listElementMatches(el any, key string) bool {
	switch {
	case strings.HasPrefix(key, "k:"):
		var want map[string]any
		if json.Unmarshal([]byte(key[2:]), &want) != nil {
			return false
		}
		m, ok := el.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				return false
			}
		}
		return true
	case strings.HasPrefix(key, "v:"):
		var want any
		if json.Unmarshal([]byte(key[2:]), &want) != nil {
			return false
		}
		return fmt.Sprint(el) == fmt.Sprint(want)
	}
	return false
}

// maskSecret replaces the values of a Secret's data by asterisks, marking those
// that change.
func maskSecret(before, after map[string]any) {
	for _, field := range []string{"data", "stringData"} {
		b, _ := before[field].(map[string]any)
		a, _ := after[field].(map[string]any)
		for k, bv := range b {
			av, ok := a[k]
			switch {
			case ok && fmt.Sprint(av) == fmt.Sprint(bv):
				b[k], a[k] = "***", "***"
			case ok:
				b[k], a[k] = "*** (before)", "*** (after)"
			default:
				b[k] = "***"
			}
		}
		for k := range a {
			if _, ok := b[k]; !ok {
				a[k] = "***"
			}
		}
	}
}
