#!/usr/bin/env bash
# The system packages tierwise needs beyond Python, installed with apt-get when missing.
# One script for `make demo`, `make test` and .ci/run.
#
#   scripts/system-deps.sh [--dry-run] [demo|test|bench]
#
#   demo   make and Python's venv module: enough to create .venv and run the demo
#   test   demo's, plus docker-registry (the registry tests run a real OCI registry),
#          chromium (the report test opens the report in headless Chromium), curl
#          (the README's TLS walkthrough runs its curl lines as written), prometheus
#          (the observe tests scrape a fleet with it; it brings promtool too),
#          postgresql (the control store tests run a real PostgreSQL server),
#          nats-server (the JetStream outbox tests run a hub and a leaf node) and
#          systemd (its systemd-analyze verifies the rendered systemd units), nodejs
#          and npm (the device tier's JavaScript module is built and unit-tested with
#          them; its browser tests run it in chromium)
#   bench  test's, plus wrk (the server benchmark's load generator)
#
# Installs with apt-get when run as root; otherwise prints the one command to run and
# exits 1. --dry-run prints what it would install ("would install: A B", or "nothing to
# install") and exits 0. PYTHON names the interpreter that will create the venv
# (default python3). PG_LIB_DIR is where Debian keeps PostgreSQL's versions, whose
# binaries are not on PATH (default /usr/lib/postgresql).
set -euo pipefail

usage="usage: scripts/system-deps.sh [--dry-run] [demo|test|bench]"
dry_run=0
group=test
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    demo | test | bench) group=$arg ;;
    -h | --help)
      echo "$usage"
      exit 0
      ;;
    *)
      echo "system-deps: unknown argument '$arg' ($usage)" >&2
      exit 2
      ;;
  esac
done

have() { command -v "$1" >/dev/null 2>&1; }

# postgres on PATH, or in Debian's PG_LIB_DIR/<version>/bin
have_postgres() {
  have postgres && return 0
  local bin
  for bin in "${PG_LIB_DIR:-/usr/lib/postgresql}"/*/bin/postgres; do
    [ -x "$bin" ] && return 0
  done
  return 1
}

need=()
have make || need+=(make)
"${PYTHON:-python3}" -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ "$group" != demo ]; then
  have docker-registry || need+=(docker-registry)
  have chromium || need+=(chromium)
  have curl || need+=(curl)
  have prometheus || need+=(prometheus)
  have_postgres || need+=(postgresql)
  have nats-server || need+=(nats-server)
  have systemd-analyze || need+=(systemd)
  have node || need+=(nodejs)
  have npm || need+=(npm)
fi
if [ "$group" = bench ]; then
  have wrk || need+=(wrk)
fi

if [ ${#need[@]} -eq 0 ]; then
  [ $dry_run -eq 1 ] && echo "nothing to install"
  exit 0
fi
if [ $dry_run -eq 1 ]; then
  echo "would install: ${need[*]}"
  exit 0
fi

install="apt-get install -y ${need[*]}"
if ! have apt-get; then
  echo "system-deps: missing ${need[*]}; install them with your system's package manager (this script knows apt-get only)" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]}; run: sudo apt-get update && sudo $install" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}"
