#!/usr/bin/env bash
# Restores into dev environments (issue 10), vault against restic in the same run on the same
# data (benches/README.md section 8):
#
#   benches/scripts/restore.sh [full|delta|bulk|all]...     (default all)
#
#   full   restore of a "CMS instance" (SQL-like dump + blob store) into an empty directory
#   delta  restore of a second snapshot (1% changed) over a copy of the first one's restore:
#          vault --delta --delete against restic --overwrite if-changed --delete (restic >= 0.17;
#          older restic has neither option and rewrites every file, without deleting anything)
#   bulk   three snapshots labelled app=a/b/c sharing 90% of their data: one
#          `vault restore --latest-per label:app` against three `restic restore --tag`,
#          one after another and all three at once
#
# Environment:
#   SIZE_MIB=600       dataset size (half dump, half blob store; ~2000 blob files at 600)
#   WORK=/work/bench/restore-bench   scratch (kept; generated data is reused if SIZE_MIB matches)
#   VAULT_VARIANTS="plain"           vault repositories to run: plain (--encryption none), enc
#                                    (repokey, VAULT_PASSWORD=bench); e.g. "plain enc"
#   RUNS=3             timed runs per restore (the median is reported; all are printed)
#   DROP_CACHES=1      as root: sync and drop the page cache before every timed run (default: warm)
#   VAULT=PATH         vault binary (default: target/release/vault, built when missing)
#   NO_BUILD=1         do not run `cargo build --release -p vault-cli` first
#
# restic always encrypts (RESTIC_PASSWORD=bench). Every timed restore is checked with `diff -r`
# against its source tree afterwards (outside the timing). Prints one line per timed run, then a
# Markdown table; the table also goes to $WORK/results-<case>.md.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
size_mib="${SIZE_MIB:-600}"
work="${WORK:-/work/bench/restore-bench}"
variants="${VAULT_VARIANTS:-plain}"
vault="${VAULT:-$here/target/release/vault}"
if [ -z "${NO_BUILD:-}" ] && [ -z "${VAULT:-}" ]; then
    (cd "$here" && cargo build --release -q -p vault-cli)
fi
[ -x "$vault" ] || { echo "restore.sh: $vault not found" >&2; exit 2; }
if ! command -v restic >/dev/null; then
    echo "restore.sh: installing restic" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends restic >/dev/null
fi
cases=("$@")
[ "${#cases[@]}" -gt 0 ] || cases=(all)
[ "${cases[*]}" = all ] && cases=(full delta bulk)
for c in "${cases[@]}"; do
    case "$c" in full|delta|bulk) ;; *) echo "restore.sh: unknown case $c (full, delta, bulk, all)" >&2; exit 2;; esac
done
mkdir -p "$work"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$work/restic-cache"
restic_help="$(restic restore --help)"
restic_overwrite=(); restic_delete=()
grep -q -- '--overwrite' <<<"$restic_help" && restic_overwrite=(--overwrite if-changed)
grep -q -- '--delete' <<<"$restic_help" && restic_delete=(--delete)
restic_version="$(restic version | cut -d' ' -f2)"

# --- data ----------------------------------------------------------------------------------
# gen.py init ROOT MIB SEED: a dump (db/cms.sql, 4 tables of INSERTs between DDL) and a blob
#   store (blobs/xx/NNNNN.bin, 4 KiB-2 MiB log-uniform-ish, random bytes), half the size each.
# gen.py mutate ROOT FRACTION SEED: change FRACTION of the dump's lines in ~20 runs (some runs
#   also insert lines, so offsets shift) and of the blob files (a third rewritten in part, a
#   third added, a third deleted).
cat >"$work/gen.py" <<'PY'
import os, random, sys
TABLES = ["cms_page", "cms_revision", "cms_user", "cms_comment"]
def row(rnd, t, i):
    return (f"INSERT INTO {t} (id, slug, author_id, created, body) VALUES ({i}, "
            f"'{t}-{rnd.randrange(10**7):07d}', {rnd.randrange(5000)}, '2026-{rnd.randrange(1,13):02d}-"
            f"{rnd.randrange(1,29):02d} {rnd.randrange(24):02d}:{rnd.randrange(60):02d}:00', "
            f"'<p>{' '.join(rnd.choice(WORDS) for _ in range(rnd.randrange(5, 40)))}</p>');\n")
WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt "
         "ut labore et dolore magna aliqua page revision editor draft published media").split()
def init(root, mib, seed):
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, "db"), exist_ok=True)
    budget = mib * 1024 * 1024 // 2
    with open(os.path.join(root, "db", "cms.sql"), "w") as f:
        f.write("-- CMS dump\nSET statement_timeout = 0;\nBEGIN;\n")
        written, i = 0, 0
        for n, t in enumerate(TABLES):
            f.write(f"\nCREATE TABLE {t} (id bigint PRIMARY KEY, slug text, author_id int, created timestamp, body text);\n")
            while written < budget * (n + 1) // len(TABLES):
                line = row(rnd, t, i); f.write(line); written += len(line); i += 1
            f.write(f"CREATE INDEX {t}_slug ON {t} (slug);\n")
        f.write("COMMIT;\n")
    total, n = 0, 0
    while total < budget:
        size = min(int(4096 * 512 ** (rnd.random() ** 2.5)), budget - total + 4096)
        d = os.path.join(root, "blobs", f"{n % 64:02x}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{n:05}.bin"), "wb") as f:
            f.write(rnd.randbytes(size))
        total += size; n += 1
def mutate(root, frac, seed):
    rnd = random.Random(seed)
    p = os.path.join(root, "db", "cms.sql")
    with open(p) as f:
        lines = f.readlines()
    want = max(1, int(len(lines) * frac))
    runs = 20
    starts = sorted(rnd.sample(range(len(lines)), runs))
    for k, s in enumerate(reversed(starts)):
        n = max(1, want // runs)
        for j in range(s, min(s + n, len(lines))):
            if lines[j].startswith("INSERT INTO"):
                t = lines[j].split()[2]
                lines[j] = row(rnd, t, j)
        if k % 3 == 0:
            t = lines[s].split()[2] if lines[s].startswith("INSERT INTO") else TABLES[0]
            lines[s:s] = [row(rnd, t, 10**9 + seed * 1000 + k * 10 + m) for m in range(rnd.randrange(1, 8))]
    with open(p + ".tmp", "w") as f:
        f.writelines(lines)
    os.replace(p + ".tmp", p)
    files = sorted(os.path.join(d, x) for d, _, fs in os.walk(os.path.join(root, "blobs")) for x in fs)
    n = max(3, int(len(files) * frac))
    pick = rnd.sample(files, 2 * (n // 3))
    for f in pick[: n // 3]:                       # rewritten in part (same size)
        size = os.path.getsize(f)
        with open(f, "r+b") as h:
            off = rnd.randrange(max(1, size - 65536)); h.seek(off); h.write(rnd.randbytes(min(65536, size)))
    for f in pick[n // 3:]:                        # deleted
        os.remove(f)
    for m in range(n // 3):                        # added
        d = os.path.join(root, "blobs", f"new{seed % 100:02}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{m:05}.bin"), "wb") as h:
            h.write(rnd.randbytes(int(4096 * 512 ** (rnd.random() ** 2.5))))
if sys.argv[1] == "init":
    init(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else:
    mutate(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
PY
gen() {   # the v1 tree, its 1% mutation v2, and the three bulk trees (a = v1, b and c 10% off)
    local stamp="$work/gen/stamp"
    [ "$(cat "$stamp" 2>/dev/null)" = "$size_mib-3" ] && return
    rm -rf "$work/gen"; mkdir -p "$work/gen"
    echo "generating ${size_mib} MiB" >&2
    python3 "$work/gen.py" init "$work/gen/v1" "$size_mib" 42
    cp -a "$work/gen/v1" "$work/gen/v2"; python3 "$work/gen.py" mutate "$work/gen/v2" 0.01 1
    cp -a "$work/gen/v1" "$work/gen/b"; python3 "$work/gen.py" mutate "$work/gen/b" 0.10 2
    cp -a "$work/gen/v1" "$work/gen/c"; python3 "$work/gen.py" mutate "$work/gen/c" 0.10 3
    echo "$size_mib-3" >"$stamp"
}
# put TREE PATH: make PATH (the path the snapshots record) hold TREE, mtimes kept
put() { rm -rf "$2"; mkdir -p "$(dirname "$2")"; cp -a "$1" "$2"; }

# --- timing --------------------------------------------------------------------------------
can_drop=""
if [ -n "${DROP_CACHES:-}" ]; then
    if [ "$(id -u)" = 0 ] && (sync; echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then can_drop=1
    else echo "restore.sh: cannot drop the page cache here; running warm" >&2; fi
fi
drop() { [ -z "$can_drop" ] || { sync; echo 3 >/proc/sys/vm/drop_caches; }; }
# tm NAME PREP CMD...: RUNS times: PREP (untimed: reset the target), then CMD timed (stdout to
# $work/out/NAME.out, stderr to .err); the median wall seconds in secs[NAME], FAIL on an error
runs="${RUNS:-3}"
declare -A secs
tm() {
    local name=$1 prep=$2 s e rc i all=(); shift 2
    mkdir -p "$work/out"
    for ((i = 0; i < runs; i++)); do
        "$prep"; sync; drop
        rc=0
        s=$(date +%s.%N)
        "$@" >"$work/out/$name.out" 2>"$work/out/$name.err" || rc=$?
        e=$(date +%s.%N)
        if [ "$rc" != 0 ]; then
            echo "FAILED ($name, exit $rc): $*" >&2; sed 's/^/  /' "$work/out/$name.err" | head -20 >&2
            secs[$name]=FAIL; return 0
        fi
        all+=("$(python3 -c "print(f'{$e-$s:.2f}')")")
    done
    secs[$name]=$(printf '%s\n' "${all[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
    echo "$name: median ${secs[$name]} s (runs: ${all[*]})" >&2
}
# check NAME EXPECTED GOT: diff -r, outside the timing; records ok / the first differences
declare -A check
chk() {
    local name=$1 d
    [ "${secs[$name]}" = FAIL ] && { check[$name]="-"; return; }
    if d=$(diff -r "$2" "$3" 2>&1); then check[$name]=ok
    else
        check[$name]="DIFFERS ($(grep -c . <<<"$d") lines of diff -r)"
        echo "$name: result differs from the source:" >&2; head -5 <<<"$d" | sed 's/^/  /' >&2
    fi
}
# report FIELD NAME: sum of FIELD over the report(s) in vault's --json output of NAME
report() {
    python3 - "$work/out/$2.out" "$1" <<'PY' 2>/dev/null || echo "-"
import json, sys
t = open(sys.argv[1]).read().strip()
j = json.loads(t)
rs = [r["report"] for r in j["restores"]] if "restores" in j else [j["report"]]
v = [r.get(sys.argv[2]) for r in rs]
print("-" if any(x is None for x in v) else f"{sum(v) / 1048576:.1f} MiB" if sys.argv[2].startswith("bytes") else sum(v))
PY
}
mibof() { du -sb --apparent-size "$@" | awk '{s+=$1} END {printf "%.1f", s/1048576}'; }
vinit() {  # vinit REPO VARIANT
    if [ "$2" = enc ]; then VAULT_PASSWORD=bench "$vault" --repo "$1" init --quiet --encryption repokey >/dev/null
    else "$vault" --repo "$1" init --quiet --encryption none >/dev/null; fi
}
v() {      # v VARIANT ARGS...: vault with the variant's password
    local var=$1; shift
    if [ "$var" = enc ]; then VAULT_PASSWORD=bench "$vault" "$@"; else "$vault" "$@"; fi
}
rows=()
row() {    # row LABEL VAULT_NAME RESTIC_NAME MIB NOTE
    local vs=${secs[$2]:-FAIL} rs=${secs[$3]:-FAIL} ratio="-" vm="-" rm="-"
    [ "$vs" != FAIL ] && vm=$(python3 -c "print(f'{$4/max($vs,0.001):.0f}')")
    [ "$rs" != FAIL ] && rm=$(python3 -c "print(f'{$4/max($rs,0.001):.0f}')")
    [ "$vs" != FAIL ] && [ "$rs" != FAIL ] && ratio=$(python3 -c "print(f'{$vs/$rs:.2f}')")
    rows+=("| $1 | $4 | $vs | $rs | **$ratio** | $vm | $rm | ${check[$2]:--} / ${check[$3]:--} | $5 |")
}

# --- cases ---------------------------------------------------------------------------------
src="$work/src/srv/cms"     # the path every snapshot of full and delta records
case_full() {
    local d="$work/full"; rm -rf "$d"; mkdir -p "$d"
    put "$work/gen/v1" "$src"
    restic -r "$d/restic" init >/dev/null
    restic -r "$d/restic" backup "$src" --quiet >/dev/null
    prep() { rm -rf "$d/t-restic" "$d"/t-vault-*; }
    tm full-restic prep restic -r "$d/restic" restore latest --target "$d/t-restic"
    chk full-restic "$src" "$d/t-restic$src"
    local m; m=$(mibof "$src")
    for var in $variants; do
        vinit "$d/vault-$var" "$var"
        v "$var" --repo "$d/vault-$var" snapshot "$src" --quiet >/dev/null
        tm "full-vault-$var" prep v "$var" --repo "$d/vault-$var" --json restore latest --target "$d/t-vault-$var"
        chk "full-vault-$var" "$src" "$d/t-vault-$var$src"
        row "full ($var vault)" "full-vault-$var" full-restic "$m" \
            "vault fetched $(report bytes_fetched "full-vault-$var"); wrote $(report bytes_written "full-vault-$var")"
    done
}
case_delta() {
    local d="$work/delta"; rm -rf "$d"; mkdir -p "$d"
    restic -r "$d/restic" init >/dev/null
    for var in $variants; do vinit "$d/vault-$var" "$var"; done
    put "$work/gen/v1" "$src"
    restic -r "$d/restic" backup "$src" --quiet >/dev/null
    for var in $variants; do v "$var" --repo "$d/vault-$var" snapshot "$src" --quiet >/dev/null; done
    # the first snapshot's restore, the tree every timed run starts from (made by plain restore)
    v "${variants%% *}" --repo "$d/vault-${variants%% *}" restore latest --target "$d/base" --quiet
    diff -r "$src" "$d/base$src" >/dev/null || { echo "delta: the base restore differs from the source" >&2; }
    put "$work/gen/v2" "$src"
    restic -r "$d/restic" backup "$src" --quiet >/dev/null
    for var in $variants; do v "$var" --repo "$d/vault-$var" snapshot "$src" --quiet >/dev/null; done
    prep() { rm -rf "$d/t-restic"; cp -a "$d/base" "$d/t-restic"; }
    prepv() { rm -rf "$d/t-vault"; cp -a "$d/base" "$d/t-vault"; }
    tm delta-restic prep restic -r "$d/restic" restore latest --target "$d/t-restic" "${restic_overwrite[@]}" "${restic_delete[@]}"
    chk delta-restic "$src" "$d/t-restic$src"
    local m note=""; m=$(mibof "$src")
    [ "${#restic_overwrite[@]}" -gt 0 ] || note="restic $restic_version: no --overwrite/--delete, rewrites every file and leaves deleted ones"
    for var in $variants; do
        tm "delta-vault-$var" prepv v "$var" --repo "$d/vault-$var" --json restore latest --target "$d/t-vault" --delta --delete
        chk "delta-vault-$var" "$src" "$d/t-vault$src"
        row "delta 1% ($var vault)" "delta-vault-$var" delta-restic "$m" \
            "vault fetched $(report bytes_fetched "delta-vault-$var"); wrote $(report bytes_written "delta-vault-$var"), reused $(report bytes_reused "delta-vault-$var"), unchanged $(report files_unchanged "delta-vault-$var") / patched $(report files_patched "delta-vault-$var") / written $(report files_written "delta-vault-$var") / deleted $(report deleted "delta-vault-$var") files${note:+; $note}"
    done
}
case_bulk() {
    local d="$work/bulk"; rm -rf "$d"; mkdir -p "$d"
    restic -r "$d/restic" init >/dev/null
    for var in $variants; do vinit "$d/vault-$var" "$var"; done
    local app tree m
    for app in a b c; do
        tree=v1; [ "$app" = a ] || tree=$app
        put "$work/gen/$tree" "$work/src/apps/$app/cms"
        restic -r "$d/restic" backup "$work/src/apps/$app/cms" --tag "$app" --quiet >/dev/null
        for var in $variants; do
            v "$var" --repo "$d/vault-$var" snapshot "$work/src/apps/$app/cms" --label "app=$app" --quiet >/dev/null
        done
    done
    sync
    m=$(mibof "$work/src/apps/a/cms" "$work/src/apps/b/cms" "$work/src/apps/c/cms")
    seq3() { for app in a b c; do restic -r "$d/restic" restore latest --tag "$app" --target "$d/t-restic-seq/$app" || return 1; done; }
    par3() {
        local pids=() rc=0
        for app in a b c; do restic -r "$d/restic" restore latest --tag "$app" --target "$d/t-restic-par/$app" & pids+=($!); done
        for p in "${pids[@]}"; do wait "$p" || rc=1; done; return $rc
    }
    prep() { rm -rf "$d"/t-*; }
    tm bulk-restic-seq prep seq3
    for app in a b c; do
        chk bulk-restic-seq "$work/src/apps/$app/cms" "$d/t-restic-seq/$app$work/src/apps/$app/cms"
        [ "${check[bulk-restic-seq]}" = ok ] || break
    done
    tm bulk-restic-par prep par3
    for app in a b c; do
        chk bulk-restic-par "$work/src/apps/$app/cms" "$d/t-restic-par/$app$work/src/apps/$app/cms"
        [ "${check[bulk-restic-par]}" = ok ] || break
    done
    for var in $variants; do
        tm "bulk-vault-$var" prep v "$var" --repo "$d/vault-$var" --json restore --latest-per label:app --target "$d/t-vault-$var/{label:app}"
        for app in a b c; do
            chk "bulk-vault-$var" "$work/src/apps/$app/cms" "$d/t-vault-$var/$app$work/src/apps/$app/cms"
            [ "${check[bulk-vault-$var]}" = ok ] || break
        done
        local note="vault fetched $(report bytes_fetched "bulk-vault-$var"), reused $(report bytes_reused "bulk-vault-$var"); wrote $(report bytes_written "bulk-vault-$var")"
        row "bulk 3 x 90% shared ($var vault vs restic sequential)" "bulk-vault-$var" bulk-restic-seq "$m" "$note"
        row "bulk 3 x 90% shared ($var vault vs restic 3 in parallel)" "bulk-vault-$var" bulk-restic-par "$m" ""
    done
}

gen
echo "restore.sh: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), vault $("$vault" --version | cut -d' ' -f2), restic $restic_version, cache $([ -n "$can_drop" ] && echo dropped || echo warm)" >&2
for c in "${cases[@]}"; do
    rows=()
    "case_$c"
    {
        echo "| case | MiB restored | vault s | restic s | vault/restic | vault MiB/s | restic MiB/s | check (vault / restic) | notes |"
        echo "|---|---:|---:|---:|---:|---:|---:|---|---|"
        printf '%s\n' "${rows[@]}"
    } | tee "$work/results-$c.md"
done
