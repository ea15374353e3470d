#!/usr/bin/env bash
# Checks the idp binary for known vulnerabilities without reaching the
# vulnerability database's web service: the database is built locally from
# the golang.org/x/vulndb module (fetched through the Go module proxy like
# any module) and govulncheck reads it with -db file://. Fails when the
# binary calls a vulnerable symbol that scripts/vulncheck-accepted.txt does
# not list (with its reason). Bump VULNDB_VERSION to learn of new ones.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
GOVULNCHECK_VERSION=v1.10.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/campusidp/vulndb-$VULNDB_VERSION"
bin="$cache/bin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$cache/db/index/db.json" ]; then
  echo "== building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION"
  [ -x "$bin/indexdb" ] || GOBIN="$bin" go install "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION"
  src=$(cd "$tmp" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$cache/db.tmp"
  "$bin/indexdb" -vulns "$src/data/osv" -out "$cache/db.tmp"
  mv "$cache/db.tmp" "$cache/db"
fi
[ -x "$bin/govulncheck" ] || GOBIN="$bin" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"

# Binary mode: what the release binary links, built with the release
# toolchain (the standard library's fixes come with it).
go build -o "$tmp/idp" ./cmd/idp
rc=0
"$bin/govulncheck" -mode=binary -db "file://$cache/db" "$tmp/idp" >"$tmp/report" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
  cat "$tmp/report" >&2
  echo "govulncheck failed (exit $rc)" >&2
  exit 1
fi
failed=0
for id in $(grep -oE '^Vulnerability #[0-9]+: GO-[0-9]+-[0-9]+' "$tmp/report" | awk '{print $3}'); do
  if grep -qE "^$id[[:space:]]" scripts/vulncheck-accepted.txt; then
    echo "govulncheck: $id accepted: $(grep -E "^$id[[:space:]]" scripts/vulncheck-accepted.txt | cut -f2- -d' ')"
  else
    failed=1
  fi
done
if [ "$failed" -ne 0 ]; then
  cat "$tmp/report" >&2
  echo "govulncheck: the binary calls vulnerable code (see above)" >&2
  exit 1
fi
echo "govulncheck: no unaccepted vulnerability reachable ($GOTOOLCHAIN, x/vulndb $VULNDB_VERSION)"
