#!/usr/bin/env bash
# Start-up latency (benches/README.md): time from process start to the first read of stdin,
# for `vault snapshot --stdin` and `restic backup --stdin`, on an empty repository and on one
# that indexes about 10^6 blobs.
#
#   benches/scripts/startup-latency.sh [VAULT_MiB] [RESTIC_FILES] [RUNS] [WORKDIR]
#
# vault: VAULT_MiB (default 2560) of random bytes through stdin into a repository made with
# 1/2/4 KiB chunks: about 1.0 x 10^6 chunks. restic cannot make chunks that small (its minimum
# is 512 KiB), so its repository gets RESTIC_FILES (default 10^6) files of 1 KiB, one blob each.
# Building both takes about 5 minutes and 4 GiB of disk on 2 cores; WORKDIR is kept.
set -euo pipefail
vault_mib="${1:-2560}"
restic_files="${2:-1000000}"
runs="${3:-9}"
work="${4:-$(mktemp -d)}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic; }
cargo build --release -q -p vault-cli -p vault-benches --bin vault --bin startup-latency \
    --manifest-path "$root/Cargo.toml"
vault="$root/target/release/vault"
probe() { "$root/target/release/startup-latency" --runs "$runs" -- "$@" | tail -1; }
mkdir -p "$work"
export VAULT_CACHE_DIR="$work/vault-cache" RESTIC_CACHE_DIR="$work/restic-cache"
export RESTIC_PASSWORD=vault-bench # restic < 0.17 has no --insecure-no-password

for repo in vault-empty vault-big; do
    [ -e "$work/$repo/config" ] || VAULT_REPO="$work/$repo" "$vault" init -q --encryption none \
        --chunk-min 1KiB --chunk-avg 2KiB --chunk-max 4KiB
done
if [ "$(VAULT_REPO="$work/vault-big" "$vault" list --json)" = "[]" ]; then
    echo "filling vault-big with $vault_mib MiB of random bytes" >&2
    head -c "${vault_mib}M" /dev/urandom | VAULT_REPO="$work/vault-big" \
        /usr/bin/time -f 'vault-big: %e s wall, %M KiB peak RSS' "$vault" snapshot -q --stdin --stdin-name data.bin >/dev/null
fi
chunks=$(VAULT_REPO="$work/vault-big" "$vault" list --json \
    | python3 -c 'import json,sys; print(sum(s["summary"]["chunks_new"] for s in json.load(sys.stdin)))')

for repo in restic-empty restic-big; do
    [ -e "$work/$repo/config" ] || RESTIC_REPOSITORY="$work/$repo" restic init -q
done
if [ ! -d "$work/small" ]; then
    echo "writing $restic_files files of 1 KiB and backing them up with restic" >&2
    python3 - "$work/small" "$restic_files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range((n + 999) // 1000):
    p = f'{root}/{d:04d}'
    os.makedirs(p, exist_ok=True)
    for f in range(min(1000, n - d * 1000)):
        with open(f'{p}/{f:04d}.bin', 'wb') as fh:
            fh.write(os.urandom(1024))
PY
    RESTIC_REPOSITORY="$work/restic-big" /usr/bin/time -f 'restic-big: %e s wall, %M KiB peak RSS' \
        restic backup -q "$work/small"
fi
blobs=$(RESTIC_REPOSITORY="$work/restic-big" restic stats -q --mode raw-data --json \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_blob_count"])')

echo "| repository | blobs indexed | first stdin read (median of $runs) |"
echo "|---|---:|---|"
for repo in vault-empty vault-big; do
    n=0; [ "$repo" = vault-big ] && n="$chunks"
    echo "| $repo | $n | $(VAULT_REPO="$work/$repo" probe "$vault" snapshot -q --stdin --stdin-name probe.bin) |"
done
for repo in restic-empty restic-big; do
    n=0; [ "$repo" = restic-big ] && n="$blobs"
    echo "| $repo | $n | $(RESTIC_REPOSITORY="$work/$repo" probe restic backup -q --stdin --stdin-filename probe.bin) |"
done
# restic's floor: opening the repository key (scrypt) without loading the index.
for repo in restic-empty restic-big; do
    echo "| $repo: \`restic cat config\` (key only, no index) | | $(RESTIC_REPOSITORY="$work/$repo" \
        /usr/bin/time -f '%e s' restic cat config 2>&1 >/dev/null | tail -1) |"
done
echo "work directory: $work" >&2
