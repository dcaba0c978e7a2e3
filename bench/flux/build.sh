#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from the Go module
# proxy into ~/.cache/berth/flux/bin (never into the repository), with their
# CRDs next to them. Idempotent: a binary already built is kept.
#
# Versions: the newest of each the module proxy serves that builds with our Go
# toolchain (go directive <= ours). kustomize-controller v1.7.3 uses
# k8s.io/client-go v0.34, as berth does; source-controller v1.8.5 uses v0.36 (no
# v1.7 source-controller zip is served), which is fine for a separate process.
set -euo pipefail

SOURCE_VERSION=${SOURCE_VERSION:-v1.8.5}
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v1.7.3}
CACHE=${BERTH_FLUX_CACHE:-$HOME/.cache/berth/flux}
DROP=${DROP:-github.com/fluxcd/pkg/helmtestserver}
PIN=${PIN:-github.com/fluxcd/pkg/artifact@v0.8.0}
mkdir -p "$CACHE/bin" "$CACHE/crds" "$CACHE/src"

build() { # module version binary
	local mod=$1 version=$2 bin=$3
	local out="$CACHE/bin/$bin-$version"
	if [ -x "$out" ]; then echo "$out (cached)"; return; fi
	local dir
	dir=$(cd "$CACHE/src" && GOFLAGS=-mod=mod go mod download -json "$mod@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	[ -n "$dir" ] || { echo "go mod download $mod@$version failed" >&2; exit 1; }
	local src="$CACHE/src/$bin-$version"
	rm -rf "$src" && cp -r "$dir" "$src" && chmod -R u+w "$src"
	# The module's go.mod points its own api module at ./api, a nested module
	# the zip does not carry: use the published api module of the same version.
	# Test-only requirements the module proxy does not serve are dropped: the
	# controller's binary does not import them.
	(cd "$src" && go mod edit -dropreplace "$mod/api" -require "$mod/api@$version")
	for dep in $DROP; do (cd "$src" && go mod edit -droprequire "$dep"); done
	# Patch versions the module proxy does not serve are replaced by the
	# nearest one it does (PIN: module@version ...).
	for pin in $PIN; do (cd "$src" && go mod edit -replace "${pin%@*}=$pin"); done
	(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" . && mv "$out.tmp" "$out")
	cp "$src"/config/crd/bases/*.yaml "$CACHE/crds/"
	echo "$out"
}

build github.com/fluxcd/source-controller "$SOURCE_VERSION" source-controller
build github.com/fluxcd/kustomize-controller "$KUSTOMIZE_VERSION" kustomize-controller
