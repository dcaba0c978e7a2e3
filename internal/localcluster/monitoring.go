package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Monitoring on a local cluster: Prometheus and Alertmanager, built from the Go
// module proxy like the control plane, run as add-ons of the cluster. Prometheus
// scrapes the API server, kube-controller-manager, kube-scheduler, itself,
// Alertmanager and berth's local controller (once it runs), evaluates the rule
// files under monitoring/rules, and sends alerts to Alertmanager, which sends
// them to the controller's /hooks/alertmanager.

// Add-on names of the monitoring processes.
const (
	PrometheusAddon   = "prometheus"
	AlertmanagerAddon = "alertmanager"
)

// MonitoringVersions pins the versions of Prometheus and Alertmanager. Prometheus
// 3.x is published as module versions v0.3xx.y (v0.316.0 is Prometheus 3.16.0).
type MonitoringVersions struct {
	Prometheus   string `json:"prometheus"`
	Alertmanager string `json:"alertmanager"`
}

// DefaultMonitoringVersions returns the versions berth is tested with (the
// same as scripts/monitoring-build.sh).
func DefaultMonitoringVersions() MonitoringVersions {
	return MonitoringVersions{Prometheus: "v0.316.0", Alertmanager: "v0.35.0"}
}

// MonitoringState is what berth records about a cluster's monitoring, in
// monitoring/monitoring.json.
type MonitoringState struct {
	Versions         MonitoringVersions `json:"versions"`
	PrometheusPort   int                `json:"prometheusPort"`
	AlertmanagerPort int                `json:"alertmanagerPort"`
	BinDir           string             `json:"binDir"`
}

// PrometheusURL is the local Prometheus's URL.
func (m MonitoringState) PrometheusURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(m.PrometheusPort)
}

// AlertmanagerURL is the local Alertmanager's URL.
func (m MonitoringState) AlertmanagerURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(m.AlertmanagerPort)
}

func (c *Cluster) monitoringDir() string { return filepath.Join(c.Dir, "monitoring") }

// RulesDir is where rule files for the local Prometheus go (*.yaml; Prometheus
// reads them at start and on Reload).
func (c *Cluster) RulesDir() string { return filepath.Join(c.monitoringDir(), "rules") }

// Monitoring returns the recorded monitoring state, or nil when the cluster
// never ran with monitoring.
func (c *Cluster) Monitoring() (*MonitoringState, error) {
	data, err := os.ReadFile(filepath.Join(c.monitoringDir(), "monitoring.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m MonitoringState
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &CorruptStateError{Cluster: c.Name, Path: filepath.Join(c.monitoringDir(), "monitoring.json"), Err: err}
	}
	return &m, nil
}

func (c *Cluster) saveMonitoring(m *MonitoringState) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.monitoringDir(), "monitoring.json"), append(data, '\n'), 0o644)
}

// MonitoringOptions configures StartMonitoring.
type MonitoringOptions struct {
	Versions MonitoringVersions // zero: the recorded ones, else the defaults
	// CacheRoot is the root of the build cache; <user cache>/berth/monitoring
	// when empty.
	CacheRoot string
	GoBinary  string
	Progress  ProgressFunc
}

