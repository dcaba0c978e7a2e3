package placement

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"berth.dev/berth/internal/workspace"
)

var fleet = []workspace.ClusterEntry{
	{Name: "dev", Labels: map[string]string{"env": "dev", "region": "eu"}},
	{Name: "prod-eu", Labels: map[string]string{"env": "prod", "region": "eu"}},
	{Name: "prod-eu-2", Labels: map[string]string{"env": "prod", "region": "eu"}},
	{Name: "prod-us", Labels: map[string]string{"env": "prod", "region": "us"}},
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func TestPlace(t *testing.T) {
	tests := map[string]struct {
		p    *workspace.Placement
		want []Target
	}{
		"no placement: every cluster": {nil, []Target{{Cluster: "dev"}, {Cluster: "prod-eu"}, {Cluster: "prod-eu-2"}, {Cluster: "prod-us"}}},
		"by name":                     {&workspace.Placement{Clusters: []string{"prod-us", "dev"}}, []Target{{Cluster: "dev"}, {Cluster: "prod-us"}}},
		"by selector":                 {&workspace.Placement{Selector: sel("env", "prod")}, []Target{{Cluster: "prod-eu"}, {Cluster: "prod-eu-2"}, {Cluster: "prod-us"}}},
		"selector with expression": {&workspace.Placement{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "region", Operator: metav1.LabelSelectorOpIn, Values: []string{"us"}}}}},
			[]Target{{Cluster: "prod-us"}}},
		"spread one per region": {&workspace.Placement{Selector: sel("env", "prod"), Spread: &workspace.Spread{By: "region", Count: 2}},
			[]Target{{Cluster: "prod-eu"}, {Cluster: "prod-us"}}},
		"spread at most count": {&workspace.Placement{Selector: sel("env", "prod"), Spread: &workspace.Spread{By: "region", Count: 1}},
			[]Target{{Cluster: "prod-eu"}}},
		"overrides merge in order": {&workspace.Placement{Selector: sel("env", "prod"), Spread: &workspace.Spread{By: "region", Count: 2}, Overrides: []workspace.PlacementOverride{
			{Selector: sel("region", "eu"), Values: map[string]any{"replicas": 3, "db": map[string]any{"size": "10Gi"}}},
			{Clusters: []string{"prod-eu"}, Values: map[string]any{"db": map[string]any{"class": "fast"}}},
		}}, []Target{{Cluster: "prod-eu", Values: map[string]any{"replicas": 3, "db": map[string]any{"size": "10Gi", "class": "fast"}}}, {Cluster: "prod-us"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Place(fleet, "web", tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Place (-want +got):\n%s", d)
			}
		})
	}
}

func TestPlaceRefusesWhatCannotBeSatisfied(t *testing.T) {
	tests := map[string]struct {
		p    *workspace.Placement
		want string
	}{
		"unknown cluster":   {&workspace.Placement{Clusters: []string{"prod-ap"}}, "app web: apps/web/app.yaml: placement.clusters: cluster prod-ap: not a cluster of the workspace"},
		"selector no match": {&workspace.Placement{Selector: sel("env", "staging")}, "app web: apps/web/app.yaml: placement.selector: env=staging matches no cluster"},
		"spread too large":  {&workspace.Placement{Selector: sel("env", "prod"), Spread: &workspace.Spread{By: "region", Count: 3}}, "placement.spread.count: is 3, but the clusters placed on have only 2 distinct values of label region (eu, us"},
		"spread zero":       {&workspace.Placement{Spread: &workspace.Spread{By: "region"}}, "placement.spread.count: is 0"},
		"both":              {&workspace.Placement{Clusters: []string{"dev"}, Selector: sel("env", "dev")}, "placement: set clusters or selector, not both"},
		"override unplaced": {&workspace.Placement{Clusters: []string{"dev"}, Overrides: []workspace.PlacementOverride{{Clusters: []string{"prod-us"}, Values: map[string]any{"x": 1}}}}, "placement.overrides[0]: applies to prod-us, where the app is not placed"},
		"override unknown":  {&workspace.Placement{Overrides: []workspace.PlacementOverride{{Clusters: []string{"nope"}, Values: map[string]any{"x": 1}}}}, "placement.overrides[0].clusters: cluster nope"},
		"override empty":    {&workspace.Placement{Overrides: []workspace.PlacementOverride{{Clusters: []string{"dev"}}}}, "placement.overrides[0].values: sets no values"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Place(fleet, "web", tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
