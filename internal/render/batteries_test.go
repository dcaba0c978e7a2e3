package render

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/resolve"
	"berth.dev/berth/internal/testcluster"
)

// renderBattery renders a built-in package version as app name in
// namespace, with its charts read through the offline mirror.
func renderBattery(t *testing.T, pkg, version, name string, values map[string]any) *AppResult {
	t.Helper()
	testcluster.ChartMirror(t)
	mirrors, err := catalog.MirrorsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	set := embeddedSet()
	sol, err := resolve.Solve(builtinUniverse(t, set), resolve.Input{Requests: []resolve.Request{{App: name, Package: pkg, Constraint: "=" + version}}, Prefer: builtinPrefer(t, set)})
	if err != nil {
		t.Fatalf("%s %s: %v", pkg, version, err)
	}
	res, err := RenderApp(context.Background(), builtinLoader{set}, AppInput{
		Solution: sol, App: name, Namespace: name, Values: values,
		Generator: func(scope string) pkgspec.Generator { return pkgspec.SeededGenerator(testSeed, scope) },
		Charts:    (&catalog.ChartFetcher{Cache: t.TempDir(), Mirrors: mirrors}).Fetch,
	})
	if err != nil {
		t.Fatalf("%s %s: %v", pkg, version, err)
	}
	return res
}

// objects indexes an app's rendered objects by "Kind/name".
func objects(res *AppResult) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, p := range res.Parts {
		for _, o := range p.Result.Objects {
			out[o.Object.GetKind()+"/"+o.Object.GetName()] = o.Object
		}
	}
	return out
}

