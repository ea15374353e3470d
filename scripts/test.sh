#!/usr/bin/env bash
# Runs the whole test suite, installing what the tests need first.
# Usage: scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

# Build and test with the Go release that fixes the standard library's
# known vulnerabilities. The go command fetches it through the module
# proxy when the installed Go is older; a machine whose GOTOOLCHAIN is
# "local" gets it too, because the script sets it.
export GOTOOLCHAIN=go1.27.3

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Debian packages the integration tests drive for real: OpenLDAP's slapd
# (with ldap-utils for ldapadd/ldapmodify), and the PostgreSQL and Redis
# servers of the scale-out tests (the store conformance suite on
# PostgreSQL, Redis sessions, several instances on one database), and
# Debian's chromium for the browser tests in e2e/ with a Japanese font so
# the pages render (and are measured and photographed) as users see them.
missing=()
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapmodify >/dev/null 2>&1 || missing+=(ldap-utils)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
fc-list :lang=ja 2>/dev/null | grep -q . || missing+=(fonts-ipafont-gothic)
# The SAML metadata test validates the IdP's metadata with xmllint against
# the OASIS metadata and mdui schemas (xmltooling's and opensaml's schema
# packages) and the shibmd schema (shibboleth-sp-common, files only).
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
[ -f /usr/share/xml/xmltooling/xmldsig-core-schema.xsd ] || missing+=(xmltooling-schemas)
[ -f /usr/share/xml/opensaml/saml-schema-metadata-2.0.xsd ] || missing+=(opensaml-schemas)
[ -f /usr/share/xml/shibboleth/shibboleth-metadata-1.0.xsd ] || missing+=(shibboleth-sp-common)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# wait_for CMD...: retries CMD for up to 30 s.
wait_for() {
  for _ in $(seq 60); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# PostgreSQL on 127.0.0.1:5432, user postgres without a password (trust on
# loopback), database "test"; each test makes and drops its own schema.
# Tests reach it through IDP_TEST_POSTGRES when that is set instead.
if [ -z "${IDP_TEST_POSTGRES:-}" ]; then
  pg() { psql -w -h 127.0.0.1 -p 5432 -U postgres "$@"; }
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    echo "== starting PostgreSQL $version"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
  fi
  if ! pg -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    # A fresh Debian cluster asks for passwords on TCP; let the local
    # postgres user in from loopback only, as the tests expect.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -n1)
    echo "== allowing user postgres from loopback without a password ($hba)"
    $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload
    wait_for pg -d postgres -tAc 'SELECT 1' || { echo "cannot log in to PostgreSQL as postgres" >&2; exit 1; }
  fi
  if [ "$(pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
    pg -d postgres -qc 'CREATE DATABASE test'
  fi
fi

# Redis on 127.0.0.1:6379, nothing persisted. Tests use random key prefixes
# and delete their keys. IDP_TEST_REDIS names another server instead.
if [ -z "${IDP_TEST_REDIS:-}" ] && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" != PONG ]; then
  echo "== starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for sh -c '[ "$(redis-cli -h 127.0.0.1 -p 6379 ping)" = PONG ]' || { echo "Redis did not start" >&2; exit 1; }
fi

echo "== go vet"
go vet ./...

echo "== govulncheck (offline database)"
scripts/vulncheck.sh

echo "== go test -race"
go test -race -count=1 -timeout 15m "$@" ./...

# The example embedding program is a module of its own with a path outside
# the project's, so Go's internal/ rule applies to it as to any outside
# user: it proves the public API suffices.
echo "== examples/embed (separate module)"
(cd examples/embed && go vet ./... && go test -race -count=1 ./...)