// StartMonitoring builds Prometheus and Alertmanager (once, into the cache),
// writes their configuration and starts both as add-ons of the running
// cluster, waiting until each is ready. Running ones are left alone.
func (c *Cluster) StartMonitoring(ctx context.Context, opts MonitoringOptions) (*MonitoringState, error) {
	m, err := c.Monitoring()
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = &MonitoringState{}
	}
	if opts.Versions != (MonitoringVersions{}) {
		m.Versions = opts.Versions
	} else if m.Versions == (MonitoringVersions{}) {
		m.Versions = DefaultMonitoringVersions()
	}
	if m.BinDir, err = ensureMonitoringBinaries(ctx, opts, m.Versions); err != nil {
		return nil, err
	}
	for _, p := range []*int{&m.PrometheusPort, &m.AlertmanagerPort} {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				return nil, err
			}
		}
	}
	for _, d := range []string{c.RulesDir(), filepath.Join(c.monitoringDir(), "targets"), filepath.Join(c.monitoringDir(), "prometheus-data"), filepath.Join(c.monitoringDir(), "alertmanager-data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := c.saveMonitoring(m); err != nil {
		return nil, err
	}
	if err := c.writeMonitoringConfig(m); err != nil {
		return nil, err
	}
	running := c.addonRunning
	if !running(AlertmanagerAddon) {
		if err := checkPort(AlertmanagerAddon, m.AlertmanagerPort); err != nil {
			return nil, err
		}
		if _, err := c.StartAddon(ctx, AlertmanagerAddon, filepath.Join(m.BinDir, "alertmanager-"+m.Versions.Alertmanager), c.alertmanagerArgs(m)); err != nil {
			return nil, fmt.Errorf("starting alertmanager: %w", err)
		}
	}
	if !running(PrometheusAddon) {
		if err := checkPort(PrometheusAddon, m.PrometheusPort); err != nil {
			return nil, err
		}
		if _, err := c.StartAddon(ctx, PrometheusAddon, filepath.Join(m.BinDir, "prometheus-"+m.Versions.Prometheus), c.prometheusArgs(m)); err != nil {
			return nil, fmt.Errorf("starting prometheus: %w", err)
		}
	}
	for _, a := range []struct{ name, url string }{{AlertmanagerAddon, m.AlertmanagerURL()}, {PrometheusAddon, m.PrometheusURL()}} {
		err := step(opts.Progress, "wait for "+a.name, "", func() error {
			return c.waitForAddon(ctx, a.name, a.url+"/-/ready")
		})
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// addonRunning reports whether the add-on's recorded process runs.
func (c *Cluster) addonRunning(name string) bool {
	rec, err := readPIDFile(c.pidPath(name))
	return err == nil && rec.alive()
}

// AddonsRunning reports, for each add-on with a pid file, whether it runs.
func (c *Cluster) AddonsRunning() map[string]bool {
	out := map[string]bool{}
	for _, name := range c.addons() {
		out[name] = c.addonRunning(name)
	}
	return out
}

func (c *Cluster) waitForAddon(ctx context.Context, name, endpoint string) error {
	const timeout = 2 * time.Minute
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = httpGet(ctx, endpoint); last == nil {
			return nil
		}
		if !c.addonRunning(name) {
			return &ProcessExitedError{Component: name, Log: c.logPath(name), Tail: lastRunTail(c.logPath(name), 20)}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w (log in %s)", name, timeout, last, c.logPath(name))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func httpGet(ctx context.Context, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return err
	}
	return doHTTP(req)
}

func doHTTP(req *http.Request) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s answered %s: %s", req.Method, req.URL, resp.Status, lastLines(body, 5))
	}
	return nil
}

