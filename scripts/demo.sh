#!/usr/bin/env bash
# `make demo`: ethpipe end to end with no account anywhere. Installs anvil
# locally, starts it, fills it with a few days of token activity, loads
# tokens and token_transfers for each day with --source rpc into the embedded
# SQLite file demo/ethpipe.db, prints a summary, then serves the dashboard.
#
#   DEMO_DAYS=3 DEMO_FROM=2024-03-01 DEMO_SERVE=1 DEMO_PORT=8545
set -euo pipefail
cd "$(dirname "$0")/.."

days=${DEMO_DAYS:-3}
from=${DEMO_FROM:-2024-03-01}
port=${DEMO_PORT:-8545}
serve=${DEMO_SERVE:-1}
target=${CARGO_TARGET_DIR:-$HOME/.cache/ethpipe-target}
tools=${ETHPIPE_TOOLS_DIR:-$HOME/.cache/ethpipe-tools}
export CARGO_TARGET_DIR=$target ETHPIPE_TOOLS_DIR=$tools

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing anvil and the demo contracts (once, into $tools)"
scripts/ensure-node-tools.sh

step "building ethpipe (release)"
cargo build --release --locked -p ethpipe -p ethpipe-testkit --bin ethpipe --bin demo-chain
ethpipe="$target/release/ethpipe"

mkdir -p demo
rm -f demo/ethpipe.db demo/ethpipe.db-wal demo/ethpipe.db-shm
# Genesis just before the first day, so every day is a whole day of blocks.
genesis=$(date -u -d "$from 00:00:00 UTC" +%s)
step "starting anvil on 127.0.0.1:$port"
"$tools/bin/anvil" --host 127.0.0.1 --port "$port" --timestamp "$genesis" --silent >demo/anvil.log 2>&1 &
anvil_pid=$!
trap 'kill $anvil_pid 2>/dev/null || true' EXIT
rpc="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if curl -sf -H 'content-type: application/json' \
      -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$rpc" >/dev/null; then
    break
  fi
  kill -0 $anvil_pid 2>/dev/null || { cat demo/anvil.log; echo "anvil did not start" >&2; exit 1; }
  sleep 0.1
done

step "generating $days day(s) of token activity from $from"
"$target/release/demo-chain" --rpc-url "$rpc" --from "$from" --days "$days"

to=$(date -u -d "$from + $((days - 1)) days" +%F)
export ETHPIPE_SOURCE=rpc ETHPIPE_RPC_URL=$rpc ETHPIPE_DATABASE_URL=sqlite://demo/ethpipe.db
step "ethpipe backfill tokens --from $from --to $to"
"$ethpipe" backfill tokens --from "$from" --to "$to"
step "ethpipe backfill token_transfers --from $from --to $to"
"$ethpipe" backfill token_transfers --from "$from" --to "$to"

step "summary"
"$ethpipe" status
python3 - <<'EOF'
import sqlite3
db = sqlite3.connect("demo/ethpipe.db")
print(f"{'day':<12}{'transfers':>10}{'tokens':>8}{'senders':>9}")
for day, transfers, tokens, senders in db.execute(
    "SELECT day, sum(transfer_count), count(*), sum(unique_senders) FROM token_daily_stats GROUP BY day ORDER BY day"):
    print(f"{day:<12}{transfers:>10}{tokens:>8}{senders:>9}")
print()
print(f"{'token':<44}{'symbol':<8}{'decimals':>9}  found in transfers")
for address, symbol, decimals, found in db.execute(
    "SELECT address, symbol, decimals, found_in_transfers FROM tokens ORDER BY block_number"):
    print(f"{address:<44}{symbol or 'NULL':<8}{decimals or 'NULL':>9}  {'yes' if found else 'no'}")
EOF

cat <<EOF

The data is in demo/ethpipe.db (SQLite). Look at it with:
  sqlite3 demo/ethpipe.db 'select * from token_transfers_enriched limit 10'
  ETHPIPE_DATABASE_URL=sqlite://demo/ethpipe.db $ethpipe status
EOF

if [ "$serve" = 1 ] && "$ethpipe" serve --help >/dev/null 2>&1 && "$ethpipe" serve --help | grep -q -- '--bind'; then
  step "serving the dashboard on http://127.0.0.1:6789/ (Ctrl-C stops it and anvil)"
  "$ethpipe" serve --bind 127.0.0.1:6789
fi
