#!/usr/bin/env bash
# Render benchmark: berth against the helm command line on kube-prometheus-stack
# 80.14.4 from the chart mirror (/work/shared/charts, or $BERTH_CHART_MIRROR).
#
# 1. Go benchmarks of internal/render: render.Render in process, and helm
#    template (process start included), helm being built at the version in
#    go.mod into the user cache (berth/tools) the first time.
# 2. The command lines end to end: berth template (through a directory catalog
#    holding a package that wraps the chart, its archive pre-seeded in berth's
#    chart cache) against helm template with the same release name, namespace,
#    Kubernetes version and CRDs.
#
# Usage: bench/render.sh [COUNT]   (runs of each, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-10}"
mirror="${BERTH_CHART_MIRROR:-/work/shared/charts}"
archive="$mirror/prometheus-community.github.io/helm-charts/kube-prometheus-stack-80.14.4.tgz"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "== in process (go test -bench)"
out="$(go test ./internal/render/ -run '^$' -bench 'KubePrometheusStack' -benchtime "${count}x" -count 3)"
echo "$out" | grep '^Benchmark'
b=$(echo "$out" | awk '/^BenchmarkRender/ { print $3 / 1e6 }' | median)
h=$(echo "$out" | awk '/^BenchmarkHelmTemplate/ { print $3 / 1e6 }' | median)
echo "render.Render ${b} ms, helm template ${h} ms (medians): berth/helm = $(awk -v b="$b" -v h="$h" 'BEGIN { printf "%.2f", b / h }')x"

echo "== command lines"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/berth" ./cmd/berth
helm="${XDG_CACHE_HOME:-$HOME/.cache}/berth/tools/helm-$(go list -m -f '{{.Version}}' helm.sh/helm/v4)"
digest="$(sha256sum "$archive" | cut -d' ' -f1)"
export BERTH_HOME="$tmp/home"
mkdir -p "$BERTH_HOME/charts" "$tmp/catalog/kps/1.0.0"
cp "$archive" "$BERTH_HOME/charts/sha256-$digest.tgz"
cat > "$tmp/catalog/kps/1.0.0/package.yaml" <<YAML
apiVersion: berth.dev/v1alpha1
kind: Package
name: kps
version: 1.0.0
description: kube-prometheus-stack with its default values.
charts:
  - {repo: https://prometheus-community.github.io/helm-charts, chart: kube-prometheus-stack, version: 80.14.4, digest: "sha256:$digest"}
YAML
"$tmp/berth" catalog add bench "$tmp/catalog" >/dev/null 2>&1
"$tmp/berth" template kps --name rel --namespace ns >/dev/null
# Wall time, and CPU time (user + system) when GNU time is installed: on a
# machine shared with other jobs the CPU time varies less than the wall time.
measure() {
	local out="$1"
	shift
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f "%e %U %S" -a -o "$out" "$@" >/dev/null
	else
		local start end
		start=$(date +%s.%N)
		"$@" >/dev/null
		end=$(date +%s.%N)
		awk -v s="$start" -v e="$end" 'BEGIN { print e - s, 0, 0 }' >>"$out"
	fi
}
for _ in $(seq "$count"); do
	measure "$tmp/berth.times" "$tmp/berth" template kps --name rel --namespace ns
	measure "$tmp/helm.times" "$helm" template rel "$archive" --namespace ns --kube-version 1.34.0 --include-crds
done
bw=$(awk '{ print $1 }' "$tmp/berth.times" | median)
hw=$(awk '{ print $1 }' "$tmp/helm.times" | median)
echo "berth template ${bw} s, helm template ${hw} s wall (medians of $count): berth/helm = $(awk -v b="$bw" -v h="$hw" 'BEGIN { printf "%.2f", b / h }')x"
if [ -x /usr/bin/time ]; then
	bc=$(awk '{ print $2 + $3 }' "$tmp/berth.times" | median)
	hc=$(awk '{ print $2 + $3 }' "$tmp/helm.times" | median)
	echo "berth template ${bc} s, helm template ${hc} s CPU (medians of $count): berth/helm = $(awk -v b="$bc" -v h="$hc" 'BEGIN { printf "%.2f", b / h }')x"
fi
