#!/usr/bin/env bash
# Builds Prometheus and Alertmanager from the Go module proxy into the user cache
# (BERTH_MONITORING_CACHE, default ~/.cache/berth/monitoring/bin), never into the
# repository. Idempotent: a binary already built is kept. `berth up --monitoring`
# runs the same steps itself (internal/localcluster/monitoring_build.go); this
# script is for building ahead of time (CI caches, slow machines).
#
# Versions: Prometheus v3 is published as module versions v0.3xx.y
# (v0.316.0 is Prometheus 3.16.0); Alertmanager v0.35.0. Both build with our Go.
# Adjustments: the web UIs are not built (no JavaScript toolchain). Prometheus
# builds without the builtinassets tag (its UI pages then say the assets are
# missing; the HTTP API is complete) and with the remove_all_sd tag: only
# static, file and HTTP service discovery (the cloud ones are half the build).
# Alertmanager embeds ui/app/dist, which the
# module zip does not carry: a one-page placeholder is written there.
set -euo pipefail
export GOWORK=off

PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
ALERTMANAGER_VERSION=${ALERTMANAGER_VERSION:-v0.35.0}
CACHE=${BERTH_MONITORING_CACHE:-$HOME/.cache/berth/monitoring}
mkdir -p "$CACHE/bin" "$CACHE/src"

build() { # module version binary
	local mod=$1 version=$2 bin=$3
	local out="$CACHE/bin/$bin-$version"
	if [ -x "$out" ]; then echo "$out (cached)"; return; fi
	local dir
	dir=$(cd "$CACHE/src" && GOFLAGS=-mod=mod go mod download -json "$mod@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	[ -n "$dir" ] || { echo "go mod download $mod@$version failed" >&2; exit 1; }
	local src="$CACHE/src/$bin-$version"
	rm -rf "$src" && cp -r "$dir" "$src" && chmod -R u+w "$src"
	if [ "$bin" = alertmanager ]; then
		mkdir -p "$src/ui/app/dist"
		printf '<!doctype html><title>Alertmanager</title><p>The web UI is not built by berth; use the HTTP API (/api/v2).</p>\n' >"$src/ui/app/dist/index.html"
	fi
	(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags remove_all_sd -o "$out.tmp" "./cmd/$bin" && mv "$out.tmp" "$out")
	echo "$out"
}

build github.com/prometheus/prometheus "$PROMETHEUS_VERSION" prometheus
build github.com/prometheus/alertmanager "$ALERTMANAGER_VERSION" alertmanager
