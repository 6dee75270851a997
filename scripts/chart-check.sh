#!/usr/bin/env bash
# The Helm chart's checks (`make chart-check`, part of `make test`):
#
#   1. yamllint on the chart's values files and Chart.yaml;
#   2. helm lint --strict and helm template for each scenario: default
#      values, every feature on (ci/full-values.yaml + --set-file gcp.key),
#      existing Secrets (ci/external-values.yaml), a JSON-RPC source
#      (ci/rpc-values.yaml), and the values the Makefile's kick-start and
#      backfill recipes pass (read from `make -n`);
#   3. kubernetes-validate --strict on every rendered manifest, for the
#      oldest Kubernetes the chart supports and newer ones;
#   4. properties of the rendered manifests (deploy/helm/tests/
#      check_manifests.py): the key mounted as a file from a Secret, no
#      plaintext password in a ConfigMap or env value, pinned images,
#      non-root pods, the backfill Job Indexed with the configured
#      parallelism running `ethpipe backfill … --worker`, …;
#   5. proof that the checks can fail: kubernetes-validate rejects a
#      manifest with a wrong field type and one with an unknown field, helm
#      refuses bad values, yamllint rejects a broken file, and each property
#      check rejects a manifest broken on purpose (check_manifests.py
#      self-test);
#   6. the Makefile's Kubernetes recipes: idempotent commands, one namespace
#      variable;
#   7. hadolint on the Dockerfile (which cannot be built here: no Docker).
#
# Tools: scripts/ensure-chart-tools.sh (pinned, installed once into
# $ETHPIPE_TOOLS_DIR/chart). Nothing here needs a cluster or Docker.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$(scripts/ensure-chart-tools.sh)"
helm="$tools/bin/helm"
venv="$tools/venv/bin"
chart=deploy/helm/ethpipe
checker=deploy/helm/tests/check_manifests.py
# The chart's kubeVersion floor, the pinned kubectl's minor, the newest schemas.
kube_versions=(1.29.0 1.32.0 1.37.0)
release=ethpipe

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

passed=0
failed=0
ok() {
  passed=$((passed + 1))
  echo "ok   $1"
}
not_ok() {
  failed=$((failed + 1))
  echo "FAIL $1"
  grep -v '^ok   ' "$out/last.log" | sed 's/^/     /' | tail -n 40
}
# expect_ok NAME COMMAND…: the command succeeds.
expect_ok() {
  local name="$1"
  shift
  if "$@" >"$out/last.log" 2>&1; then ok "$name"; else not_ok "$name"; fi
}
# expect_fail NAME PATTERN COMMAND…: the command fails, saying PATTERN (so it
# fails for the reason the test is about).
expect_fail() {
  local name="$1" pattern="$2"
  shift 2
  if "$@" >"$out/last.log" 2>&1; then
    echo "(the command succeeded)" >>"$out/last.log"
    not_ok "$name"
  elif grep -Eq -- "$pattern" "$out/last.log"; then
    ok "$name"
  else
    echo "(it failed, but without /$pattern/)" >>"$out/last.log"
    not_ok "$name"
  fi
}

# A placeholder service-account key for --set-file (not a real key).
cat >"$out/key.json" <<'EOF'
{"type": "service_account", "project_id": "my-billing-project", "private_key_id": "chart-check-placeholder",
 "private_key": "-----BEGIN PRIVATE KEY-----\nchart-check-placeholder\n-----END PRIVATE KEY-----\n",
 "client_email": "ethpipe@my-billing-project.iam.gserviceaccount.com"}
EOF

# The Makefile's recipes, dry-run, with a namespace of our own.
make_n() {
  env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -n \
    HELM=helm KUBECTL=kubectl MINIKUBE=minikube NAMESPACE=chart-check-ns "$@"
}
make_n kick-start GCP_KEY=/path/to/key.json >"$out/kick-start.1"
make_n kick-start GCP_KEY=/path/to/key.json >"$out/kick-start.2"
make_n backfill FROM=2024-02-01 TO=2024-02-29 PIPELINE=tokens PARALLEL=3 >"$out/backfill.n"
cat "$out/kick-start.1" "$out/backfill.n" | "$venv/python" "$checker" helm-args "$chart" >"$out/makefile.args"
mapfile -t makefile_args <"$out/makefile.args"

