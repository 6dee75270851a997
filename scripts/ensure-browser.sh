#!/usr/bin/env bash
# Installs what the dashboard's browser test drives, never globally except
# Debian's own chromium package:
#
#   /usr/bin/chromium                      Debian's chromium (apt, when root)
#   $ETHPIPE_TOOLS_DIR/browser/node_modules/playwright-core   pinned below
#
# (ETHPIPE_TOOLS_DIR defaults to ~/.cache/ethpipe-tools.) playwright-core is
# the driver library alone: it downloads no browser of its own, it launches
# the system chromium. Idempotent and quick when everything is there.
set -euo pipefail

PLAYWRIGHT_CORE_VERSION=1.65.1

dir="${ETHPIPE_TOOLS_DIR:-$HOME/.cache/ethpipe-tools}/browser"
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

[ -x /usr/bin/chromium ] || apt_install chromium
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm

# One installer at a time (parallel test runs share the folder).
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9
fi

installed="$(node -p "require('$dir/node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
if [ "$installed" != "$PLAYWRIGHT_CORE_VERSION" ]; then
  cat >"$dir/package.json" <<JSON
{
  "name": "ethpipe-browser-tools",
  "private": true,
  "description": "Installed by ethpipe's scripts/ensure-browser.sh",
  "dependencies": { "playwright-core": "$PLAYWRIGHT_CORE_VERSION" }
}
JSON
  echo "installing playwright-core $PLAYWRIGHT_CORE_VERSION into $dir" >&2
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
