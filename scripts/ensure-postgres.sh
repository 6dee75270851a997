#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at ETHPIPE_TEST_DATABASE_URL's host
# (default 127.0.0.1:5432): starts the local cluster if it is down, installs
# Debian's postgresql when missing and running as root. Also checks for the
# openssl command the tests use to generate a service-account key.
set -euo pipefail

url="${ETHPIPE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=5432

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $* with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || {
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
  else
    echo "error: $* is missing; install it (e.g. sudo apt-get install $*)" >&2
    exit 1
  fi
}

command -v openssl >/dev/null || apt_install openssl
command -v pg_isready >/dev/null || apt_install postgresql-client

ready() { pg_isready -q -h "$host" -p "$port" -t 2; }

if ready; then exit 0; fi

if ! command -v pg_ctlcluster >/dev/null; then
  apt_install postgresql
fi
for version in $(ls /etc/postgresql 2>/dev/null); do
  echo "starting PostgreSQL $version (main)" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
done
for _ in $(seq 1 30); do
  if ready; then exit 0; fi
  sleep 1
done
echo "error: PostgreSQL does not answer at $host:$port; start it or set ETHPIPE_TEST_DATABASE_URL" >&2
exit 1
