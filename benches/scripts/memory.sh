#!/usr/bin/env bash
# Peak RSS of `vault snapshot` (benches/README.md, section 5): it must not grow with the size of
# the index nor with the size of the input.
#
#   benches/scripts/memory.sh [WORKDIR]
#
# 1. Index size: two repositories with 1/2/4 KiB chunks, one indexing about 10^4 chunks (20 MiB
#    of random bytes), one about 10^6 (2 GiB); into each, the same new 256 MiB stream.
# 2. Input size: into a default repository, a 1 GiB and then a 10 GiB generated SQL-like stream
#    (`gen-stream`, never repeating itself, so every chunk is new).
# About 4 minutes and 6 GiB of disk on 2 cores; WORKDIR (default: a new temporary directory) is
# removed at the end unless given.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
given="${1:-}"
work="${given:-$(mktemp -d)}"
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release -q -p vault-cli -p vault-benches --bin vault --bin gen-stream \
    --manifest-path "$root/Cargo.toml"
vault="$root/target/release/vault"
gen="$root/target/release/gen-stream"
export VAULT_CACHE_DIR="$work/cache"
# Peak RSS (MiB) and wall seconds of one snapshot of stdin into repository $1.
peak() {
    local out
    out=$( { VAULT_REPO="$1" /usr/bin/time -f '%M %e' "$vault" snapshot -q --stdin \
        --stdin-name probe.sql >/dev/null; } 2>&1 | tail -1)
    awk -v m="${out% *}" -v s="${out#* }" 'BEGIN { printf "%.0f MiB | %.1f s", m / 1024, s }'
}
chunks() {
    VAULT_REPO="$1" "$vault" list --json \
        | python3 -c 'import json,sys; print(sum(s["summary"]["chunks_new"] for s in json.load(sys.stdin)))'
}

echo "| repository | chunks indexed before | input | peak RSS | wall |"
echo "|---|---:|---|---:|---:|"
for size in 20 2048; do
    repo="$work/tiny-chunks-$size"
    VAULT_REPO="$repo" "$vault" init -q --encryption none --chunk-min 1KiB --chunk-avg 2KiB --chunk-max 4KiB
    head -c "${size}M" /dev/urandom | VAULT_REPO="$repo" "$vault" snapshot -q --stdin \
        --stdin-name fill.bin >/dev/null
    n=$(chunks "$repo")
    echo "| 1/2/4 KiB chunks | $n | new 256 MiB stream | $("$gen" 256 7 | peak "$repo") |"
done
repo="$work/default"
VAULT_REPO="$repo" "$vault" init -q --encryption none
for size in 1024 10240; do
    n=$(chunks "$repo")
    echo "| defaults (4/16/64 KiB streams) | $n | new $((size / 1024)) GiB stream | $("$gen" "$size" "$size" | peak "$repo") |"
done
[ -n "$given" ] || rm -rf "$work"
