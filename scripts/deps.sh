#!/usr/bin/env bash
# Installs the Debian packages berth's tests use, when they are missing.
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
command -v git-crypt >/dev/null || need+=(git-crypt)
# The console's browser tests drive Debian's Chromium (internal/console).
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "deps: ${need[*]} missing; install them with your package manager (Debian: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "deps: installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
