package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
)

// cpuProfile fetches a CPU profile of the controller from its metrics port
// (pprof is served there on a loopback address) into path.
func cpuProfile(ctx context.Context, metricsAddr string, seconds int, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", metricsAddr, seconds), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof answered %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// apiStats are the API server's request counts and summed latency by
// verb and resource, from its own apiserver_request_duration_seconds.
type apiStats map[string]struct{ count, sum float64 }

var durationLine = regexp.MustCompile(`^apiserver_request_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$`)
var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

func readAPIStats(ctx context.Context, cs kubernetes.Interface) (apiStats, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := apiStats{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := durationLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		if labels["verb"] == "WATCH" || labels["verb"] == "CONNECT" {
			continue // long-running: their duration is their lifetime
		}
		k := labels["verb"] + " " + labels["resource"]
		if labels["subresource"] != "" {
			k += "/" + labels["subresource"]
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		s := out[k]
		if m[1] == "sum" {
			s.sum += v
		} else {
			s.count += v
		}
		out[k] = s
	}
	return out, sc.Err()
}

// apiTable renders the requests served between two readings, the busiest
// (by summed latency) first.
func apiTable(before, after apiStats, window time.Duration, top int) string {
	type row struct {
		k          string
		count, sum float64
	}
	var rows []row
	for k, a := range after {
		b := before[k]
		if n := a.count - b.count; n > 0 {
			rows = append(rows, row{k, n, a.sum - b.sum})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].sum > rows[j].sum })
	var b strings.Builder
	fmt.Fprintf(&b, "| API server, during the first sync (%s) | requests | per second | mean latency |\n|---|---|---|---|\n", window.Round(time.Second))
	for i, r := range rows {
		if i == top {
			break
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.1f | %.1f ms |\n", r.k, r.count, r.count/window.Seconds(), 1000*r.sum/r.count)
	}
	return b.String()
}

// throttled counts client-go's "due to client-side throttling" waits in a log.
func throttled(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	return bytes.Count(b, []byte("client-side throttling"))
}
