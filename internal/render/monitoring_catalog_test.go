package render

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/testcluster"
)

// TestCatalogPostgresqlShipsItsAlerts renders the built-in postgresql with
// the monitoring of a workspace that has kube-prometheus-stack: one
// PrometheusRule with its alerts over the app's own claims and pods, each
// naming a runbook the package has.
func TestCatalogPostgresqlShipsItsAlerts(t *testing.T) {
	ctx := context.Background()
	set := catalog.NewSet([]catalog.Ref{{Name: catalog.BuiltinName, Type: catalog.TypeBuiltin}}, map[string]catalog.Source{catalog.BuiltinName: catalog.Embedded()})
	u, prefer, err := set.Universe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sol, err := resolve.Solve(u, resolve.Input{Requests: []resolve.Request{{App: "db", Package: "postgresql"}}, Prefer: prefer})
	if err != nil {
		t.Fatal(err)
	}
	mirrors, err := catalog.ParseMirrorEnv(testcluster.ChartMirror(t))
	if err != nil {
		t.Fatal(err)
	}
	fetcher := &catalog.ChartFetcher{Cache: t.TempDir(), Mirrors: mirrors}
	res, err := RenderApp(ctx, set.Loader(), AppInput{
		Solution: sol, App: "db", Namespace: "shop", Charts: fetcher.Fetch, Seed: testSeed,
		Monitoring: Monitoring{PrometheusRules: true, RuleLabels: map[string]string{"release": "monitoring"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rules := findObjects(res, "PrometheusRule", "db-alerts")
	if len(rules) != 1 || rules[0].GetLabels()["release"] != "monitoring" {
		t.Fatalf("PrometheusRules %v, want db-alerts labelled release: monitoring", rules)
	}
	groups, _, _ := unstructured.NestedSlice(rules[0].Object, "spec", "groups")
	var names []string
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			rule := r.(map[string]any)
			names = append(names, rule["alert"].(string))
			expr := rule["expr"].(string)
			if !strings.Contains(expr, `namespace="shop"`) || strings.Contains(expr, "{{") {
				t.Errorf("alert %s: expr %q is not the app's", rule["alert"], expr)
			}
		}
	}
	if got := strings.Join(names, " "); got != "PostgresVolumeFilling PostgresMemoryNearLimit PostgresRestarting" {
		t.Errorf("alerts %s", got)
	}
}
