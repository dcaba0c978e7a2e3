package console

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"berth.dev/berth/internal/dashboards"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// startPrometheus runs the Prometheus that 'berth up --monitoring' runs (the
// binary it builds into the monitoring cache), scraping itself every second,
// and returns its URL once it has a sample of up.
func startPrometheus(t *testing.T) string {
	t.Helper()
	binDir, err := localcluster.EnsureMonitoringBinaries(context.Background())
	if err != nil {
		t.Fatalf("building the monitoring binaries: %v", err)
	}
	bin := filepath.Join(binDir, "prometheus-"+localcluster.DefaultMonitoringVersions().Prometheus)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"global": {"scrape_interval": "1s"}, "scrape_configs": [{"job_name": "prometheus", "static_configs": [{"targets": [%q]}]}]}`, addr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	base := "http://" + addr
	testcluster.WaitFor(t, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query=up", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error(), nil
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return false, err.Error(), nil
		}
		return len(body.Data.Result) > 0, "no sample of up yet", nil
	})
	return base
}

// hxGet gets path as htmx does when it swaps the element with id target.
func (c *client) hxGet(path, target string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Target", target)
	resp, err := c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The app page's Dashboards section draws the package's panels from the
// Prometheus berth.yaml names by URL, shows a refused query's error on its
// chart, names an unreachable Prometheus, and draws nothing when Prometheus
// is an app or not set.
func TestDashboardsDrawPanelsFromPrometheus(t *testing.T) {
	prom := startPrometheus(t)
	f := newFixture(t)
	viewer := newClient(t, f.url)
	viewer.signInOIDC(f.issuer, viewerUser)
	page := "/apps/" + f.app + "/dashboards"
	setProm := func(e *workspace.MonitoringEndpoint) {
		f.env.WS.Config.Monitoring = &workspace.MonitoringConfig{Prometheus: e}
	}

	status, body := viewer.get("/apps/" + f.app)
	if status != http.StatusOK || !strings.Contains(body, `hx-get="/apps/`+f.app+`/dashboards"`) {
		t.Fatalf("the app page does not load its dashboards (%d):\n%s", status, body)
	}

	// A Prometheus the console reaches: one chart per panel.
	setProm(&workspace.MonitoringEndpoint{URL: prom})
	status, body = viewer.hxGet(page, "dashboards")
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d:\n%s", page, status, body)
	}
	if strings.Contains(body, "<html") || !strings.HasPrefix(strings.TrimSpace(body), `<div id="dashboards">`) {
		t.Errorf("htmx's request got more than the section:\n%s", body)
	}
	up := section(t, body, `data-panel="Targets up"`)
	if !strings.Contains(up, `<polyline class="series" points="`) {
		t.Errorf("the chart of a panel with data has no line:\n%s", up)
	}
	// {{ .App }} became the app's name, which the legend shows (escaped).
	if !strings.Contains(up, `berth_app=&#34;`+f.app+`&#34;`) || !strings.Contains(up, `job=&#34;prometheus&#34;`) {
		t.Errorf("the legend does not show the series' labels:\n%s", up)
	}
	for _, want := range []string{`class="tick y-max"`, `class="tick y-min"`, `(count)`} {
		if !strings.Contains(up, want) {
			t.Errorf("the chart lacks %s:\n%s", want, up)
		}
	}
	broken := section(t, body, `data-panel="Broken rate"`)
	if !strings.Contains(broken, "Prometheus refused the query") || !strings.Contains(broken, "range vector") || strings.Contains(broken, "<polyline") {
		t.Errorf("the refused query's chart does not show Prometheus's error:\n%s", broken)
	}
	if !strings.Contains(broken, `namespace=&#34;`+f.appNS+`&#34;`) {
		t.Errorf("{{ .Namespace }} was not replaced in the query shown:\n%s", broken)
	}

	// The range picker, without JavaScript: the range in the address draws
	// the charts over it, named on each chart's axis, and the picker shows it.
	status, body = viewer.get(page + "?range=6h")
	if status != http.StatusOK || !strings.Contains(body, `<option value="6h" selected>`) || !strings.Contains(body, `<label for="dash-range">Time range</label>`) {
		t.Errorf("GET %s?range=6h = %d, without the picker on 6 hours:\n%s", page, status, body)
	}
	up = section(t, body, `data-panel="Targets up"`)
	if !strings.Contains(up, `class="tick x-range" x="`) || !strings.Contains(up, ">last 6 hours</text>") || !strings.Contains(body, "one point every 5 minutes") {
		t.Errorf("the chart over 6 hours does not say so on its axis:\n%s", up)
	}
	status, body = viewer.get(page + "?range=7d")
	up = section(t, body, `data-panel="Targets up"`)
	if status != http.StatusOK || !strings.Contains(up, ">last 7 days</text>") {
		t.Errorf("GET %s?range=7d = %d, without its range on the axis:\n%s", page, status, up)
	}
	if _, pts, ok := strings.Cut(up, `points="`); ok {
		pts, _, _ = strings.Cut(pts, `"`)
		if n := len(strings.Fields(pts)); n > maxChartPoints+1 {
			t.Errorf("a series over 7 days has %d points, want at most %d", n, maxChartPoints+1)
		}
	}
	status, body = viewer.get(page + "?range=2y")
	if status != http.StatusBadRequest || !strings.Contains(body, `unknown time range &#34;2y&#34; in the address: pick one of 15m, 1h, 6h, 24h, 7d`) || !strings.Contains(body, `id="dash-range"`) || strings.Contains(body, "<svg class=\"chart-svg\"") {
		t.Errorf("GET %s?range=2y = %d, want 400 naming the choices, with the picker and no chart:\n%s", page, status, body)
	}

	// In the browser: the picker redraws the app page's charts over the
	// range chosen.
	ctx := browser(t)
	f.signInAs(t, ctx, viewerUser)
	axis := `figure[data-panel="Targets up"] text.x-range`
	var before, after string
	run(t, ctx, "dashboards on the app page",
		chromedp.Navigate(f.url+"/apps/"+f.app),
		chromedp.WaitVisible(axis, chromedp.ByQuery),
		chromedp.TextContent(axis, &before, chromedp.ByQuery),
		chromedp.SetValue("#dash-range", "24h", chromedp.ByQuery),
		chromedp.Click("#dash-range-show", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector(`+strconv.Quote(axis)+`)?.textContent === "last 24 hours"`, nil, chromedp.WithPollingTimeout(time.Minute)),
		chromedp.TextContent(axis, &after, chromedp.ByQuery),
	)
	if before != "last hour" || after != "last 24 hours" {
		t.Errorf("the chart's axis said %q, then %q after picking 24 hours", before, after)
	}
	shot(t, ctx, "dashboards")

	// An unreachable Prometheus: one message naming its URL, no chart.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	setProm(&workspace.MonitoringEndpoint{URL: closed})
	status, body = viewer.get(page)
	if status != http.StatusOK || !strings.Contains(body, `id="dash-error"`) || !strings.Contains(body, "The Prometheus at "+closed+" (monitoring.prometheus.url in berth.yaml) could not be queried") {
		t.Errorf("an unreachable Prometheus is not named (%d):\n%s", status, body)
	}
	if n := strings.Count(body, `id="dash-error"`); n != 1 || strings.Contains(body, "<polyline") || strings.Contains(body, "<figure") {
		t.Errorf("an unreachable Prometheus gave %d messages or a chart:\n%s", n, body)
	}

	// A Prometheus in the cluster, and none: what to set, no chart.
	for _, c := range []struct {
		e    *workspace.MonitoringEndpoint
		want string
	}{
		{&workspace.MonitoringEndpoint{App: "monitoring"}, "monitoring.prometheus in berth.yaml is the app monitoring"},
		{nil, "berth.yaml names no Prometheus"},
	} {
		setProm(c.e)
		status, body = viewer.get(page)
		if status != http.StatusOK || !strings.Contains(body, c.want) || !strings.Contains(body, "set monitoring.prometheus.url") {
			t.Errorf("with prometheus %+v the page does not say %q and what to set (%d):\n%s", c.e, c.want, status, body)
		}
		if strings.Contains(body, "<svg") || !strings.Contains(body, "Targets up") {
			t.Errorf("with prometheus %+v the page draws a chart or does not list the panels:\n%s", c.e, body)
		}
	}
}

// section returns the figure of body that starts with marker.
func section(t *testing.T, body, marker string) string {
	t.Helper()
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no %s in:\n%s", marker, body)
	}
	rest := body[i:]
	if j := strings.Index(rest, "</figure>"); j >= 0 {
		return rest[:j]
	}
	return rest
}

// Labels and titles are text: markup in them is escaped, in the chart and
// in its legend.
func TestDashboardsEscapeLabels(t *testing.T) {
	s := &Server{}
	if err := s.parseTemplates(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	r := dashboards.LastHour(now)
	ch := dashboards.Chart{Title: `<b>t</b>`, Unit: "bytes", Query: `up{a="<x>"}`, Series: []dashboards.Series{
		{Labels: map[string]string{"pod": `<script>alert(1)</script>`}, Points: []dashboards.Point{{Time: r.Start, Value: 1024}, {Time: r.End, Value: 3 << 20}}},
	}}
	v := drawChart(ch, r)
	if len(v.Lines) != 1 || v.YMin != "1 KiB" || v.YMax != "3 MiB" {
		t.Fatalf("drawn chart = %+v", v)
	}
	// The first point is at the plot's left edge and its bottom, the last at
	// its right edge and top.
	want := strconv.Itoa(chartLeft) + ".0," + strconv.Itoa(chartHeight-chartBottom) + ".0 " + strconv.Itoa(chartWidth-chartRight) + ".0," + strconv.Itoa(chartTop) + ".0"
	if v.Lines[0].Points != want {
		t.Errorf("points = %q, want %q", v.Lines[0].Points, want)
	}
	var b strings.Builder
	data := map[string]any{"Dash": dashView{Charts: []chartView{v}}}
	if err := s.pages["dashboards"].ExecuteTemplate(&b, "dashboards", data); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"<script>", "<b>", `"<x>"`} {
		if strings.Contains(out, bad) {
			t.Errorf("%s is not escaped:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, template.HTMLEscapeString(`<script>alert(1)</script>`)) {
		t.Errorf("the legend lacks the escaped label:\n%s", out)
	}
}
