#!/bin/sh
# Runs the deploy benchmark on a fresh local cluster and prints the results as
# markdown. Extra arguments go to the bench program, for example:
#   bench/run.sh -o bench/results.md
#   bench/run.sh -tools raw,berth -workloads configmaps -kubeconfig ~/.berth/clusters/dev/kubeconfig
set -eu
cd "$(dirname "$0")/.."
exec go run ./bench "$@"