// ReloadMonitoring asks the running Prometheus and Alertmanager to re-read
// their configuration and Prometheus its rule files.
func (c *Cluster) ReloadMonitoring(ctx context.Context) error {
	m, err := c.Monitoring()
	if err != nil || m == nil {
		return err
	}
	var errs []error
	for _, a := range []struct{ name, url string }{{PrometheusAddon, m.PrometheusURL()}, {AlertmanagerAddon, m.AlertmanagerURL()}} {
		if !c.addonRunning(a.name) {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/-/reload", nil)
		if err != nil {
			return err
		}
		if err := doHTTP(req); err != nil {
			errs = append(errs, fmt.Errorf("reloading %s: %w", a.name, err))
		}
	}
	return errors.Join(errs...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) prometheusArgs(m *MonitoringState) []string {
	return []string{
		"--config.file=" + filepath.Join(c.monitoringDir(), "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(c.monitoringDir(), "prometheus-data"),
		"--storage.tsdb.retention.time=2d",
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(m.PrometheusPort),
		"--web.enable-lifecycle",
		"--log.level=warn",
	}
}

func (c *Cluster) alertmanagerArgs(m *MonitoringState) []string {
	return []string{
		"--config.file=" + filepath.Join(c.monitoringDir(), "alertmanager.yml"),
		"--storage.path=" + filepath.Join(c.monitoringDir(), "alertmanager-data"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(m.AlertmanagerPort),
		"--cluster.listen-address=", // no peers: a single local instance
		"--log.level=warn",
	}
}

// writeMonitoringConfig writes prometheus.yml and alertmanager.yml. JSON is
// YAML, so both are written as JSON from Go values (no quoting mistakes).
func (c *Cluster) writeMonitoringConfig(m *MonitoringState) error {
	pki := c.pkiDir()
	admin := map[string]any{"cert_file": certPath(pki, "admin"), "key_file": keyPath(pki, "admin")}
	apiTLS := map[string]any{"ca_file": certPath(pki, caName), "cert_file": admin["cert_file"], "key_file": admin["key_file"]}
	// Controller-manager and scheduler serve with self-signed certificates
	// they generate in memory (see probeHealthz).
	selfSigned := map[string]any{"insecure_skip_verify": true, "cert_file": admin["cert_file"], "key_file": admin["key_file"]}
	static := func(port int) []any {
		return []any{map[string]any{"targets": []string{"127.0.0.1:" + strconv.Itoa(port)}}}
	}
	p := c.State.Ports
	prom := map[string]any{
		"global":     map[string]any{"scrape_interval": "5s", "evaluation_interval": "5s"},
		"rule_files": []string{filepath.Join(c.RulesDir(), "*.yaml")},
		"alerting": map[string]any{"alertmanagers": []any{map[string]any{
			"static_configs": static(m.AlertmanagerPort)}}},
		"scrape_configs": []any{
			map[string]any{"job_name": "apiserver", "scheme": "https", "tls_config": apiTLS, "static_configs": static(p.APIServer)},
			map[string]any{"job_name": "kube-controller-manager", "scheme": "https", "tls_config": selfSigned, "static_configs": static(p.ControllerManager)},
			map[string]any{"job_name": "kube-scheduler", "scheme": "https", "tls_config": selfSigned, "static_configs": static(p.Scheduler)},
			map[string]any{"job_name": "prometheus", "static_configs": static(m.PrometheusPort)},
			map[string]any{"job_name": "alertmanager", "static_configs": static(m.AlertmanagerPort)},
			// berth's local controller registers itself here when it starts
			// (ConnectController).
			map[string]any{"job_name": "berth-controller", "file_sd_configs": []any{map[string]any{
				"files": []string{filepath.Join(c.monitoringDir(), "targets", "*.json")}, "refresh_interval": "5s"}}},
		},
	}
	if p.Kwok != 0 {
		// kwok's simulated pod metrics: one target per node, listed by kwok's
		// kubelet server (kwokMetricsConfig), which serves TLS with a
		// certificate of its own on the loopback, not verified (as the API
		// server reads it), given the admin's client certificate as the API
		// server gives its own. Clusters made before kwok had a port have
		// none.
		prom["scrape_configs"] = append(prom["scrape_configs"].([]any), map[string]any{
			"job_name": "kwok", "tls_config": selfSigned,
			"http_sd_configs": []any{map[string]any{
				"url": "https://127.0.0.1:" + strconv.Itoa(p.Kwok) + "/discovery/prometheus", "refresh_interval": "10s",
				"tls_config": selfSigned}},
		})
	}
	if err := writeJSONFile(filepath.Join(c.monitoringDir(), "prometheus.yml"), prom); err != nil {
		return err
	}
	return c.writeAlertmanagerConfig()
}

// writeAlertmanagerConfig routes every alert to the local controller's
// /hooks/alertmanager when one is connected (controller.json), else nowhere.
func (c *Cluster) writeAlertmanagerConfig() error {
	receiver := map[string]any{"name": "berth"}
	var ctl controllerEndpoints
	data, err := os.ReadFile(filepath.Join(c.monitoringDir(), "controller.json"))
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &ctl); err != nil {
			return fmt.Errorf("reading %s: %w", filepath.Join(c.monitoringDir(), "controller.json"), err)
		}
		receiver["webhook_configs"] = []any{map[string]any{
			"url":           ctl.AlertsURL,
			"send_resolved": true,
			"http_config": map[string]any{"authorization": map[string]any{
				"type": "Bearer", "credentials_file": c.controllerTokenPath()}},
		}}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	am := map[string]any{
		"route": map[string]any{
			"receiver": "berth", "group_by": []string{"alertname"},
			"group_wait": "1s", "group_interval": "5s", "repeat_interval": "1h",
		},
		"receivers": []any{receiver},
	}
	return writeJSONFile(filepath.Join(c.monitoringDir(), "alertmanager.yml"), am)
}

type controllerEndpoints struct {
	MetricsAddr string `json:"metricsAddr"`
	AlertsURL   string `json:"alertsURL"`
}

func (c *Cluster) controllerTokenPath() string {
	return filepath.Join(c.monitoringDir(), "controller-token")
}

// ConnectController tells the cluster's monitoring where berth's local
// controller serves its metrics (host:port) and its Alertmanager webhook (a
// URL ending in /hooks/alertmanager), and the bearer token the webhook
// accepts (kept in a file only the user can read). Prometheus scrapes the
// metrics and Alertmanager sends every alert to the webhook; running
// processes are reloaded. It works whether monitoring runs or not.
func (c *Cluster) ConnectController(ctx context.Context, metricsAddr, alertsURL string, token []byte) error {
	if err := os.MkdirAll(filepath.Join(c.monitoringDir(), "targets"), 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(c.controllerTokenPath(), token, 0o600); err != nil {
		return err
	}
	if err := writeJSONFile(filepath.Join(c.monitoringDir(), "controller.json"), controllerEndpoints{MetricsAddr: metricsAddr, AlertsURL: alertsURL}); err != nil {
		return err
	}
	targets := []any{map[string]any{"targets": []string{metricsAddr}, "labels": map[string]string{"cluster": c.Name}}}
	if err := writeJSONFile(filepath.Join(c.monitoringDir(), "targets", "controller.json"), targets); err != nil {
		return err
	}
	if err := c.writeAlertmanagerConfig(); err != nil {
		return err
	}
	return c.ReloadMonitoring(ctx)
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o644)
}

// DefaultMonitoringCacheRoot is <user cache>/berth/monitoring, where
// scripts/monitoring-build.sh builds too.
func DefaultMonitoringCacheRoot() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding the user cache directory: %w", err)
	}
	return filepath.Join(dir, "berth", "monitoring"), nil
}

// EnsureMonitoringBinaries returns the directory holding the default
// versions of prometheus-VERSION and alertmanager-VERSION in the monitoring
// cache, building the missing ones as 'berth up --monitoring' does.
func EnsureMonitoringBinaries(ctx context.Context) (string, error) {
	return ensureMonitoringBinaries(ctx, MonitoringOptions{}, DefaultMonitoringVersions())
}

// ensureMonitoringBinaries returns the directory holding prometheus-VERSION and
// alertmanager-VERSION, building the missing ones from the Go module proxy
// with the adjustments scripts/monitoring-build.sh describes (no web UI
// assets; Prometheus with static, file and HTTP service discovery only).
func ensureMonitoringBinaries(ctx context.Context, opts MonitoringOptions, v MonitoringVersions) (string, error) {
	root := opts.CacheRoot
	if root == "" {
		var err error
		if root, err = DefaultMonitoringCacheRoot(); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(root, "bin")
	want := []struct{ mod, version, name string }{
		{"github.com/prometheus/prometheus", v.Prometheus, "prometheus"},
		{"github.com/prometheus/alertmanager", v.Alertmanager, "alertmanager"},
	}
	missing := false
	for _, w := range want {
		if !isExecutable(filepath.Join(bin, w.name+"-"+w.version)) {
			missing = true
		}
	}
	if !missing {
		return bin, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, filepath.Join(root, ".lock"), opts.Progress)
	if err != nil {
		return "", err
	}
	defer unlock()
	b := &builder{base: root, bin: bin}
	for _, w := range want {
		out := filepath.Join(bin, w.name+"-"+w.version)
		if isExecutable(out) {
			continue
		}
		if b.goBin == "" {
			if b.goBin, err = findGo(opts.GoBinary); err != nil {
				return "", err
			}
		}
		detail := fmt.Sprintf("from the Go module proxy (first use only); log: %s", b.logPath(w.name))
		if err := step(opts.Progress, "build "+w.name+" "+w.version, detail, func() error {
			return b.buildMonitoring(ctx, w.mod, w.version, w.name, out)
		}); err != nil {
			return "", err
		}
	}
	return bin, nil
}

func (b *builder) buildMonitoring(ctx context.Context, mod, version, name, out string) error {
	component := name + " " + version
	srcRoot := filepath.Join(b.base, "src")
	if err := os.MkdirAll(srcRoot, 0o755); err != nil {
		return err
	}
	dl, err := b.run(ctx, name, component, "go mod download", srcRoot, "mod", "download", "-json", mod+"@"+version)
	if err != nil {
		return err
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(dl, &info); err != nil || info.Dir == "" {
		return &BuildError{Component: component, Step: "go mod download", Log: b.logPath(name), Err: fmt.Errorf("no source for %s@%s: %s", mod, version, info.Error)}
	}
	src := filepath.Join(srcRoot, name+"-"+version)
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	if err := os.CopyFS(src, os.DirFS(info.Dir)); err != nil {
		return fmt.Errorf("copying %s: %w", info.Dir, err)
	}
	if name == "alertmanager" {
		// The module zip lacks the built web UI that ui/web.go embeds.
		dist := filepath.Join(src, "ui", "app", "dist")
		if err := os.MkdirAll(dist, 0o755); err != nil {
			return err
		}
		page := "<!doctype html><title>Alertmanager</title><p>The web UI is not built by berth; use the HTTP API (/api/v2).</p>\n"
		if err := os.WriteFile(filepath.Join(dist, "index.html"), []byte(page), 0o644); err != nil {
			return err
		}
	}
	tmp := out + ".tmp"
	if _, err := b.run(ctx, name, component, "go build", src, "build", "-trimpath", "-tags", "remove_all_sd", "-o", tmp, "./cmd/"+name); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// monitoringSummary is one line for status output.
func (m MonitoringState) String() string {
	return strings.Join([]string{"prometheus " + m.PrometheusURL(), "alertmanager " + m.AlertmanagerURL()}, ", ")
}
