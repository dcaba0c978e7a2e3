package lifecycle

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"berth.dev/berth/internal/render"
	"berth.dev/berth/internal/testcluster"
)

// batteryEnv is newEnv over the built-in catalog with charts from the offline
// mirror (testcluster.Main sets BERTH_CHART_MIRROR), counting the writes its
// cluster client makes.
func batteryEnv(t *testing.T) (*Env, *countingTransport) {
	t.Helper()
	env, counter := embeddedEnv(t)
	env.ChartCache = t.TempDir()
	return env, counter
}

// battery is one package of the starter kit under test.
type battery struct {
	pkg, from, to string
	// values is a non-default configuration; cluster-wide names get the app's
	// name, so that tests sharing the cluster do not collide.
	values func(name string) map[string]any
	// check looks at the deployed app on the cluster.
	check func(t *testing.T, dyn dynamic.Interface, name string)
	// keepsNamespace: the app makes objects of its own in its namespace at
	// run time, so uninstall keeps the namespace with them.
	keepsNamespace bool
}

var (
	gvrCertificate    = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}
	gvrClusterIssuer  = schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "clusterissuers"}
	gvrValidatingHook = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}
	gvrMutatingHook   = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
	gvrPrometheus     = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheuses"}
	gvrServiceMonitor = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}
	gvrPodMonitor     = schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "podmonitors"}
	gvrIngressClass   = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingressclasses"}
	gvrServices       = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrPods           = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	gvrConfigMaps     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// TestCatalogBatteriesOnTheCluster takes each package of the starter kit
// through the path 'berth install' takes, with charts from the offline mirror:
// install at its older version with a non-default configuration, deploy to
// healthy, deploy again without a single write, upgrade to its newer version,
// healthy again, and uninstall, leaving nothing of the app on the cluster.
// Then the starter kit itself installs the five, wired to each other.
func TestCatalogBatteriesOnTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local cluster")
	}
	for _, b := range []battery{
		{pkg: "cert-manager", from: "1.19.1", to: "1.19.2",
			values: func(name string) map[string]any {
				return map[string]any{"selfSignedIssuerName": name, "letsEncrypt": "staging", "acmeEmail": "ops@example.com", "logLevel": 4}
			},
			check: checkCertManager, keepsNamespace: true},
		{pkg: "traefik", from: "38.0.1", to: "38.0.2",
			values: func(name string) map[string]any {
				return map[string]any{"ingressClassName": name, "defaultIngressClass": false, "replicas": 2, "ha": true, "serviceType": "NodePort", "dashboard": true}
			},
			check: func(t *testing.T, dyn dynamic.Interface, name string) {
				ic, err := dyn.Resource(gvrIngressClass).Get(context.Background(), name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("the IngressClass named by ingressClassName: %v", err)
				}
				if ic.GetAnnotations()["ingressclass.kubernetes.io/is-default-class"] == "true" {
					t.Error("the IngressClass is the cluster's default although defaultIngressClass is false")
				}
			}},
		{pkg: "kube-prometheus-stack", from: "80.14.3", to: "80.14.4",
			values: func(string) map[string]any {
				return map[string]any{"retentionDays": 3, "storage": "5Gi", "alertmanager": false}
			},
			check: func(t *testing.T, dyn dynamic.Interface, name string) {
				p, err := dyn.Resource(gvrPrometheus).Namespace(name).Get(context.Background(), name+"-prometheus", metav1.GetOptions{})
				if err != nil {
					t.Fatalf("the Prometheus resource: %v", err)
				}
				if r, _, _ := unstructured.NestedString(p.Object, "spec", "retention"); r != "3d" {
					t.Errorf("Prometheus retention = %q, want 3d", r)
				}
				if !conditionTrue(p, "Available") {
					t.Error("the Prometheus resource is not Available, yet the app counted as healthy")
				}
			}},
		{pkg: "loki", from: "6.49.0",
			values: func(string) map[string]any { return map[string]any{"retentionDays": 7, "multiTenant": true} },
			check: func(t *testing.T, dyn dynamic.Interface, name string) {
				if _, err := dyn.Resource(gvrServices).Namespace(name).Get(context.Background(), name+"-gateway", metav1.GetOptions{}); err != nil {
					t.Errorf("the gateway Service the url output names: %v", err)
				}
			}},
		{pkg: "vault", from: "0.31.0", to: "0.32.0",
			// The agent injector's webhook (failurePolicy Ignore) sees every pod
			// created meanwhile: the stand-ins refuse its calls at once.
			values: func(string) map[string]any {
				return map[string]any{"auditStorage": true, "logLevel": "debug", "ui": false}
			},
			check: func(t *testing.T, dyn dynamic.Interface, name string) {
				pvcs, err := testcluster.Clientset(t).CoreV1().PersistentVolumeClaims(name).List(context.Background(), metav1.ListOptions{})
				if err != nil || len(pvcs.Items) != 2 {
					t.Errorf("vault's claims: %v, %d, want data and audit", err, len(pvcs.Items))
				}
			}},
	} {
		t.Run(b.pkg, func(t *testing.T) { testBattery(t, b) })
	}
	t.Run("starter", testStarter)
}

