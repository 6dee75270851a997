#!/usr/bin/env bash
# ethpipe's own CPU seconds (user + sys) per benchmark day, two builds compared in alternating rounds.
#
# usage: scripts/cpu-compare.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]
# Each run is `ethpipe run token_transfers --date 2024-03-01` into a fresh database `ethpipe_cpu`
# against `ethpipe-bench serve --rows 1300000` (the release ethpipe-bench of $CARGO_TARGET_DIR).
# It builds nothing; see bench/README.md, "The contracts cost nothing measurable".
set -euo pipefail
before=${1:?usage: cpu-compare.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]}
after=${2:?usage: cpu-compare.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]}
rounds=${3:-4}
target=${CARGO_TARGET_DIR:-$HOME/.cache/ethpipe-target}
admin=postgres://postgres@127.0.0.1:5432/postgres
db=ethpipe_cpu
work=$(mktemp -d)
out=$work/cpu.txt

"$target/release/ethpipe-bench" serve --rows 1300000 >"$work/serve.env" 2>"$work/serve.err" &
server=$!
trap 'kill $server 2>/dev/null; psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" || true' EXIT
until grep -q GOOGLE_APPLICATION_CREDENTIALS "$work/serve.env"; do
  kill -0 $server || { cat "$work/serve.err"; exit 1; }
  sleep 1
done
eval "$(grep '^export ' "$work/serve.env")"
export ETHPIPE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db

run_one() { # label binary round
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  "$2" migrate >/dev/null
  psql -q "$admin" -c CHECKPOINT
  /usr/bin/time -f "$1 round=$3 cpu_s=%U+%S wall_s=%e maxrss_kb=%M" -a -o "$out" \
    "$2" run token_transfers --date 2024-03-01 >"$work/$1-$3.log" 2>&1
  echo "$1 round=$3 rows=$(psql -tA "${ETHPIPE_DATABASE_URL}" -c 'SELECT count(*) FROM ethereum.token_transfers')" >>"$out"
}
for round in $(seq "$rounds"); do
  if ((round % 2)); then run_one after "$after" "$round"; run_one before "$before" "$round"
  else run_one before "$before" "$round"; run_one after "$after" "$round"; fi
done
cat "$out"
