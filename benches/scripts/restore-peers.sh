#!/usr/bin/env bash
# Restore wall time, vault (one or more binaries) against restic and borg, on repositories that
# already hold the data, interleaved in one run (benches/README.md section 11):
#
#   benches/scripts/restore-peers.sh tree SOURCE DIR   # make DIR: SOURCE snapshotted by each tool
#   benches/scripts/restore-peers.sh time DIR...       # time restores of the latest snapshot
#
# A DIR is either made by `tree` or is a `compare --work DIR` directory (vault/, restic/, borg/
# each with repo/ and cache/, and corpus/, the state the latest snapshot holds); the tools
# present in it are timed. `time` runs RUNS (default 5) rounds; in each, every tool restores
# the latest snapshot into a new directory, in an order that rotates by one tool per round, so
# drifts in load hit all. The restored copies are removed only after the last round: ext4 skips
# inodes freed in the last minutes when it allocates new ones, and creating 27,000 files right
# after removing 27,000 cost 10 s of system time here against 1 s on fresh inodes (so keep
# RUNS x tools x the corpus free on the disk). Printed: every timed run, then per
# DIR the median wall and CPU (user + sys) seconds per tool and each vault's wall ratio to the
# faster peer, and the machine's load average (wall times on a shared machine follow it). The
# first round's restores are compared with the corpus by `diff -r` (untimed).
#
# Environment:
#   VAULTS="name=PATH ..."   vault binaries to time (default: vault=target/release/vault); give
#                            two to compare builds A/B in the same run
#   RUNS=5                   rounds
#   TOOLS="restic borg"      peers to time (when their repository is in DIR)
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${RUNS:-5}"
vaults="${VAULTS:-vault=$here/target/release/vault}"
peers="${TOOLS:-restic borg}"
export RESTIC_PASSWORD=vault-bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes \
    BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

env_of() { # tool dir -> the tool's environment, as compare sets it (benches/src/compare/tools.rs)
    case "$1" in
        vault) echo "VAULT_REPO=$2/vault/repo VAULT_CACHE_DIR=$2/vault/cache" ;;
        restic) echo "RESTIC_REPOSITORY=$2/restic/repo RESTIC_CACHE_DIR=$2/restic/cache" ;;
        borg) echo "BORG_REPO=$2/borg/repo BORG_BASE_DIR=$2/borg/cache" ;;
    esac
}

make_tree() { # SOURCE DIR: a copy of SOURCE as the corpus, snapshotted by every tool
    local source="$1" dir="$2"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    rm -rf "$dir/corpus" && cp -a "$source" "$dir/corpus"
    local vault="${vaults%% *}"; vault="${vault#*=}"
    mkdir -p "$dir/vault" "$dir/restic" "$dir/borg"
    env $(env_of vault "$dir") "$vault" init --encryption none -q
    env $(env_of vault "$dir") "$vault" snapshot -q "$dir/corpus"
    env $(env_of restic "$dir") restic init -q
    env $(env_of restic "$dir") restic backup -q "$dir/corpus"
    env $(env_of borg "$dir") borg init -e none
    env $(env_of borg "$dir") borg create --compression zstd,1 ::all-0 "$dir/corpus"
    echo "$(find "$dir/corpus" -type f | wc -l) files, $(du -sm "$dir/corpus" | cut -f1) MiB"
}

# The command that restores DIR's latest snapshot with TOOL (vault binary PATH) into TARGET.
restore_cmd() { # tool path dir target
    case "$1" in
        vault) echo "env $(env_of vault "$3") $2 restore latest --target $4 -q" ;;
        restic) echo "env $(env_of restic "$3") restic restore latest --target $4 -q" ;;
        borg)
            local archive
            archive="$(env $(env_of borg "$3") borg list --short --last 1)"
            echo "cd $4 && env $(env_of borg "$3") borg extract ::$archive" ;;
    esac
}

time_dirs() {
    local dir name path tool t0 t1 i r
    for dir in "$@"; do
        dir="$(cd "$dir" && pwd)"
        local corpus="$dir/corpus" results="$dir/restore-times.txt" targets="$dir/restore-target"
        local target
        : >"$results"
        rm -rf "$targets"
        local players=()
        for v in $vaults; do players+=("vault:$v"); done
        for p in $peers; do [ -d "$dir/$p/repo" ] && players+=("$p:$p=$p"); done
        for ((r = 0; r < runs; r++)); do
            for ((i = 0; i < ${#players[@]}; i++)); do
                local player="${players[$(((i + r) % ${#players[@]}))]}"
                tool="${player%%:*}"; name="${player#*:}"; path="${name#*=}"; name="${name%%=*}"
                target="$targets/$r-$name"
                mkdir -p "$target"
                local cmd; cmd="$(restore_cmd "$tool" "$path" "$dir" "$target")"
                sync
                t0="$(date +%s.%N)"
                /usr/bin/time -f "%U %S" -o "$dir/cpu.txt" bash -c "$cmd" >/dev/null
                t1="$(date +%s.%N)"
                local s cpu; s="$(echo "$t1 - $t0" | bc)"
                cpu="$(awk '{ print $1 + $2 }' "$dir/cpu.txt")"
                echo "$(basename "$dir") round $r $name ${s}s ${cpu}s" | tee -a "$results" >&2
                if [ "$r" = 0 ]; then
                    diff -r "$corpus" "$target$corpus" >/dev/null \
                        || { echo "restore-peers.sh: $name's restore of $dir differs" >&2; exit 1; }
                fi
            done
        done
        rm -rf "$targets"
        echo "## $(basename "$dir"): median wall s of $runs runs ($(find "$corpus" -type f | wc -l) files, $(du -sm "$corpus" | cut -f1) MiB; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
        python3 - "$results" <<'PY'
import statistics, sys
times, cpus = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    times.setdefault(f[3], []).append(float(f[4].rstrip("s")))
    cpus.setdefault(f[3], []).append(float(f[5].rstrip("s")))
median = {t: statistics.median(v) for t, v in times.items()}
cpu = {t: statistics.median(v) for t, v in cpus.items()}
peers = [median[t] for t in ("restic", "borg") if t in median]
print("tool       wall s   CPU s")
for t, m in median.items():
    line = f"{t:<10} {m:6.2f}  {cpu[t]:6.2f}"
    if peers and t not in ("restic", "borg"):
        line += f"   wall {m / min(peers):.2f} of the faster peer"
    print(line)
PY
    done
}

case "${1:-}" in
    tree) shift; make_tree "$@" ;;
    time) shift; time_dirs "$@" ;;
    *) sed -n "2,24p" "$0"; exit 2 ;;
esac