// TestCatalogBatteriesRender renders every version of the starter kit's
// packages from the mirror with defaults and with other settings, and checks
// what the settings must change in the chart's output.
func TestCatalogBatteriesRender(t *testing.T) {
	type check func(t *testing.T, objs map[string]*unstructured.Unstructured, res *AppResult)
	has := func(keys ...string) check {
		return func(t *testing.T, objs map[string]*unstructured.Unstructured, _ *AppResult) {
			t.Helper()
			for _, k := range keys {
				if objs[k] == nil {
					t.Errorf("no %s among the rendered objects", k)
				}
			}
		}
	}
	lacks := func(keys ...string) check {
		return func(t *testing.T, objs map[string]*unstructured.Unstructured, _ *AppResult) {
			t.Helper()
			for _, k := range keys {
				if objs[k] != nil {
					t.Errorf("%s is rendered, want it left out", k)
				}
			}
		}
	}
	field := func(key string, want any, path ...string) check {
		return func(t *testing.T, objs map[string]*unstructured.Unstructured, _ *AppResult) {
			t.Helper()
			o := objs[key]
			if o == nil {
				t.Fatalf("no %s among the rendered objects", key)
			}
			got, _, _ := unstructured.NestedFieldNoCopy(o.Object, path...)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %s = %v, want %v", key, strings.Join(path, "."), got, want)
			}
		}
	}
	output := func(key, want string) check {
		return func(t *testing.T, _ map[string]*unstructured.Unstructured, res *AppResult) {
			t.Helper()
			got := res.Parts[len(res.Parts)-1].Result.Outputs[key]
			if got != want {
				t.Errorf("output %s = %q, want %q", key, got, want)
			}
		}
	}
	countCRDs := func(n int) check {
		return func(t *testing.T, _ map[string]*unstructured.Unstructured, res *AppResult) {
			t.Helper()
			got := 0
			for _, p := range res.Parts {
				for _, o := range p.Result.Objects {
					if o.Stage == StageCRDs {
						got++
					}
				}
			}
			if got != n {
				t.Errorf("%d CRDs rendered, want %d", got, n)
			}
		}
	}
	tests := map[string]struct {
		pkg      string
		versions []string
		values   map[string]any
		checks   []check
	}{
		"cert-manager defaults": {"cert-manager", []string{"1.19.1", "1.19.2"}, nil, []check{
			countCRDs(6),
			has("Deployment/app-cert-manager", "Deployment/app-cert-manager-webhook", "Deployment/app-cert-manager-cainjector", "ClusterIssuer/selfsigned",
				"ValidatingWebhookConfiguration/app-cert-manager-webhook", "MutatingWebhookConfiguration/app-cert-manager-webhook"),
			lacks("ClusterIssuer/letsencrypt", "PodDisruptionBudget/app-cert-manager", "ServiceMonitor/app-cert-manager"),
			// Leader election in the app's namespace, not kube-system.
			field("Role/app-cert-manager:leaderelection", "app", "metadata", "namespace"),
			output("clusterIssuer", "selfsigned"), output("acmeIssuer", ""),
		}},
		"cert-manager settings": {"cert-manager", []string{"1.19.2"}, map[string]any{
			"selfSignedIssuer": false, "letsEncrypt": "production", "acmeEmail": "ops@example.com", "acmeIngressClass": "public",
			"ha": true, "replicas": 2, "webhookReplicas": 3, "monitoring": true,
		}, []check{
			has("ClusterIssuer/letsencrypt", "PodDisruptionBudget/app-cert-manager", "PodDisruptionBudget/app-cert-manager-webhook", "ServiceMonitor/app-cert-manager"),
			lacks("ClusterIssuer/selfsigned"),
			field("ClusterIssuer/letsencrypt", "https://acme-v02.api.letsencrypt.org/directory", "spec", "acme", "server"),
			field("Deployment/app-cert-manager-webhook", int64(3), "spec", "replicas"),
			output("clusterIssuer", ""), output("acmeIssuer", "letsencrypt"),
		}},
		"traefik defaults": {"traefik", []string{"38.0.1", "38.0.2"}, nil, []check{
			has("Deployment/app-traefik", "Service/app-traefik", "IngressClass/traefik"),
			lacks("PodDisruptionBudget/app", "ServiceMonitor/app-traefik", "IngressRoute/app-dashboard"),
			field("Service/app-traefik", "LoadBalancer", "spec", "type"),
			output("ingressClassName", "traefik"),
		}},
		"traefik settings": {"traefik", []string{"38.0.2"}, map[string]any{
			"replicas": 3, "ha": true, "serviceType": "NodePort", "ingressClassName": "edge", "dashboard": true, "monitoring": true,
		}, []check{
			has("IngressClass/edge", "IngressRoute/app-dashboard", "ServiceMonitor/app-traefik"),
			field("PodDisruptionBudget/app", "policy/v1", "apiVersion"),
			field("Service/app-traefik", "NodePort", "spec", "type"),
			field("Deployment/app-traefik", int64(3), "spec", "replicas"),
		}},
		"kube-prometheus-stack defaults": {"kube-prometheus-stack", []string{"80.14.3", "80.14.4"}, nil, []check{
			countCRDs(10),
			has("Prometheus/app-prometheus", "Alertmanager/app-alertmanager", "Deployment/app-grafana", "DaemonSet/app-prometheus-node-exporter"),
			field("Prometheus/app-prometheus", "10d", "spec", "retention"),
			output("prometheusUrl", "http://app-prometheus.app.svc:9090"),
		}},
		"kube-prometheus-stack settings": {"kube-prometheus-stack", []string{"80.14.4"}, map[string]any{
			"retentionDays": 30, "storage": "0", "alertmanager": false, "grafanaDomain": "grafana.example.com", "tlsIssuer": "selfsigned",
			"nodeExporter": false, "admissionWebhook": false,
		}, []check{
			has("Ingress/app-grafana"),
			lacks("Alertmanager/app-alertmanager", "DaemonSet/app-prometheus-node-exporter", "ValidatingWebhookConfiguration/app-admission"),
			field("Prometheus/app-prometheus", "30d", "spec", "retention"),
			field("Prometheus/app-prometheus", nil, "spec", "storage"),
			output("grafanaUrl", "https://grafana.example.com"), output("alertmanagerUrl", ""),
		}},
		"loki defaults": {"loki", []string{"6.49.0"}, nil, []check{
			// The configuration is a Secret (it may hold the bucket's key).
			has("StatefulSet/app", "Deployment/app-gateway", "Secret/loki"),
			lacks("ConfigMap/loki", "StatefulSet/app-chunks-cache", "DaemonSet/app-canary"),
			output("url", "http://app-gateway.app.svc"),
		}},
		"loki settings": {"loki", []string{"6.49.0"}, map[string]any{
			"storageBackend": "s3", "replicas": 2, "s3Endpoint": "minio.storage.svc:9000", "s3Bucket": "logs",
			"s3AccessKeyId": "loki", "s3SecretAccessKey": "not-in-a-configmap", "multiTenant": true,
		}, []check{
			has("StatefulSet/loki-write", "StatefulSet/loki-backend", "Deployment/loki-read"),
			lacks("StatefulSet/app"),
			field("StatefulSet/loki-write", int64(2), "spec", "replicas"),
		}},
		"vault defaults": {"vault", []string{"0.31.0", "0.32.0"}, nil, []check{
			has("StatefulSet/app", "Deployment/app-agent-injector", "MutatingWebhookConfiguration/app-agent-injector-cfg", "Service/app-ui"),
			output("address", "http://app.app.svc:8200"),
		}},
		"vault settings": {"vault", []string{"0.31.0", "0.32.0"}, map[string]any{
			"mode": "ha", "replicas": 5, "injector": false, "domain": "vault.example.com", "tlsIssuer": "selfsigned",
		}, []check{
			has("Ingress/app", "PodDisruptionBudget/app"),
			lacks("Deployment/app-agent-injector"),
			field("StatefulSet/app", int64(5), "spec", "replicas"),
			output("url", "https://vault.example.com"),
		}},
		"starter": {"starter", []string{"1.0.0"}, nil, []check{
			has("PodMonitor/traefik", "ServiceMonitor/cert-manager", "ServiceMonitor/loki", "ConfigMap/app-loki-datasource"),
			output("lokiUrl", "http://loki-gateway.loki.svc"),
			output("prometheusUrl", "http://kube-prometheus-stack-prometheus.kube-prometheus-stack.svc:9090"),
		}},
	}
	for name, tc := range tests {
		for _, v := range tc.versions {
			t.Run(name+"@"+v, func(t *testing.T) {
				res := renderBattery(t, tc.pkg, v, "app", tc.values)
				objs := objects(res)
				for _, c := range tc.checks {
					c(t, objs, res)
				}
				if s := tc.values["s3SecretAccessKey"]; s != nil {
					for k, o := range objs {
						if o.GetKind() != "Secret" && strings.Contains(toYAML(t, o), s.(string)) {
							t.Errorf("the secret key is in %s, in the clear", k)
						}
					}
				}
			})
		}
	}
}

func toYAML(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
