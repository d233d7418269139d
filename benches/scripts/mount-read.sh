#!/usr/bin/env bash
# Sequential reads through `vault mount` against `vault dump` of the same file (issue 18's goal:
# mount reads at least as fast as dump; benches/README.md section 9):
#
#   benches/scripts/mount-read.sh
#
# The repository (unencrypted, or repokey with ENC=1) holds one snapshot of two files:
#   big.bin   SIZE_MIB of mixed content: 1 MiB blocks alternating random bytes (incompressible)
#             and hex text (compresses about 2x), every block distinct (no dedup inside the file)
#   db.sql    a DUMP_MIB plain-SQL dump on its day 1 (`gen-dump DUMP_MIB 1 uniform`) snapshotted
#             after its day 0, so most of its chunks are deltas against day 0's (delta-heavy)
# and each file is read whole, interleaved: `vault dump latest PATH > /dev/null` against
# `cat MOUNT/latest/PATH > /dev/null`, each mount run on a fresh `vault mount` (so neither the
# kernel's page cache of the mounted file nor the mount's chunk cache carries over; the time is
# the `cat` alone, the mount's start is not counted; dump's time includes its process start).
#
# Environment:
#   SIZE_MIB=768       size of big.bin
#   DUMP_MIB=128       size of db.sql
#   RUNS=5             rounds; each round times dump then mount (the order alternates by round)
#   COLD=1             as root: sync and drop the page cache before every timed run, so the
#                      repository's pack files come from disk (default: warm, packs cached)
#   ENC=1              an encrypted repository (repokey, VAULT_PASSWORD=bench)
#   VAULTS="a=PATH b=PATH"  builds to compare (each gets its own rows; default: this tree's)
#   WORK=/work/bench/mount-read   scratch (kept; the repository is reused when the sizes match)
#   NO_BUILD=1         do not run `cargo build --release` first
#
# Prints one line per timed run, then a Markdown table (medians, MiB/s, and mount/dump as the
# ratio of throughputs: 1.0 or more meets the goal); the table also goes to $WORK/results.md.
# Every mount read is checked against the source with cmp once, outside the timing.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
size_mib="${SIZE_MIB:-768}"
dump_mib="${DUMP_MIB:-128}"
runs="${RUNS:-5}"
work="${WORK:-/work/bench/mount-read}"
target="${CARGO_TARGET_DIR:-$here/target}"
if [ -z "${NO_BUILD:-}" ]; then
    (cd "$here" && cargo build --release -q -p vault-cli -p vault-benches)
fi
vaults="${VAULTS:-this=$target/release/vault}"
gen_dump="$target/release/gen-dump"
for v in $vaults; do
    [ -x "${v#*=}" ] || { echo "mount-read.sh: ${v#*=} not found" >&2; exit 2; }
done
[ -x "$gen_dump" ] || { echo "mount-read.sh: $gen_dump not found (build vault-benches)" >&2; exit 2; }
command -v fusermount3 >/dev/null || { echo "mount-read.sh: fusermount3 missing (apt-get install fuse3)" >&2; exit 2; }
if [ -n "${COLD:-}" ] && ! [ -w /proc/sys/vm/drop_caches ]; then
    echo "mount-read.sh: COLD=1 needs root (to write /proc/sys/vm/drop_caches)" >&2; exit 2
fi

enc="${ENC:+enc}"
repo="$work/repo-${enc:-plain}-$size_mib-$dump_mib"
src="$work/src-$size_mib-$dump_mib"
mnt="$work/mnt"
export VAULT_CACHE_DIR="$work/cache" VAULT_PASSWORD=bench
first_vault="$(echo "$vaults" | awk '{print $1}')"; first_vault="${first_vault#*=}"
mkdir -p "$work" "$mnt"