func testBattery(t *testing.T, b battery) {
	ctx := context.Background()
	env, counter := batteryEnv(t)
	dyn := dynamic.NewForConfigOrDie(testcluster.Config(t))
	name := testcluster.UniqueName(t, 20)
	t.Cleanup(func() {
		_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), name, metav1DeleteOptions)
	})
	if _, err := env.Install(ctx, InstallOptions{Package: b.pkg + "@" + b.from, Name: name, Namespace: name, Values: b.values(name)}); err != nil {
		t.Fatal(err)
	}
	deployHealthy(t, env, name)
	b.check(t, dyn, name)

	before := counter.writes.Load()
	res := deployHealthy(t, env, name)
	if writes := counter.writes.Load() - before; writes != 0 {
		t.Errorf("the second deploy of an unchanged workspace made %d writes, want 0 (%+v)", writes, res.Apps)
	}

	if b.to != "" {
		up, err := env.Upgrade(ctx, UpgradeOptions{Apps: []string{name}, To: b.to})
		if err != nil {
			t.Fatalf("upgrade %s -> %s: %v", b.from, b.to, err)
		}
		if !up.Committed || len(up.Changes) == 0 || up.Changes[0].To != b.to {
			t.Fatalf("upgrade = %+v, want %s committed", up, b.to)
		}
		deployHealthy(t, env, name)
		b.check(t, dyn, name)
	}

	un, err := env.Uninstall(ctx, UninstallOptions{App: name, DeleteData: true, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	assertGone(t, dyn, name, un, b.keepsNamespace)
}

// assertGone fails when anything labelled as the app's is left: in its
// namespace, or cluster-wide (other than the charts' CustomResourceDefinitions,
// which are kept as Helm keeps them). The namespace itself is deleted, unless
// keepsNamespace: berth keeps a namespace holding objects that are not the
// app's (cert-manager's webhook makes its CA Secret there at run time), hands
// it over and says so in res.
func assertGone(t *testing.T, dyn dynamic.Interface, app string, res *UninstallResult, keepsNamespace bool) {
	t.Helper()
	if keepsNamespace {
		i := slices.IndexFunc(res.KeptNamespaces, func(k KeptNamespace) bool { return k.Name == app && k.App == app })
		if i < 0 || len(res.KeptNamespaces[i].Holds) == 0 {
			t.Errorf("uninstall result %+v does not report namespace %s kept with what it holds", res.KeptNamespaces, app)
		}
		ns, err := testcluster.Clientset(t).CoreV1().Namespaces().Get(context.Background(), app, metav1.GetOptions{})
		if err != nil || ns.Labels[LabelKeptFrom] != app || ns.Labels[render.LabelApp] != "" {
			t.Errorf("kept namespace %s: %v, labels %v; want it handed over (%s=%s, no app label)", app, err, ns.GetLabels(), LabelKeptFrom, app)
		}
	}
	cs := testcluster.Clientset(t)
	sel := labels.SelectorFromSet(labels.Set{render.LabelApp: app}).String()
	lists, err := cs.Discovery().ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, app, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, "", nil
		case err != nil:
			return false, "", err
		}
		return keepsNamespace && ns.DeletionTimestamp == nil, "the app's namespace is still there", nil
	})
	// Uninstall waited for the app's objects to be gone: one look suffices.
	ctx := context.Background()
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || r.Kind == "CustomResourceDefinition" || r.Kind == "Event" ||
				(keepsNamespace && r.Kind == "Namespace") {
				continue
			}
			list, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: sel, Limit: 1})
			if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
				continue // the kind is gone with its CRD
			}
			if err != nil {
				t.Fatalf("listing %s: %v", r.Name, err)
			}
			for _, o := range list.Items {
				t.Errorf("after uninstall, %s %s/%s of the app is left", r.Kind, o.GetNamespace(), o.GetName())
			}
		}
	}
}

