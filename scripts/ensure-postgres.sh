#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at ETHPIPE_TEST_DATABASE_URL's host
# (default 127.0.0.1:5432): starts the local cluster if it is down, installs
# Debian's postgresql when missing and running as root. Also checks for the
# openssl command the tests use to generate a service-account key. A local
# server must speak TLS (the TLS tests need it): if `SHOW ssl` is off and we
# are root, it is turned on with Debian's self-signed "snakeoil" certificate.
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

ssl_state() { psql "$url" -XAtqc 'SHOW ssl' 2>/dev/null || true; }

# Debian's default: ssl = on with the snakeoil pair. The pair is copied into
# the data directory (owned by the server's user) so the server can read the
# key whatever the groups it was started with; a reload applies it.
ensure_tls() {
  [ "$(ssl_state)" = on ] && return 0
  case "$host" in 127.0.0.1|localhost|::1) ;; *)
    echo "warning: PostgreSQL at $host does not speak TLS; the TLS tests will fail" >&2
    return 0 ;;
  esac
  if [ "$(id -u)" != 0 ]; then
    echo "error: PostgreSQL at $host:$port has ssl off; turn it on (ssl = on in postgresql.conf) or run this as root" >&2
    exit 1
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  local cert=/etc/ssl/certs/ssl-cert-snakeoil.pem key=/etc/ssl/private/ssl-cert-snakeoil.key
  if [ ! -f "$key" ]; then
    command -v make-ssl-cert >/dev/null || apt_install ssl-cert
    make-ssl-cert generate-default-snakeoil
  fi
  local data owner
  data="$(psql "$url" -XAtqc 'SHOW data_directory')"
  owner="$(stat -c %U "$data")"
  install -m 644 -o "$owner" "$cert" "$data/server.crt"
  install -m 600 -o "$owner" "$key" "$data/server.key"
  echo "turning on TLS in PostgreSQL (Debian's snakeoil certificate)" >&2
  psql "$url" -Xqc "ALTER SYSTEM SET ssl_cert_file = 'server.crt'" \
    -c "ALTER SYSTEM SET ssl_key_file = 'server.key'" \
    -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 20); do
    [ "$(ssl_state)" = on ] && return 0
    sleep 0.5
  done
  echo "error: PostgreSQL kept ssl off after a reload; see its log" >&2
  exit 1
}

if ready; then ensure_tls; exit 0; fi

if ! command -v pg_ctlcluster >/dev/null; then
  apt_install postgresql
fi
for version in $(ls /etc/postgresql 2>/dev/null); do
  echo "starting PostgreSQL $version (main)" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
done
for _ in $(seq 1 30); do
  if ready; then ensure_tls; exit 0; fi
  sleep 1
done
echo "error: PostgreSQL does not answer at $host:$port; start it or set ETHPIPE_TEST_DATABASE_URL" >&2
exit 1
