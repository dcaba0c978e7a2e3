#!/usr/bin/env bash
# Prints the offline mirror of upstream chart repositories that tests, CI and
# `make demo` read charts from: $BERTH_CHART_MIRROR when set, else
# ../shared/charts beside the repository, else /work/shared/charts.
set -euo pipefail
if [ -n "${BERTH_CHART_MIRROR:-}" ]; then echo "$BERTH_CHART_MIRROR"; exit 0; fi
root=$(cd "$(dirname "$0")/.." && pwd)
for d in "$root/../shared/charts" /work/shared/charts; do
  if [ -f "$d/README.md" ]; then (cd "$d" && pwd); exit 0; fi
done
echo "chart-mirror.sh: no offline chart mirror found; set BERTH_CHART_MIRROR to a directory laid out by upstream repository URL" >&2
exit 1
