#!/usr/bin/env bash
# The console's overview at fleet scale: a synthetic workspace of N apps (one
# ConfigMap each) on a fresh local cluster. Prints a markdown table.
# Usage: bench/console/run.sh [APPS]   (default 5000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BERTH_BENCH_CONSOLE_APPS="${1:-5000}" go test ./bench/console -run TestOverviewAtScale -count=1 -v -timeout 30m
