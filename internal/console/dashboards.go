package console

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/dashboards"
	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/workspace"
)

// dashboardTimeout bounds the evaluation of one app's panels.
const dashboardTimeout = 20 * time.Second

// Geometry of a chart, in SVG user units: the plot area is inset by the
// margins, which hold the axis labels.
const (
	chartWidth   = 640
	chartHeight  = 220
	chartLeft    = 80
	chartRight   = 10
	chartTop     = 10
	chartBottom  = 24
	plotWidth    = chartWidth - chartLeft - chartRight
	plotHeight   = chartHeight - chartTop - chartBottom
	legendMaxLen = 200
)

// chartRange is a time range the charts may show, with the step that keeps
// its number of points at most maxChartPoints.
type chartRange struct {
	Name  string // in the URL's query: range=6h
	Label string // on the picker and the axis: "6 hours"
	Span  time.Duration
	Step  time.Duration
}

// maxChartPoints bounds the points of one series: what Prometheus returns
// and the page carries.
const maxChartPoints = 120

// chartRanges are the ranges offered, shortest first; defaultRange is the
// one shown unless another is picked.
var chartRanges = []chartRange{
	{"15m", "15 minutes", 15 * time.Minute, 15 * time.Second},
	{"1h", "1 hour", time.Hour, time.Minute},
	{"6h", "6 hours", 6 * time.Hour, 5 * time.Minute},
	{"24h", "24 hours", 24 * time.Hour, 15 * time.Minute},
	{"7d", "7 days", 7 * 24 * time.Hour, 2 * time.Hour},
}

const defaultRange = "1h"

// parseRange reads the range query parameter ("" is the default range).
func parseRange(name string) (chartRange, error) {
	if name == "" {
		name = defaultRange
	}
	var names []string
	for _, r := range chartRanges {
		if r.Name == name {
			return r, nil
		}
		names = append(names, r.Name)
	}
	return chartRange{}, fmt.Errorf("unknown time range %q in the address: pick one of %s", name, strings.Join(names, ", "))
}

// window is the range ending at now, as the dashboards library queries it.
func (c chartRange) window(now time.Time) dashboards.Range {
	return dashboards.Range{Start: now.Add(-c.Span), End: now, Step: c.Step}
}

// rangeLabel names a span as the picker does ("6 hours").
func rangeLabel(span time.Duration) string {
	for _, r := range chartRanges {
		if r.Span == span {
			return r.Label
		}
	}
	return span.String()
}

// lastRange names the span ending now: "last 6 hours", "last hour".
func lastRange(span time.Duration) string {
	if span == time.Hour {
		return "last hour"
	}
	return "last " + rangeLabel(span)
}

// rangeChoice is one option of the range picker.
type rangeChoice struct {
	Name, Label string
	Selected    bool
}

func rangeChoices(selected string) []rangeChoice {
	out := make([]rangeChoice, 0, len(chartRanges))
	for _, r := range chartRanges {
		out = append(out, rangeChoice{Name: r.Name, Label: r.Label, Selected: r.Name == selected})
	}
	return out
}

// seriesColors are the lines' colors, in turn; the legend repeats them.
var seriesColors = []string{"#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"}

// dashView is what the Dashboards section shows: the charts, or why there
// are none.
type dashView struct {
	// Notice says why nothing is evaluated (no Prometheus the console can
	// reach, no panels) and what to set.
	Notice string
	// Err is a failure to evaluate any panel (an unreachable Prometheus).
	Err string
	// Prometheus is the URL the charts come from.
	Prometheus string
	// From and To are the charts' time range; Range names it ("last 6 hours")
	// and Step is the time between two points.
	From, To    string
	Range, Step string
	// Ranges are the picker's choices, when there is something to draw.
	Ranges []rangeChoice
	Charts []chartView
	// Panels are the package's panels when they are not evaluated.
	Panels []pkgspec.Panel
}