func conditionTrue(o *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

// checkCertManager: the issuers are there and Ready, the webhook has its CA,
// and a Certificate, which goes through cert-manager's webhook (failurePolicy
// Fail), is accepted and becomes Ready.
func checkCertManager(t *testing.T, dyn dynamic.Interface, name string) {
	ctx := context.Background()
	for _, issuer := range []string{name, "letsencrypt"} {
		ci, err := dyn.Resource(gvrClusterIssuer).Get(ctx, issuer, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ClusterIssuer %s: %v", issuer, err)
		}
		if !conditionTrue(ci, "Ready") {
			t.Errorf("ClusterIssuer %s is not Ready, yet the app counted as healthy", issuer)
		}
	}
	hooks, err := dyn.Resource(gvrValidatingHook).List(ctx, metav1.ListOptions{LabelSelector: render.LabelApp + "=" + name})
	if err != nil || len(hooks.Items) != 1 {
		t.Fatalf("cert-manager's ValidatingWebhookConfiguration: %v (%d)", err, len(hooks.Items))
	}
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		h, err := dyn.Resource(gvrValidatingHook).Get(ctx, hooks.Items[0].GetName(), metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		ws, _, _ := unstructured.NestedSlice(h.Object, "webhooks")
		ca, _, _ := unstructured.NestedString(ws[0].(map[string]any), "clientConfig", "caBundle")
		return ca != "", "the webhook has no CA", nil
	})
	cert := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
		"metadata": map[string]any{"generateName": "probe-"},
		"spec": map[string]any{
			"secretName": "probe-tls", "dnsNames": []any{"probe.example.com"},
			"issuerRef": map[string]any{"kind": "ClusterIssuer", "name": name},
		},
	}}
	var created *unstructured.Unstructured
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		created, err = dyn.Resource(gvrCertificate).Namespace(name).Create(ctx, cert, metav1.CreateOptions{})
		if err != nil {
			return false, "creating a Certificate through cert-manager's webhook: " + err.Error(), nil
		}
		return true, "", nil
	})
	testcluster.WaitFor(t, time.Minute, func(ctx context.Context) (bool, string, error) {
		c, err := dyn.Resource(gvrCertificate).Namespace(name).Get(ctx, created.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return conditionTrue(c, "Ready"), "the Certificate is not Ready", nil
	})
	if err := dyn.Resource(gvrCertificate).Namespace(name).Delete(ctx, created.GetName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// testStarter installs the starter kit: its five batteries as shared apps of
// their own, then its wiring, which must point at what the batteries run.
func testStarter(t *testing.T) {
	ctx := context.Background()
	env, counter := batteryEnv(t)
	dyn := dynamic.NewForConfigOrDie(testcluster.Config(t))
	name := testcluster.UniqueName(t, 20)
	shared := []string{"cert-manager", "kube-prometheus-stack", "loki", "traefik", "vault"}
	t.Cleanup(func() {
		// After a failure, leave no webhook configuration behind: cert-manager's
		// fails closed and would refuse every cert-manager resource of the
		// cluster once its Service is gone.
		for _, app := range append([]string{name}, shared...) {
			for _, gvr := range []schema.GroupVersionResource{gvrValidatingHook, gvrMutatingHook} {
				_ = dyn.Resource(gvr).DeleteCollection(context.Background(), metav1.DeleteOptions{},
					metav1.ListOptions{LabelSelector: render.LabelApp + "=" + app})
			}
			_ = testcluster.Clientset(t).CoreV1().Namespaces().Delete(context.Background(), app, metav1DeleteOptions)
		}
	})
	res, err := env.Install(ctx, InstallOptions{Package: "starter", Name: name, Namespace: name})
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]string{name}, shared...); !sameSet(res.Apps, want) {
		t.Errorf("install brought %v, want %v", res.Apps, want)
	}
	// The local cluster has no load balancer, like many bare-metal ones: the
	// runbook's advice, a NodePort, before the first deploy.
	if _, err := env.Config(ctx, ConfigOptions{App: "traefik", Values: map[string]any{"serviceType": "NodePort"}}); err != nil {
		t.Fatal(err)
	}
	deployHealthy(t, env, name)

	// Prometheus scrapes the batteries: each monitor selects what runs.
	selects := func(gvr schema.GroupVersionResource, monitor string, what schema.GroupVersionResource) {
		t.Helper()
		m, err := dyn.Resource(gvr).Namespace(name).Get(ctx, monitor, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s %s: %v", gvr.Resource, monitor, err)
		}
		nss, _, _ := unstructured.NestedStringSlice(m.Object, "spec", "namespaceSelector", "matchNames")
		ml, _, _ := unstructured.NestedStringMap(m.Object, "spec", "selector", "matchLabels")
		if len(nss) != 1 {
			t.Fatalf("%s %s selects namespaces %v, want one", gvr.Resource, monitor, nss)
		}
		list, err := dyn.Resource(what).Namespace(nss[0]).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(ml).String()})
		if err != nil || len(list.Items) == 0 {
			t.Errorf("%s %s selects no %s in %s (%v): %v", gvr.Resource, monitor, what.Resource, nss[0], ml, err)
		}
	}
	selects(gvrPodMonitor, "traefik", gvrPods)
	selects(gvrServiceMonitor, "cert-manager", gvrServices)
	selects(gvrServiceMonitor, "loki", gvrServices)

	// Grafana gets Loki: the data source names the gateway loki's output names.
	cm, err := dyn.Resource(gvrConfigMaps).Namespace(name).Get(ctx, name+"-loki-datasource", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.GetLabels()["grafana_datasource"] != "1" {
		t.Errorf("the data source ConfigMap lacks the label Grafana's sidecar loads: %v", cm.GetLabels())
	}
	ds, _, _ := unstructured.NestedString(cm.Object, "data", "loki.yaml")
	if !strings.Contains(ds, "url: http://loki-gateway.loki.svc") {
		t.Errorf("the Loki data source = %q, want loki's gateway", ds)
	}
	if _, err := dyn.Resource(gvrServices).Namespace("loki").Get(ctx, "loki-gateway", metav1.GetOptions{}); err != nil {
		t.Errorf("the Service the data source names: %v", err)
	}
	before := counter.writes.Load()
	deployHealthy(t, env, name)
	if writes := counter.writes.Load() - before; writes != 0 {
		t.Errorf("the second deploy of the starter kit made %d writes, want 0", writes)
	}

	// Uninstalling the starter removes the batteries nothing else uses.
	un, err := env.Uninstall(ctx, UninstallOptions{App: name, DeleteData: true, Timeout: 5 * time.Minute})
	if err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if want := append([]string{name}, shared...); !sameSet(un.Apps, want) {
		t.Errorf("uninstall removed %v, want %v", un.Apps, want)
	}
	for _, app := range append([]string{name}, shared...) {
		assertGone(t, dyn, app, un, app == "cert-manager")
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
