#!/usr/bin/env bash
# Render benchmark: berth's renderer against the helm command line on
# kube-prometheus-stack from the chart mirror. The helm benchmark builds helm at
# the version in go.mod into the user cache (berth/tools) the first time.
# Usage: bench/render.sh [COUNT]   (runs of each benchmark, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-10}"
out="$(go test ./internal/render/ -run '^$' -bench 'KubePrometheusStack' -benchtime "${count}x" -count 3)"
echo "$out"
echo "$out" | awk '
	/^BenchmarkRender/       { berth[++nb] = $3 }
	/^BenchmarkHelmTemplate/ { helm[++nh] = $3 }
	function median(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return a[int((n + 1) / 2)]
	}
	END {
		b = median(berth, nb); h = median(helm, nh)
		printf "berth %.0f ms, helm %.0f ms per render (medians of %d): berth/helm = %.2fx\n", b / 1e6, h / 1e6, nb, b / h
	}'