// chartView is one panel drawn: an SVG line chart whose coordinates are
// computed here and whose text the template escapes.
type chartView struct {
	Title, Unit, Query, Err string
	Width, Height           int
	// The plot area's corners and the axes' labels.
	Left, Right, Top, Bottom int
	YMax, YMin, XStart, XEnd string
	// XRange names the time axis's span ("last 6 hours"); XMid is its x.
	XRange string
	XMid   int
	Lines  []chartLine
	// Empty is set when the query answered no series.
	Empty bool
}

// chartLine is one series: its polyline's points and its legend entry.
type chartLine struct {
	Points string
	Color  string
	Label  string
	// Dot is set for a series of one point, which a polyline does not show.
	Dot        bool
	DotX, DotY string
}

// dashboardsOf evaluates the app's package panels over rng, ending at now,
// against the Prometheus berth.yaml names by URL.
func (s *Server) dashboardsOf(ctx context.Context, app string, rng chartRange, now time.Time) dashView {
	g, ok := s.gitView().Apps[app]
	if !ok {
		return dashView{Err: "no app " + app}
	}
	pkg, err := s.appPackage(ctx, app)
	if err != nil {
		return dashView{Err: "reading the app's package: " + err.Error()}
	}
	if len(pkg.Panels) == 0 {
		return dashView{Notice: fmt.Sprintf("The package %s declares no panels.", pkg.Name)}
	}
	var prom *workspace.MonitoringEndpoint
	if m := s.env.WS.Config.Monitoring; m != nil {
		prom = m.Prometheus
	}
	switch {
	case prom == nil || (prom.URL == "" && prom.App == ""):
		return dashView{Panels: pkg.Panels, Notice: "berth.yaml names no Prometheus, so the panels are not drawn: set monitoring.prometheus.url to a Prometheus this console reaches (docs/monitoring.md)."}
	case prom.URL == "":
		return dashView{Panels: pkg.Panels, Notice: fmt.Sprintf("monitoring.prometheus in berth.yaml is the app %s, whose Prometheus runs inside the cluster where this console does not reach it, so the panels are not drawn: set monitoring.prometheus.url to an address of that Prometheus the console reaches (such as a port-forward of its service).", prom.App)}
	}
	shown := redactURL(prom.URL)
	r := rng.window(now)
	view := dashView{Prometheus: shown, From: r.Start.UTC().Format("2006-01-02 15:04 UTC"), To: r.End.UTC().Format("2006-01-02 15:04 UTC"),
		Range: lastRange(rng.Span), Step: stepLabel(rng.Step), Ranges: rangeChoices(rng.Name)}
	ctx, cancel := context.WithTimeout(ctx, dashboardTimeout)
	defer cancel()
	c := &dashboards.Client{URL: prom.URL, HTTP: &http.Client{Timeout: dashboardTimeout}}
	charts, err := c.Evaluate(ctx, pkg.Panels, g.App.Name, g.App.Namespace, r)
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), prom.URL, shown)
		view.Err = fmt.Sprintf("The Prometheus at %s (monitoring.prometheus.url in berth.yaml) could not be queried, so no panel is drawn: %s", shown, msg)
		view.Panels = pkg.Panels
		return view
	}
	for _, ch := range charts {
		view.Charts = append(view.Charts, drawChart(ch, r))
	}
	return view
}

// redactURL hides a password in the URL's user information.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

// stepLabel says how far apart two points are: "one point a minute".
func stepLabel(step time.Duration) string {
	switch {
	case step == time.Hour:
		return "one point an hour"
	case step%time.Hour == 0:
		return fmt.Sprintf("one point every %d hours", step/time.Hour)
	case step == time.Minute:
		return "one point a minute"
	case step%time.Minute == 0:
		return fmt.Sprintf("one point every %d minutes", step/time.Minute)
	}
	return fmt.Sprintf("one point every %d seconds", step/time.Second)
}

