package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
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

// processCPU returns the CPU time, in clock ticks, of the processes whose
// command line names dir (the local cluster's components: their flags hold
// its paths), by binary, plus that of the processes in extra, by the name
// given. Between two readings it says where a phase's CPU went.
func processCPU(dir string, extra map[string]int) map[string]int64 {
	out := map[string]int64{}
	named := map[int]bool{}
	for _, pid := range extra {
		named[pid] = true
	}
	if dir != "" {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || named[pid] {
				continue
			}
			cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil || !bytes.Contains(cmd, []byte(dir)) {
				continue
			}
			name := filepath.Base(string(bytes.SplitN(cmd, []byte{0}, 2)[0]))
			if t, err := cpuTicks(pid); err == nil {
				out[name] += t
			}
		}
	}
	for name, pid := range extra {
		if t, err := cpuTicks(pid); err == nil {
			out[name] += t
		}
	}
	return out
}

// cpuTable compares the CPU two phases cost per process: seconds, and
// milliseconds per object applied.
func cpuTable(names [2]string, objects int, a0, a1, b0, b1 map[string]int64) string {
	var procs []string
	for p := range a1 {
		procs = append(procs, p)
	}
	sort.Slice(procs, func(i, j int) bool { return a1[procs[i]]-a0[procs[i]] > a1[procs[j]]-a0[procs[j]] })
	var b strings.Builder
	fmt.Fprintf(&b, "| CPU by process | %s | %s | ratio |\n|---|---:|---:|---:|\n", names[0], names[1])
	var ta, tb int64
	for _, p := range procs {
		da, db := a1[p]-a0[p], b1[p]-b0[p]
		ta, tb = ta+da, tb+db
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", p, cpuCell(da, objects), cpuCell(db, objects), ratio(da, db))
	}
	fmt.Fprintf(&b, "| all of them | %s | %s | %s |\n", cpuCell(ta, objects), cpuCell(tb, objects), ratio(ta, tb))
	return b.String()
}

func cpuCell(ticks int64, objects int) string {
	s := float64(ticks) / ticksPerSecond
	return fmt.Sprintf("%.1f s (%.2f ms/object)", s, 1000*s/float64(objects))
}

func ratio(a, b int64) string {
	if b == 0 {
		return ""
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

// apiServerProfile takes a CPU profile of the API server (its
// /debug/pprof, served to the cluster's admin) over seconds and writes it
// to path.
func apiServerProfile(ctx context.Context, cs kubernetes.Interface, seconds int, path string) error {
	data, err := cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(seconds)).Timeout(time.Duration(seconds+30) * time.Second).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("profiling the API server: %w", err)
	}
	return os.WriteFile(path, data, 0o644)
}
