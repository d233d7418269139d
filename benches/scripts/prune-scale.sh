#!/usr/bin/env bash
# Prune at scale: a repository with CHUNKS chunks (default 10^6) and SNAPSHOTS snapshots
# (default 200), then `forget --keep-last HALF` and `prune`; prints prune's wall time and peak RSS
# beside those of `vault verify` on the same repository (a peer measured in the same run).
#
#   benches/scripts/prune-scale.sh [CHUNKS] [SNAPSHOTS] [WORKDIR]
#
# The data is one file of CHUNKS x 2 KiB (chunk size 1/2/4 KiB at init, so it holds about CHUNKS
# chunks), snapshotted once and then SNAPSHOTS-1 more times with one small file changed each time
# (the big file is reused from the parent without being read). Needs GNU time (/usr/bin/time).
set -euo pipefail
chunks="${1:-1000000}"
snapshots="${2:-200}"
work="${3:-$(mktemp -d)}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cargo build --release -q -p vault-cli --manifest-path "$root/Cargo.toml"
vault="$root/target/release/vault"
export VAULT_REPO="$work/repo" VAULT_CACHE_DIR="$work/cache"
mkdir -p "$work/src"
measure() { # label, command...
    local label="$1"; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err"; exit 1; }
    read -r secs kib <"$work/time"
    printf '%-28s %8.1f s  %8.1f MiB peak RSS\n' "$label" "$secs" "$(echo "$kib/1024" | bc -l)"
}
"$vault" init -q --encryption none --chunk-min 1KiB --chunk-avg 2KiB --chunk-max 4KiB
head -c "$((chunks * 2048))" /dev/urandom >"$work/src/big.bin"
measure "first snapshot" "$vault" snapshot -q --time 2026-01-01T00:00:00Z "$work/src"
for i in $(seq 2 "$snapshots"); do
    echo "$i" >"$work/src/small-$((i % 7)).txt"
    "$vault" snapshot -q --time "$(date -u -d "2026-01-01 +$i hours" +%Y-%m-%dT%H:%M:%SZ)" "$work/src" >/dev/null
done
echo "repository: $(du -sh "$VAULT_REPO" | cut -f1), $("$vault" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') snapshots"
measure "verify (structure)" "$vault" verify
"$vault" forget -q --keep-last "$((snapshots / 2))"
measure "prune" "$vault" prune --json
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print({k: r[k] for k in ("snapshots","snapshots_deleted","packs_before","packs_deleted","packs_repacked","bytes_freed")})' "$work/out"