# --- data and repository (made once) --------------------------------------------------------
if ! [ -f "$repo/.done" ]; then
    rm -rf "$repo" "$src" "$VAULT_CACHE_DIR"
    mkdir -p "$src"
    python3 - "$src/big.bin" "$size_mib" <<'PY'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    for i in range(mib):
        if i % 2 == 0:
            f.write(os.urandom(1 << 20))
        else:
            f.write(os.urandom(1 << 19).hex().encode())
PY
    "$gen_dump" "$dump_mib" 0 uniform >"$src/db.sql"
    "$first_vault" init -q --repo "$repo" --encryption "$([ -n "$enc" ] && echo repokey || echo none)"
    "$first_vault" snapshot -q --repo "$repo" "$src" >/dev/null
    "$gen_dump" "$dump_mib" 1 uniform >"$src/db.sql"
    "$first_vault" snapshot -q --repo "$repo" "$src" >/dev/null
    touch "$repo/.done"
fi

drop() { if [ -n "${COLD:-}" ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi; }
now() { date +%s.%N; }

# Starts `vault mount` ($1) on $mnt and waits until the kernel has it.
start_mount() {
    "$1" mount -q --repo "$repo" "$mnt" &
    mount_pid=$!
    for _ in $(seq 200); do
        mountpoint -q "$mnt" && return 0
        sleep 0.05
    done
    echo "mount-read.sh: $mnt not mounted after 10 s" >&2; exit 1
}
stop_mount() {
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt"
    wait "$mount_pid" || true
}
trap 'mountpoint -q "$mnt" && fusermount3 -u -z "$mnt"; true' EXIT

# One timed run: prints seconds.
time_dump() { # vault file
    drop; local t0; t0=$(now)
    "$1" dump -q --repo "$repo" latest "$src/$2" >/dev/null
    echo "$(now) - $t0" | bc
}
time_mount() { # vault file
    start_mount "$1"; drop; local t0 t1; t0=$(now)
    cat "$mnt/latest/$src/$2" >/dev/null
    t1=$(now); stop_mount
    echo "$t1 - $t0" | bc
}

# Correctness first, untimed: every build's mount serves the source bytes.
for v in $vaults; do
    start_mount "${v#*=}"
    for file in big.bin db.sql; do
        cmp "$mnt/latest/$src/$file" "$src/$file" || { echo "mount-read.sh: ${v%%=*}: $file differs" >&2; exit 1; }
    done
    stop_mount
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A times
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$runs"); do
    for file in big.bin db.sql; do
        for v in $vaults; do
            name="${v%%=*}"; bin="${v#*=}"
            if [ $((round % 2)) -eq 1 ]; then order="dump mount"; else order="mount dump"; fi
            for how in $order; do
                t="$("time_$how" "$bin" "$file")"
                times["$name $file $how"]+="$t "
                echo "round $round  $name  $file  $how  $t s"
            done
        done
    done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

cache="warm (pack files in the page cache)"
[ -n "${COLD:-}" ] && cache="cold (page cache dropped before every run)"
{
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $load_before before and $load_after after, $runs rounds, $cache, ${enc:-unencrypted}:"
    echo
    echo "| build | file | MiB | dump s | mount s | dump MiB/s | mount MiB/s | mount/dump |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for v in $vaults; do
        name="${v%%=*}"
        for file in big.bin db.sql; do
            mib="$(stat -c %s "$src/$file" | awk '{printf "%.0f", $1/1048576}')"
            d="$(tr ' ' '\n' <<<"${times["$name $file dump"]}" | grep . | median)"
            m="$(tr ' ' '\n' <<<"${times["$name $file mount"]}" | grep . | median)"
            awk -v n="$name" -v f="$file" -v mib="$mib" -v d="$d" -v m="$m" 'BEGIN {
                printf "| %s | %s | %d | %.2f | %.2f | %.0f | %.0f | %.2f |\n", n, f, mib, d, m, mib/d, mib/m, d/m }'
        done
    done
} | tee "$work/results.md"
