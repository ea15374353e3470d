#!/usr/bin/env bash
# Runs the load benchmark (bench/README.md), installing what it needs first.
# Usage: scripts/bench.sh [bench flags, e.g. -c 8 -duration 5s -profile /tmp/prof]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapmodify >/dev/null 2>&1 || missing+=(ldap-utils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

exec go run ./bench "$@"
