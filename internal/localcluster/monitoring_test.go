package localcluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"berth.dev/berth/internal/dashboards"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/testcluster"
)

// promQuery runs an instant query against Prometheus's HTTP API and returns
// the value of each series by the given label.
func promQuery(ctx context.Context, base, query, label string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range body.Data.Result {
		out[r.Metric[label]] = fmt.Sprint(r.Value[1])
	}
	return out, nil
}

// TestMonitoringScrapesTheClusterAndDeliversAlerts starts a cluster with
// monitoring, checks that Prometheus scrapes every target (up == 1) and has
// kwok's simulated metrics of a pod, then
// applies a PrometheusRule whose alert always fires and checks that the rule
// sync loads it and Alertmanager delivers it to the connected controller's
// webhook with its bearer token.
func TestMonitoringScrapesTheClusterAndDeliversAlerts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	opts := newCluster(t, testcluster.BinDir(t))
	c, _, err := localcluster.Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.StartMonitoring(ctx, localcluster.MonitoringOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// A stand-in for berth's controller: metrics and /hooks/alertmanager.
	var mu sync.Mutex
	var hooks []string
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/hooks/alertmanager", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			hooks = append(hooks, "unauthenticated")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		hooks = append(hooks, string(body))
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	addr := l.Addr().String()
	if err := c.ConnectController(ctx, addr, "http://"+addr+"/hooks/alertmanager", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}

	// A pod kwok runs, whose simulated memory its annotation sets.
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "busy", Namespace: "default", Annotations: map[string]string{"kwok.x-k8s.io/usage-memory": "64Mi"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	jobs := []string{"apiserver", "kube-controller-manager", "kube-scheduler", "prometheus", "alertmanager", "berth-controller", "kwok"}
	testcluster.WaitFor(t, 3*time.Minute, func(ctx context.Context) (bool, string, error) {
		up, err := promQuery(ctx, m.PrometheusURL(), "up", "job")
		if err != nil {
			return false, err.Error(), nil
		}
		for _, j := range jobs {
			if up[j] != "1" {
				return false, fmt.Sprintf("up by job: %v", up), nil
			}
		}
		return true, "", nil
	})
	// kwok's simulated pod metrics: the pod's memory as its annotation says,
	// its phase as kube-state-metrics reports it.
	testcluster.WaitFor(t, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		mem, err := promQuery(ctx, m.PrometheusURL(), `container_memory_working_set_bytes{namespace="default", pod="busy"}`, "container")
		if err != nil {
			return false, err.Error(), nil
		}
		phase, err := promQuery(ctx, m.PrometheusURL(), `kube_pod_status_phase{namespace="default", pod="busy"}`, "phase")
		if err != nil {
			return false, err.Error(), nil
		}
		return mem["main"] == "67108864" && phase["Running"] == "1", fmt.Sprintf("memory by container %v, phase %v", mem, phase), nil
	})
	// Panels, as the console evaluates them.
	dc := &dashboards.Client{URL: m.PrometheusURL()}
	charts, err := dc.Evaluate(ctx, []pkgspec.Panel{
		{Title: "API server up", Query: `up{job="apiserver"}`},
		{Title: "broken", Query: `sum(`},
	}, "web", "default", dashboards.Range{Start: time.Now().Add(-time.Minute), End: time.Now(), Step: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) != 2 || len(charts[0].Series) != 1 || len(charts[0].Series[0].Points) == 0 || charts[0].Series[0].Points[len(charts[0].Series[0].Points)-1].Value != 1 {
		t.Errorf("chart of up{job=\"apiserver\"} = %+v", charts)
	}
	if len(charts) == 2 && charts[1].Err == "" {
		t.Errorf("a broken query gave no error on its chart: %+v", charts[1])
	}
	if st := c.Status(); st.Prometheus != m.PrometheusURL() || !st.Addons[localcluster.PrometheusAddon] || !st.Addons[localcluster.AlertmanagerAddon] {
		t.Errorf("status does not show the monitoring: %+v", st)
	}

	// Rules: the CRD, one PrometheusRule, the sync (run in-process here).
	if err := localcluster.EnsurePrometheusRuleCRD(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go func() { _ = localcluster.RunRuleSync(syncCtx, cfg, c.Dir, 500*time.Millisecond, io.Discard) }()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rule := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
		"metadata": map[string]any{"name": "always", "namespace": "default"},
		"spec": map[string]any{"groups": []any{map[string]any{
			"name": "test", "rules": []any{map[string]any{
				"alert": "APIServerIsUp", "expr": `up{job="apiserver"} == 1`, "for": "0s",
				"labels":      map[string]any{"severity": "info"},
				"annotations": map[string]any{"summary": "the API server is up"},
			}},
		}}},
	}}
	if _, err := dyn.Resource(localcluster.PrometheusRuleGVR).Namespace("default").Create(ctx, rule, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 3*time.Minute, func(context.Context) (bool, string, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range hooks {
			if h == "unauthenticated" {
				return false, "", fmt.Errorf("alertmanager called the webhook without the bearer token")
			}
			if strings.Contains(h, `"alertname":"APIServerIsUp"`) && strings.Contains(h, `"status":"firing"`) {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d webhook calls, none with the firing alert", len(hooks)), nil
	})

	res, err := localcluster.Down(ctx, localcluster.DownOptions{Home: opts.Home, Name: opts.Name})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{localcluster.PrometheusAddon, localcluster.AlertmanagerAddon} {
		if !strings.Contains(strings.Join(res.Stopped, ","), want) {
			t.Errorf("down stopped %v, not %s", res.Stopped, want)
		}
	}
}
