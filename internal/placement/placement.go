// Package placement decides which clusters of a fleet workspace run an app,
// from its app.yaml placement: (cluster names or a label selector, spread
// over a label's values) and which values each cluster overrides. It is a
// pure function of berth.yaml's clusters and the app's placement.
package placement

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"berth.dev/berth/internal/workspace"
)

// Target is one cluster an app is placed on, with the values its
// overrides set there (nil when none applies).
type Target struct {
	Cluster string
	Values  map[string]any
}

// Error is a placement that cannot be satisfied: it names the app, the
// field of its app.yaml and, where one is at fault, the cluster.
type Error struct {
	App     string
	Field   string
	Cluster string
	Msg     string
}

func (e *Error) Error() string {
	file := path.Join(workspace.AppDir(e.App), workspace.AppFile)
	if e.Cluster != "" {
		return fmt.Sprintf("app %s: %s: %s: cluster %s: %s", e.App, file, e.Field, e.Cluster, e.Msg)
	}
	return fmt.Sprintf("app %s: %s: %s: %s", e.App, file, e.Field, e.Msg)
}

// Place returns the clusters app runs on, sorted by name: those p names or
// selects (every cluster for a nil p or one that names none), narrowed by
// its spread, each with its overrides' values merged in order.
func Place(clusters []workspace.ClusterEntry, app string, p *workspace.Placement) ([]Target, error) {
	if p == nil {
		p = &workspace.Placement{}
	}
	fail := func(field, cluster, format string, args ...any) error {
		return &Error{App: app, Field: field, Cluster: cluster, Msg: fmt.Sprintf(format, args...)}
	}
	chosen, err := choose(clusters, p.Clusters, p.Selector, "placement", fail)
	if err != nil {
		return nil, err
	}
	if s := p.Spread; s != nil {
		if chosen, err = spread(chosen, s, fail); err != nil {
			return nil, err
		}
	}
	placed := map[string]bool{}
	out := make([]Target, len(chosen))
	for i, c := range chosen {
		placed[c.Name] = true
		out[i] = Target{Cluster: c.Name}
	}
	for i, o := range p.Overrides {
		field := fmt.Sprintf("placement.overrides[%d]", i)
		if len(o.Values) == 0 {
			return nil, fail(field+".values", "", "sets no values")
		}
		hit, err := choose(clusters, o.Clusters, o.Selector, field, fail)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, c := range hit {
			if !placed[c.Name] {
				continue
			}
			n++
			for j := range out {
				if out[j].Cluster == c.Name {
					if out[j].Values == nil {
						out[j].Values = map[string]any{}
					}
					Merge(out[j].Values, o.Values)
				}
			}
		}
		if n == 0 {
			return nil, fail(field, "", "applies to %s, where the app is not placed (it is placed on %s)", strings.Join(workspaceNames(hit), ", "), strings.Join(slices.Sorted(maps.Keys(placed)), ", "))
		}
	}
	return out, nil
}

// choose returns the clusters names lists, or those selector matches, or
// every cluster when both are empty; sorted by name.
func choose(clusters []workspace.ClusterEntry, names []string, selector *metav1.LabelSelector, field string, fail func(field, cluster, format string, args ...any) error) ([]workspace.ClusterEntry, error) {
	var out []workspace.ClusterEntry
	switch {
	case len(names) > 0 && selector != nil:
		return nil, fail(field, "", "set clusters or selector, not both")
	case len(names) > 0:
		for _, n := range names {
			c, ok := find(clusters, n)
			if !ok {
				return nil, fail(field+".clusters", n, "not a cluster of the workspace (%s lists: %s)", workspace.ConfigFile, strings.Join(workspaceNames(clusters), ", "))
			}
			if !slices.ContainsFunc(out, func(x workspace.ClusterEntry) bool { return x.Name == n }) {
				out = append(out, c)
			}
		}
	case selector != nil:
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return nil, fail(field+".selector", "", "%v", err)
		}
		for _, c := range clusters {
			if sel.Matches(labels.Set(c.Labels)) {
				out = append(out, c)
			}
		}
		if len(out) == 0 {
			return nil, fail(field+".selector", "", "%s matches no cluster of the workspace (clusters: %s)", sel, describe(clusters))
		}
	default:
		out = slices.Clone(clusters)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// spread keeps one cluster (the first by name) per distinct value of the
// label s.By, on the first s.Count values in sorted order.
func spread(chosen []workspace.ClusterEntry, s *workspace.Spread, fail func(field, cluster, format string, args ...any) error) ([]workspace.ClusterEntry, error) {
	if s.By == "" {
		return nil, fail("placement.spread.by", "", "names no label")
	}
	if s.Count < 1 {
		return nil, fail("placement.spread.count", "", "is %d, want at least 1", s.Count)
	}
	first := map[string]workspace.ClusterEntry{}
	for _, c := range chosen {
		v, ok := c.Labels[s.By]
		if !ok {
			continue
		}
		if _, seen := first[v]; !seen {
			first[v] = c
		}
	}
	values := slices.Sorted(maps.Keys(first))
	if s.Count > len(values) {
		return nil, fail("placement.spread.count", "", "is %d, but the clusters placed on have only %d distinct values of label %s (%s among %s)",
			s.Count, len(values), s.By, strings.Join(values, ", "), strings.Join(workspaceNames(chosen), ", "))
	}
	out := make([]workspace.ClusterEntry, 0, s.Count)
	for _, v := range values[:s.Count] {
		out = append(out, first[v])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func find(clusters []workspace.ClusterEntry, name string) (workspace.ClusterEntry, bool) {
	for _, c := range clusters {
		if c.Name == name {
			return c, true
		}
	}
	return workspace.ClusterEntry{}, false
}

func workspaceNames(clusters []workspace.ClusterEntry) []string {
	out := make([]string, len(clusters))
	for i, c := range clusters {
		out[i] = c.Name
	}
	return out
}

func describe(clusters []workspace.ClusterEntry) string {
	parts := make([]string, len(clusters))
	for i, c := range clusters {
		parts[i] = c.Name + " " + labels.Set(c.Labels).String()
	}
	return strings.Join(parts, "; ")
}

// Merge copies src into dst; maps (a component's values) merge key by key.
func Merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				dst[k] = dm
			}
			Merge(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// Selected returns the names of the clusters names lists or selector
// matches (every cluster when both are empty), for environments.
func Selected(clusters []workspace.ClusterEntry, names []string, selector *metav1.LabelSelector) ([]string, error) {
	out, err := choose(clusters, names, selector, "clusters", func(field, cluster, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if cluster != "" {
			msg = "cluster " + cluster + ": " + msg
		}
		return fmt.Errorf("%s: %s", field, msg)
	})
	if err != nil {
		return nil, err
	}
	return workspaceNames(out), nil
}
