package console

import (
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/dashboards"
)

// Every range the picker offers keeps a series at most maxChartPoints
// points; an unknown one is an error naming the choices, and none is the
// last hour.
func TestParseRangeBoundsThePoints(t *testing.T) {
	for _, r := range chartRanges {
		if n := int(r.Span / r.Step); n > maxChartPoints || n < 10 {
			t.Errorf("range %s: %d points a series, want 10 to %d", r.Name, n, maxChartPoints)
		}
	}
	tests := map[string]struct {
		in      string
		span    time.Duration
		wantErr string
	}{
		"none is the last hour":  {in: "", span: time.Hour},
		"a week":                 {in: "7d", span: 7 * 24 * time.Hour},
		"15 minutes":             {in: "15m", span: 15 * time.Minute},
		"unknown":                {in: "2y", wantErr: `unknown time range "2y" in the address: pick one of 15m, 1h, 6h, 24h, 7d`},
		"a duration not offered": {in: "2h", wantErr: `unknown time range "2h"`},
		"markup":                 {in: "<b>", wantErr: `unknown time range "<b>"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := parseRange(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseRange(%q) = %+v, %v; want an error %q", tc.in, r, err, tc.wantErr)
				}
				return
			}
			if err != nil || r.Span != tc.span {
				t.Fatalf("parseRange(%q) = %+v, %v; want a span of %s", tc.in, r, err, tc.span)
			}
		})
	}
}

// The chart's time axis names its range, and a range of days dates its ends.
func TestChartAxisShowsTheRange(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		rng                 string
		label, xStart, xEnd string
	}{
		"an hour": {"1h", "last hour", "02:00", "03:00 UTC"},
		"6 hours": {"6h", "last 6 hours", "21:00", "03:00 UTC"},
		"7 days":  {"7d", "last 7 days", "Nov 30 03:00", "Dec 7 03:00 UTC"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := parseRange(tc.rng)
			if err != nil {
				t.Fatal(err)
			}
			w := r.window(now)
			v := drawChart(dashboards.Chart{Title: "t", Series: []dashboards.Series{{Points: []dashboards.Point{{Time: w.Start, Value: 1}, {Time: w.End, Value: 2}}}}}, w)
			if v.XRange != tc.label || v.XStart != tc.xStart || v.XEnd != tc.xEnd {
				t.Errorf("axis = %q from %q to %q, want %q from %q to %q", v.XRange, v.XStart, v.XEnd, tc.label, tc.xStart, tc.xEnd)
			}
		})
	}
}