// drawChart lays a chart out: time on x over the range, values on y between
// the series' minimum and maximum.
func drawChart(ch dashboards.Chart, r dashboards.Range) chartView {
	span := r.End.Sub(r.Start)
	// A range of a day or more crosses midnight: its ends carry the date.
	layout := "15:04"
	if span >= 24*time.Hour {
		layout = "Jan 2 15:04"
	}
	v := chartView{
		Title: ch.Title, Unit: ch.Unit, Query: ch.Query, Err: ch.Err,
		Width: chartWidth, Height: chartHeight,
		Left: chartLeft, Right: chartWidth - chartRight, Top: chartTop, Bottom: chartHeight - chartBottom,
		XStart: r.Start.UTC().Format(layout), XEnd: r.End.UTC().Format(layout + " UTC"),
		XRange: lastRange(span), XMid: chartLeft + plotWidth/2,
	}
	if ch.Err != "" {
		return v
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ch.Series {
		for _, p := range s.Points {
			if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
				continue
			}
			lo, hi = min(lo, p.Value), max(hi, p.Value)
		}
	}
	if lo > hi {
		v.Empty = true
		return v
	}
	v.YMin, v.YMax = formatValue(lo, ch.Unit), formatValue(hi, ch.Unit)
	ySpan := hi - lo
	if ySpan == 0 {
		// A flat line is drawn in the middle.
		ySpan, lo = 2, lo-1
		if hi != 0 {
			ySpan, lo = 2*math.Abs(hi), hi-math.Abs(hi)
		}
	}
	dur := r.End.Sub(r.Start).Seconds()
	x := func(t time.Time) float64 {
		if dur <= 0 {
			return chartLeft
		}
		return chartLeft + plotWidth*t.Sub(r.Start).Seconds()/dur
	}
	y := func(val float64) float64 { return chartTop + plotHeight*(1-(val-lo)/ySpan) }
	for i, s := range ch.Series {
		var pts []string
		var lx, ly string
		for _, p := range s.Points {
			if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
				continue
			}
			lx, ly = coord(x(p.Time)), coord(y(p.Value))
			pts = append(pts, lx+","+ly)
		}
		if len(pts) == 0 {
			continue
		}
		v.Lines = append(v.Lines, chartLine{
			Points: strings.Join(pts, " "), Color: seriesColors[i%len(seriesColors)], Label: seriesLabel(s.Labels),
			Dot: len(pts) == 1, DotX: lx, DotY: ly,
		})
	}
	return v
}

func coord(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// seriesLabel is a series' labels as PromQL writes them: {a="1", b="2"}.
func seriesLabel(labels map[string]string) string {
	if len(labels) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	out := "{" + strings.Join(parts, ", ") + "}"
	if r := []rune(out); len(r) > legendMaxLen {
		out = string(r[:legendMaxLen]) + "…"
	}
	return out
}

// formatValue writes v in the panel's unit: bytes in binary multiples,
// seconds, percent, operations per second, or a plain count.
func formatValue(v float64, unit string) string {
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }
	switch unit {
	case "bytes":
		a := math.Abs(v)
		for _, m := range []struct {
			size float64
			name string
		}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
			if a >= m.size {
				return num(v/m.size) + " " + m.name
			}
		}
		return num(v) + " B"
	case "seconds":
		switch a := math.Abs(v); {
		case a == 0 || a >= 1:
			return num(v) + " s"
		case a >= 1e-3:
			return num(v*1e3) + " ms"
		default:
			return num(v*1e6) + " µs"
		}
	case "percent":
		return num(v) + " %"
	case "ops":
		return num(v) + " /s"
	default:
		return num(v)
	}
}

// serveDashboards draws the app's panels: the app page loads it into its
// Dashboards section, and it is a page of its own without JavaScript.
func (s *Server) serveDashboards(w http.ResponseWriter, r *request) {
	app := r.PathValue("app")
	g, ok := s.gitView().Apps[app]
	if !ok {
		http.NotFound(w, r.Request)
		return
	}
	data := map[string]any{"Title": "Dashboards · " + app, "Nav": "apps", "App": g.App}
	w.Header().Set("Cache-Control", "no-store")
	rng, err := parseRange(r.URL.Query().Get("range"))
	if err != nil {
		// The picker, to choose a range that exists.
		data["Dash"] = dashView{Err: err.Error(), Ranges: rangeChoices(defaultRange)}
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, r, "dashboards", data)
		return
	}
	data["Dash"] = s.dashboardsOf(r.Context(), app, rng, time.Now())
	s.render(w, r, "dashboards", data)
}