# Scenario name -> helm arguments after "RELEASE CHART".
scenario_args() {
  case "$1" in
    default) args=(--namespace ethpipe) ;;
    full) args=(--namespace ethpipe -f "$chart/ci/full-values.yaml" --set-file "gcp.key=$out/key.json") ;;
    external) args=(--namespace ethpipe -f "$chart/ci/external-values.yaml") ;;
    rpc) args=(--namespace ethpipe -f "$chart/ci/rpc-values.yaml") ;;
    makefile) args=("${makefile_args[@]:2}") ;;
  esac
}
scenarios=(default full external rpc makefile)

echo "== yamllint"
expect_ok "yamllint values.yaml, ci/*.yaml, Chart.yaml" \
  "$venv/yamllint" --strict -c deploy/helm/yamllint.yaml \
  "$chart/values.yaml" "$chart"/ci/*.yaml "$chart/Chart.yaml" deploy/helm/yamllint.yaml

echo "== hadolint"
expect_ok "hadolint Dockerfile" "$venv/hadolint" Dockerfile
# Multi-stage, a numeric non-root USER in the final stage, a HEALTHCHECK on /healthz.
if [ "$(grep -c '^FROM ' Dockerfile)" -ge 2 ] &&
  [ "$(grep '^USER ' Dockerfile | tail -n 1)" != "" ] &&
  grep '^USER ' Dockerfile | tail -n 1 | grep -Eq '^USER [1-9][0-9]*(:[1-9][0-9]*)?$' &&
  grep -A1 '^HEALTHCHECK ' Dockerfile | grep -q '/healthz'; then
  ok "Dockerfile: multi-stage, numeric non-root USER, HEALTHCHECK on /healthz"
else
  grep -E '^(FROM|USER|HEALTHCHECK)' Dockerfile >"$out/last.log" || true
  not_ok "Dockerfile: multi-stage, numeric non-root USER, HEALTHCHECK on /healthz"
fi
printf 'FROM debian:latest\nRUN apt-get update && apt-get install curl\n' >"$out/Dockerfile.bad"
expect_fail "hadolint rejects a Dockerfile with :latest and unpinned installs" "DL3007" \
  "$venv/hadolint" "$out/Dockerfile.bad"

echo "== helm lint --strict, helm template"
for scenario in "${scenarios[@]}"; do
  scenario_args "$scenario"
  expect_ok "helm lint --strict ($scenario)" "$helm" lint --strict "$chart" "${args[@]}"
  expect_ok "helm template ($scenario)" \
    bash -c '"$@" >"'"$out/$scenario.yaml"'"' _ "$helm" template "$release" "$chart" "${args[@]}"
done

echo "== kubernetes-validate --strict"
rendered=()
for scenario in "${scenarios[@]}"; do rendered+=("$out/$scenario.yaml"); done
for version in "${kube_versions[@]}"; do
  expect_ok "kubernetes-validate --strict -k $version (${scenarios[*]})" \
    "$venv/kubernetes-validate" --strict --quiet -k "$version" "${rendered[@]}"
done

echo "== properties of the rendered manifests"
if "$venv/python" "$checker" check "$out" >"$out/check.log" 2>&1; then
  ok "check_manifests.py check ($(tail -n 1 "$out/check.log"))"
else
  cp "$out/check.log" "$out/last.log"
  not_ok "check_manifests.py check"
fi

echo "== the checks can fail"
"$venv/python" "$checker" inject wrong-type "$out/default.yaml" "$out/wrong-type.yaml"
expect_fail "kubernetes-validate rejects replicas: \"two\"" "spec.replicas: 'two' is not of type 'integer'" \
  "$venv/kubernetes-validate" --strict --quiet -k "${kube_versions[0]}" "$out/wrong-type.yaml"
"$venv/python" "$checker" inject unknown-field "$out/default.yaml" "$out/unknown-field.yaml"
expect_fail "kubernetes-validate --strict rejects an unknown field" "'envv' was unexpected" \
  "$venv/kubernetes-validate" --strict --quiet -k "${kube_versions[0]}" "$out/unknown-field.yaml"
expect_fail "helm refuses image.tag=latest" "image.tag" \
  "$helm" template "$release" "$chart" --set image.tag=latest
expect_fail "helm refuses postgresql.image.tag=latest" "postgresql.image.tag" \
  "$helm" template "$release" "$chart" --set postgresql.image.tag=latest
expect_fail "helm lint --strict refuses a misspelt value" "Additional property replica is not allowed" \
  "$helm" lint --strict "$chart" --set server.replica=3
expect_fail "helm refuses a parallelism that is not a number" "backfill.parallelism: Invalid type" \
  "$helm" template "$release" "$chart" --set backfill.parallelism=many
expect_fail "helm refuses a backfill without dates" "backfill.from and backfill.to must be UTC days" \
  "$helm" template "$release" "$chart" --set backfill.enabled=true
expect_fail "helm refuses a backfill from after to" "is after backfill.to" \
  "$helm" template "$release" "$chart" --set backfill.enabled=true \
  --set-string backfill.from=2024-03-02,backfill.to=2024-03-01
expect_fail "helm refuses source rpc without a URL" "needs source.rpc.url" \
  "$helm" template "$release" "$chart" --set source.type=rpc
expect_fail "helm refuses no database" "needs database.external.url" \
  "$helm" template "$release" "$chart" --set postgresql.enabled=false
expect_fail "helm refuses a key given twice" "either gcp.key" \
  "$helm" template "$release" "$chart" --set gcp.key=x,gcp.existingSecret=y
printf 'image:\n  tag: "1"\nimage:\n    tag: "2"\n' >"$out/bad-values.yaml"
expect_fail "yamllint rejects duplicate keys and bad indentation" "duplication of key" \
  "$venv/yamllint" --strict -c deploy/helm/yamllint.yaml "$out/bad-values.yaml"
if "$venv/python" "$checker" self-test "$out" >"$out/self-test.log" 2>&1; then
  ok "check_manifests.py self-test ($(tail -n 1 "$out/self-test.log"))"
else
  cp "$out/self-test.log" "$out/last.log"
  not_ok "check_manifests.py self-test"
fi

echo "== Makefile recipes"
# Idempotent: the same commands each time, upgrade --install and apply, never
# a bare install or create. (The image tag's source hash is masked: sources
# edited between the two dry runs change it, as they should.)
mask_hash() { sed -E 's/-dev\.[0-9a-f]{12}/-dev.HASH/g' "$1"; }
if cmp -s <(mask_hash "$out/kick-start.1") <(mask_hash "$out/kick-start.2") &&
  grep -q 'helm upgrade --install ethpipe deploy/helm/ethpipe' "$out/kick-start.1" &&
  grep -q 'kubectl .*apply --filename -' "$out/kick-start.1" &&
  ! grep -Eq 'helm install|kubectl [^|]*create (namespace|secret)[^|]*$' "$out/kick-start.1" &&
  ! grep -E 'kubectl [^|]*create ' "$out/kick-start.1" | grep -vq -- '--dry-run=client'; then
  ok "make -n kick-start twice: the same idempotent commands (upgrade --install, apply)"
else
  cp "$out/kick-start.1" "$out/last.log"
  not_ok "make -n kick-start twice: the same idempotent commands (upgrade --install, apply)"
fi
make_n setup-k8 kick-start forward-port backfill FROM=2024-02-01 TO=2024-02-29 >"$out/all.n"
if grep -E '(^| )(kubectl|helm) ' "$out/all.n" | grep -v 'chart-check-ns' >"$out/last.log"; then
  not_ok "every kubectl and helm command uses NAMESPACE"
elif ! grep -q 'chart-check-ns' "$out/all.n"; then
  echo "no command names the namespace" >"$out/last.log"
  not_ok "every kubectl and helm command uses NAMESPACE"
else
  ok "every kubectl and helm command uses NAMESPACE ($(grep -cE '(^| )(kubectl|helm) ' "$out/all.n") commands)"
fi
if grep -E '(^| )(open|brew|pbcopy|xdg-open) ' "$out/all.n" >"$out/last.log"; then
  not_ok "no platform-specific commands in the Kubernetes recipes"
else
  ok "no platform-specific commands in the Kubernetes recipes"
fi

echo "== versions"
cargo_version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
app_version="$(sed -n 's/^appVersion: *"\(.*\)"/\1/p' "$chart/Chart.yaml")"
if [ -n "$cargo_version" ] && [ "$cargo_version" = "$app_version" ]; then
  ok "Chart appVersion $app_version = the Cargo workspace version"
else
  echo "Chart.yaml appVersion '$app_version', Cargo.toml version '$cargo_version'" >"$out/last.log"
  not_ok "Chart appVersion = the Cargo workspace version"
fi

echo "chart-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
