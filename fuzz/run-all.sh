#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30), after seeding the corpora and replaying
# fuzz/regressions/. Exits non-zero if a regression input or any target fails (crash, panic,
# timeout, out-of-memory); the failing input is in fuzz/artifacts/<target>/.
#
# Usage: fuzz/run-all.sh [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on a stable toolchain through
# RUSTC_BOOTSTRAP=1. Set VAULT_FUZZ_NO_SEED=1 to skip seeding (e.g. when corpora are cached).
set -uo pipefail

secs="${1:-30}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 2

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-all: cargo-fuzz is not installed; run: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
# The repository target writes a repository per run; on tmpfs its fsyncs cost nothing.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

if [ "${VAULT_FUZZ_NO_SEED:-0}" != 1 ]; then
    ./seed-corpus.sh || { echo "run-all: seeding failed" >&2; exit 1; }
fi

# Debug assertions and overflow checks on: encode_tree's debug_asserts are oracles too.
build=(--debug-assertions)
cargo fuzz build "${build[@]}" || { echo "run-all: build failed" >&2; exit 1; }
mapfile -t targets < <(cargo fuzz list)

failed=()
logs="$here/artifacts/logs"
mkdir -p "$logs"

# Every crash ever found stays a regression input: regressions/<target>-<what>.bin.
shopt -s nullglob
for input in regressions/*.bin; do
    name="$(basename "$input")"
    target="${name%%-*}"
    if ! printf '%s\n' "${targets[@]}" | grep -qx "$target"; then
        echo "run-all: $input names no target ($target)" >&2
        failed+=("regression:$name")
        continue
    fi
    if cargo fuzz run "${build[@]}" "$target" "$input" -- -runs=1 >"$logs/regression-$name.log" 2>&1; then
        echo "run-all: regression $name passes"
    else
        echo "run-all: regression $name FAILS (log: $logs/regression-$name.log)" >&2
        failed+=("regression:$name")
    fi
done

summary=()
for target in "${targets[@]}"; do
    log="$logs/$target.log"
    echo "run-all: fuzzing $target for ${secs}s (log: $log)"
    cargo fuzz run "${build[@]}" "$target" -- \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    if [ "$status" -eq 0 ]; then
        summary+=("$(printf '%-13s ok      %10s runs  %8s exec/s' "$target" "${runs:-?}" "${rate:-?}")")
    else
        summary+=("$(printf '%-13s FAILED  %10s runs  %8s exec/s' "$target" "${runs:-?}" "${rate:-?}")")
        failed+=("$target")
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to' "$log" | head -8 >&2
    fi
done

# Remove repository-target scratch directories of processes that are gone.
for dir in "${TMPDIR:-/tmp}"/vault-fuzz-repository/*; do
    [ -d "/proc/$(basename "$dir")" ] || rm -rf "$dir"
done

echo
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "run-all: FAILED: ${failed[*]}" >&2
    echo "run-all: reproducers are in $here/artifacts/<target>/; save each as regressions/<target>-<what>.bin" >&2
    exit 1
fi
echo "run-all: all ${#targets[@]} targets ran ${secs}s without a failure"
