#!/usr/bin/env bash
# Runs the whole test suite against one local cluster that every test binary
# shares, in a throwaway BERTH_HOME. Clusters that tests create for themselves live
# in the same home, so the cleanup below stops every process the run started, even
# when tests fail or the run is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

berth=./bin/berth
home=$(mktemp -d "${TMPDIR:-/tmp}/berth-test-XXXXXX")
export BERTH_HOME=$home
# Upstream charts are read from the offline mirror.
BERTH_CHART_MIRROR=$(./scripts/chart-mirror.sh)
export BERTH_CHART_MIRROR

cleanup() {
  local code=$?
  BERTH_HOME=$home "$berth" down --all --purge >/dev/null || code=1
  # The pattern comes from a file so that grep's own command line does not match.
  if left=$(grep -l -s -F -f <(printf '%s/\n' "$home") /proc/[0-9]*/cmdline 2>/dev/null) && [ -n "$left" ]; then
    echo "test.sh: processes of the test clusters are still running: $left" >&2
    code=1
  fi
  rm -rf "$home"
  exit $code
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$berth" up --name shared --nodes 3
export BERTH_TEST_KUBECONFIG=$home/clusters/shared/kubeconfig
export BERTH_TEST_HOME=$home
# Arguments replace the default package list: ./scripts/test.sh -run TestX ./test/e2e/
go test -count=1 -timeout 40m "${@:-./...}"
