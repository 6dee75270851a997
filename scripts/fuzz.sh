#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time, one after the
# other (`make fuzz`; docs/reliability.md, "Fuzzing").
#
#   FUZZ_SECONDS=60            time per target
#   FUZZ_TARGETS="a b"         which targets (default: every file of fuzz/fuzz_targets/:
#                              decode_transfer, abi_metadata, bigquery_row,
#                              bigquery_page, erc1155_logs)
#   FUZZ_TARGET_DIR=…          build output, apart from the main build's so a
#                              fuzz build (sanitizer flags) never invalidates it
#   FUZZ_WORK=…                the growing corpus and logs, outside the checkout
#   FUZZ_ARGS="-max_len=4096"  more libFuzzer flags
#
# Nightly without nightly: cargo fuzz passes unstable rustc flags
# (-Zsanitizer=address, -Cpasses=sancov-module, …) that a stable compiler
# refuses. This machine has only a stable toolchain and cannot download
# nightly, so RUSTC_BOOTSTRAP=1 lets the stable rustc accept them. It is set
# for the fuzz build only, never for the main build.
#
# The committed seeds in fuzz/corpus/<target>/ (and the dictionary
# fuzz/dict/<target>.dict, if any) are read, never written: new
# inputs go to $FUZZ_WORK/corpus/<target>/. A crash stops that target, leaves
# its input in fuzz/artifacts/<target>/ and makes this script fail; turn it
# into a regression #[test] in the decoder's module (see docs/reliability.md).
set -euo pipefail

cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/ethpipe-fuzz-target}"
FUZZ_WORK="${FUZZ_WORK:-$HOME/.cache/ethpipe-fuzz}"
FUZZ_ARGS="${FUZZ_ARGS:-}"
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"

export RUSTC_BOOTSTRAP=1
# The Makefile exports the main build's CARGO_TARGET_DIR; --target-dir wins,
# but drop it so nothing below can fall back to it.
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION (crates.io) into ~/.cargo/bin"
    nice -n 10 cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    targets=()
    for file in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$file" .rs)")
    done
fi

fuzz=(cargo fuzz)
common=(--fuzz-dir fuzz --target-dir "$FUZZ_TARGET_DIR")

echo "fuzz: building ${targets[*]} into $FUZZ_TARGET_DIR"
nice -n 10 "${fuzz[@]}" build "${common[@]}"

mkdir -p "$FUZZ_WORK/logs"
failed=()
summary=()
for target in "${targets[@]}"; do
    corpus="$FUZZ_WORK/corpus/$target"
    log="$FUZZ_WORK/logs/$target.log"
    mkdir -p "$corpus"
    dict=()
    if [[ -f "fuzz/dict/$target.dict" ]]; then
        dict=(-dict="fuzz/dict/$target.dict")
    fi
    echo "fuzz: $target for ${FUZZ_SECONDS}s (seeds fuzz/corpus/$target, corpus $corpus)"
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    if nice -n 10 "${fuzz[@]}" run "${common[@]}" "$target" "$corpus" "fuzz/corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${dict[@]}" $FUZZ_ARGS >"$log" 2>&1; then
        result="ok"
    else
        result="CRASH"
        failed+=("$target")
        grep -E "panicked at|^Error|ERROR: libFuzzer|SUMMARY|Test unit written to" "$log" | head -20 || true
        echo "fuzz: $target failed; full output in $log"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    seeds=$(find "$corpus" -type f | wc -l)
    summary+=("$(printf '%-16s %-6s %12s execs %6s corpus files' "$target" "$result" "${runs:-?}" "$seeds")")
done

echo
echo "fuzz: ${FUZZ_SECONDS}s per target"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz: crashes in ${failed[*]}: inputs are in fuzz/artifacts/<target>/" >&2
    exit 1
fi
