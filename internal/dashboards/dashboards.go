// Package dashboards evaluates the panels packages ship (pkgspec.Panel)
// against the workspace's Prometheus, for the console to draw as charts.
package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/pkgspec"
	"berth.dev/berth/internal/render"
)

// Point is one sample.
type Point struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
}

// Series is one time series of a panel's result.
type Series struct {
	Labels map[string]string `json:"labels"`
	Points []Point           `json:"points"`
}

// Chart is an evaluated panel. Err is set, and Series empty, when its query
// failed; the other panels are still evaluated.
type Chart struct {
	Title  string   `json:"title"`
	Unit   string   `json:"unit"`
	Query  string   `json:"query"`
	Series []Series `json:"series"`
	Err    string   `json:"error,omitempty"`
}

// Range is the time range and resolution of the charts.
type Range struct {
	Start, End time.Time
	Step       time.Duration
}

// LastHour is the range the console shows by default: the last hour, one
// point a minute.
func LastHour(now time.Time) Range {
	return Range{Start: now.Add(-time.Hour), End: now, Step: time.Minute}
}

// Client queries a Prometheus HTTP API.
type Client struct {
	URL  string // such as http://127.0.0.1:9090
	HTTP *http.Client
}

// Evaluate runs each panel's query for the app over r. An unreachable
// Prometheus is an error; a query Prometheus refuses is reported on its chart.
func (c *Client) Evaluate(ctx context.Context, panels []pkgspec.Panel, app, namespace string, r Range) ([]Chart, error) {
	charts := make([]Chart, 0, len(panels))
	for _, p := range panels {
		unit := p.Unit
		if unit == "" {
			unit = "count"
		}
		ch := Chart{Title: p.Title, Unit: unit, Query: render.SubstituteQuery(p.Query, app, namespace)}
		series, err := c.queryRange(ctx, ch.Query, r)
		var qe *queryError
		switch {
		case err == nil:
			ch.Series = series
		case asQueryError(err, &qe):
			ch.Err = qe.Error()
		default:
			return nil, err
		}
		charts = append(charts, ch)
	}
	return charts, nil
}

type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

func asQueryError(err error, target **queryError) bool {
	qe, ok := err.(*queryError)
	if ok {
		*target = qe
	}
	return ok
}

func (c *Client) queryRange(ctx context.Context, query string, r Range) ([]Series, error) {
	if r.Step <= 0 {
		return nil, fmt.Errorf("range step %s must be positive", r.Step)
	}
	v := url.Values{
		"query": {query},
		"start": {strconv.FormatFloat(float64(r.Start.UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(r.End.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(r.Step.Seconds(), 'f', -1, 64)},
	}
	endpoint := strings.TrimSuffix(c.URL, "/") + "/api/v1/query_range"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("querying Prometheus at %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("reading Prometheus's answer: %w", err)
	}
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("the Prometheus at %s answered %s with no API response: %w", c.URL, resp.Status, err)
	}
	if out.Status != "success" {
		// 400 and 422 are the query's fault; anything else Prometheus's.
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity {
			return nil, &queryError{msg: out.Error}
		}
		return nil, fmt.Errorf("the Prometheus at %s answered %s: %s", c.URL, resp.Status, out.Error)
	}
	series := make([]Series, 0, len(out.Data.Result))
	for _, res := range out.Data.Result {
		s := Series{Labels: res.Metric}
		for _, pv := range res.Values {
			ts, _ := pv[0].(float64)
			str, _ := pv[1].(string)
			val, err := strconv.ParseFloat(str, 64)
			if err != nil {
				continue
			}
			s.Points = append(s.Points, Point{Time: time.UnixMilli(int64(ts * 1000)).UTC(), Value: val})
		}
		series = append(series, s)
	}
	sort.Slice(series, func(i, j int) bool { return fmt.Sprint(series[i].Labels) < fmt.Sprint(series[j].Labels) })
	return series, nil
}
