#!/usr/bin/env bash
# Installs the Ethereum tools the tests use into a local folder (never
# globally) and compiles the test contracts:
#
#   $ETHPIPE_TOOLS_DIR (default ~/.cache/ethpipe-tools)
#     node_modules/        npm packages, pinned below
#     bin/anvil            the anvil binary from @foundry-rs/anvil
#     contracts/<Name>.json  abi + creation and runtime bytecode of each
#                            contract in crates/ethpipe-testkit/contracts/
#
# Idempotent and fast when nothing changed: npm runs only when the pins
# changed or anvil is missing; contracts are recompiled only when a .sol file,
# the compile script or the pins changed (a hash stamp).
set -euo pipefail

ANVIL_VERSION=1.7.1
# Two compilers: 0.4.x for the tokens ethereum-etl must detect (its linear
# dispatcher puts every selector before the first JUMPDEST), 0.8.x for the
# rest, including a token that must NOT be detected.
SOLC_LEGACY=0.4.26
SOLC_MODERN=0.8.28

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${ETHPIPE_TOOLS_DIR:-$HOME/.cache/ethpipe-tools}"
contracts_src="$root/crates/ethpipe-testkit/contracts"
mkdir -p "$dir"

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

command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm

# One installer at a time (parallel `make` or test runs share the folder).
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9
fi

manifest=$(cat <<EOF
{
  "name": "ethpipe-tools",
  "private": true,
  "description": "Installed by ethpipe's scripts/ensure-node-tools.sh",
  "dependencies": {
    "@foundry-rs/anvil": "$ANVIL_VERSION",
    "solc-$SOLC_LEGACY": "npm:solc@$SOLC_LEGACY",
    "solc-$SOLC_MODERN": "npm:solc@$SOLC_MODERN"
  }
}
EOF
)

# The version is read whole before matching: `| grep -q` would stop reading
# early, and the writer's SIGPIPE fails the pipeline under pipefail.
anvil_ok() {
  [ -x "$dir/bin/anvil" ] || return 1
  local version
  version="$("$dir/bin/anvil" --version 2>/dev/null)" || return 1
  [[ "$version" == *"Version: $ANVIL_VERSION"* ]]
}

if [ "$(cat "$dir/package.json" 2>/dev/null)" != "$manifest" ] || ! anvil_ok; then
  echo "installing @foundry-rs/anvil@$ANVIL_VERSION, solc $SOLC_LEGACY and $SOLC_MODERN into $dir" >&2
  printf '%s\n' "$manifest" > "$dir/package.json"
  # --ignore-scripts: the anvil binary comes with the platform package
  # (@foundry-rs/anvil-<os>-<arch>, an optional dependency); the postinstall
  # script would only try to download one when that package is missing.
  (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  binary=""
  for candidate in "$dir"/node_modules/@foundry-rs/anvil-*/bin/anvil; do
    [ -x "$candidate" ] && binary="$candidate" && break
  done
  if [ -z "$binary" ]; then
    echo "error: @foundry-rs/anvil@$ANVIL_VERSION has no binary for $(uname -s)/$(uname -m)" >&2
    exit 1
  fi
  mkdir -p "$dir/bin"
  ln -sfn "$binary" "$dir/bin/anvil"
  anvil_ok || { echo "error: $dir/bin/anvil is not anvil $ANVIL_VERSION" >&2; exit 1; }
fi
echo "anvil: $dir/bin/anvil ($("$dir/bin/anvil" --version | head -n1))"

stamp=$(cat "$contracts_src"/*.sol "$root/scripts/compile-contracts.js" "$dir/package.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$dir/contracts/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$dir/contracts.tmp"
  node "$root/scripts/compile-contracts.js" "$contracts_src" "$dir/contracts.tmp" "$dir/node_modules" >&2
  echo "$stamp" > "$dir/contracts.tmp/.stamp"
  rm -rf "$dir/contracts"
  mv "$dir/contracts.tmp" "$dir/contracts"
fi
echo "contracts: $dir/contracts"
