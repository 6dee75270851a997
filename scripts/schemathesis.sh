#!/usr/bin/env bash
# Optional, by hand: validates /api/v1/openapi.json with openapi-spec-validator
# and runs schemathesis (both from PyPI, in a venv under $ETHPIPE_TOOLS_DIR)
# against a real `ethpipe serve` over PostgreSQL with a few days loaded from
# the BigQuery-compatible test server. `make test` runs the Rust equivalent
# (crates/ethpipe-server/tests/openapi.rs); this is the second opinion.
#
#   scripts/schemathesis.sh [extra schemathesis arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${ETHPIPE_TOOLS_DIR:-$HOME/.cache/ethpipe-tools}"
target="${CARGO_TARGET_DIR:-$HOME/.cache/ethpipe-target}"
admin="${ETHPIPE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TARGET_DIR="$target"
venv="$tools/venv"
if [ ! -x "$venv/bin/schemathesis" ] || [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q schemathesis openapi-spec-validator
fi

scripts/ensure-postgres.sh
cargo build -q --locked -p ethpipe -p ethpipe-testkit --bin ethpipe --bin fake-bigquery

work="$(mktemp -d)"
db="ethpipe_schemathesis_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$target/debug/fake-bigquery" --dir "$work" --from 2024-03-01 --days 2 --rows-per-day 500 >"$work/bq.env" &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^ready' "$work/bq.env" 2>/dev/null && break; sleep 0.1; done
export $(grep = "$work/bq.env" | xargs)
psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
export ETHPIPE_DATABASE_URL="${admin%/*}/$db"
"$target/debug/ethpipe" backfill token_transfers --from 2024-03-01 --to 2024-03-02 >/dev/null

port=$((20000 + RANDOM % 20000))
"$target/debug/ethpipe" serve --bind "127.0.0.1:$port" 2>"$work/serve.log" &
pids+=($!)
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done

curl -sf "$base/api/v1/openapi.json" >"$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"
# schemathesis keeps a cache folder in the working directory: not the checkout.
cd "$work"
"$venv/bin/schemathesis" run "$base/api/v1/openapi.json" --url "$base/api/v1" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples 100 "$@"
