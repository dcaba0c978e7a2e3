package workspace

import (
	"strings"
	"testing"
)

func TestParseConfigChecksClustersAndEnvironments(t *testing.T) {
	head := "apiVersion: berth.dev/v1alpha1\nkind: Workspace\ncluster: {}\ndefaults: {}\n"
	ok := head + `clusters:
- name: dev
  labels: {env: dev}
  network: {pods: [10.244.0.0/16], services: [10.96.0.0/20]}
- name: prod-eu
  labels: {env: prod, region: eu}
  kubernetes: {version: v1.31.4, apiVersions: [v1, v1/ConfigMap, apps/v1]}
environments:
- name: dev
  clusters: [dev]
  soak: 10m
  verify: {job: verify/smoke.yaml, timeout: 2m}
- name: prod
  selector: {matchLabels: {env: prod}}
  requireApproval: true
`
	var cfg Config
	if err := ParseConfig(ConfigFile, []byte(ok), &cfg); err != nil {
		t.Fatal(err)
	}
	if eu, _ := cfg.FleetCluster("prod-eu"); eu.Kubernetes == nil || eu.Kubernetes.Version != "v1.31.4" || len(eu.Kubernetes.APIVersions) != 3 {
		t.Fatalf("prod-eu's kubernetes: %+v", eu.Kubernetes)
	}
	if !cfg.IsFleet() || len(cfg.Environments) != 2 || cfg.Environments[0].SoakDuration().Minutes() != 10 {
		t.Fatalf("parsed %+v", cfg)
	}
	bad := map[string]struct{ yaml, want string }{
		"duplicate cluster":   {head + "clusters: [{name: a}, {name: a}]\n", "clusters[1].name: cluster \"a\" is listed twice"},
		"bad cluster name":    {head + "clusters: [{name: A_b}]\n", "clusters[0].name: cluster name \"A_b\" is invalid"},
		"bad range":           {head + "clusters: [{name: a, network: {pods: [10.0.0.0]}}]\n", "clusters[0] (a).network.pods: \"10.0.0.0\" is not a CIDR range"},
		"bad label":           {head + "clusters: [{name: a, labels: {region: \"e u\"}}]\n", "clusters[0] (a).labels.region"},
		"unknown field":       {head + "clusters: [{name: a, zone: x}]\n", "unknown field"},
		"unknown stage cl":    {head + "clusters: [{name: a}]\nenvironments: [{name: dev, clusters: [b]}]\n", "environments[0] (dev).clusters: no cluster \"b\" among"},
		"both clusters & sel": {head + "clusters: [{name: a}]\nenvironments: [{name: dev, clusters: [a], selector: {matchLabels: {x: y}}}]\n", "set clusters or selector, not both"},
		"bad soak":            {head + "clusters: [{name: a}]\nenvironments: [{name: dev, clusters: [a], soak: soon}]\n", "environments[0] (dev).soak"},
		"bad kube version":    {head + "clusters: [{name: a, kubernetes: {version: latest}}]\n", "clusters[0] (a).kubernetes.version: \"latest\" is not a Kubernetes version"},
		"verify outside":      {head + "clusters: [{name: a}]\nenvironments: [{name: dev, clusters: [a], verify: {job: ../x.yaml}}]\n", "verify.job"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			var cfg Config
			err := ParseConfig(ConfigFile, []byte(tc.yaml), &cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ConfigFile) {
				t.Fatalf("error = %v, want one naming %s and containing %q", err, ConfigFile, tc.want)
			}
		})
	}
}

func TestParseAppReadsPlacement(t *testing.T) {
	a, err := ParseApp("web", []byte(`apiVersion: berth.dev/v1alpha1
kind: App
name: web
package: web
namespace: web
placement:
  selector: {matchLabels: {env: prod}}
  spread: {by: region, count: 2}
  overrides:
  - selector: {matchLabels: {region: eu}}
    values: {replicas: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := a.Placement
	if p == nil || p.Spread.By != "region" || p.Spread.Count != 2 || p.Overrides[0].Values["replicas"] != float64(3) {
		t.Fatalf("placement = %+v", p)
	}
}
