#!/usr/bin/env bash
# Snapshot and restore throughput to a loopback S3 server (s3s-fs) against the local backend, and
# against restic's S3 backend on the same server, in one run (format-spec/11-remote.md).
#
#   benches/scripts/remote.sh [SIZE_MIB]      (default 512: half SQL-like text, half random)
#
# Needs s3s-fs (VAULT_S3S_FS, or on PATH: `cargo install s3s-fs@0.14.1 --features binary
# --locked`) and restic (installed from Debian's packages when missing, as root). Prints one
# line per step with wall time and MiB/s, then the ratios.
set -euo pipefail
size_mib="${1:-512}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
vault="$here/target/release/vault"
[ -x "$vault" ] || (cd "$here" && cargo build --release -p vault-cli)
s3s="${VAULT_S3S_FS:-$(command -v s3s-fs || true)}"
[ -x "$s3s" ] || { echo "remote.sh: s3s-fs not found; set VAULT_S3S_FS" >&2; exit 2; }
if ! command -v restic >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends restic >/dev/null
fi
work="$(mktemp -d /tmp/vault-remote-bench.XXXXXX)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/s3/bench" "$work/src"
python3 - "$work/src" "$size_mib" <<'PY'
import os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
with open(os.path.join(root, "dump.sql"), "w") as f:
    written = 0
    i = 0
    while written < mib * 512 * 1024:
        line = f"INSERT INTO docs VALUES ({i}, 'title {rnd.randrange(10**6)}', '{rnd.random():.12f}', 'body text {i % 977} lorem ipsum');\n"
        f.write(line); written += len(line); i += 1
os.makedirs(os.path.join(root, "assets"))
for n in range(mib // 4):
    with open(os.path.join(root, "assets", f"{n:05}.bin"), "wb") as f:
        f.write(rnd.randbytes(2 * 1024 * 1024))
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$s3s" --host 127.0.0.1 --port "$port" --access-key bench --secret-key benchsecret "$work/s3" >"$work/s3s.log" 2>&1 &
server=$!
sleep 1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export RESTIC_PASSWORD=bench VAULT_CACHE_DIR="$work/cache" RESTIC_CACHE_DIR="$work/restic-cache"
bytes=$(du -sb "$work/src" | cut -f1)
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; e=$(date +%s.%N); python3 -c "print(f'{$e-$s:.2f}')"; }
declare -A wall
run() { local name=$1; shift; wall[$name]=$(t "$@"); python3 -c "print(f'$name: ${wall[$name]} s, {$bytes/1048576/${wall[$name]}:.0f} MiB/s')"; }
# vault encrypted, like restic (which always encrypts).
export VAULT_PASSWORD=bench
"$vault" --repo "$work/local" init --quiet
"$vault" --repo "s3:http://127.0.0.1:$port/bench/vault" init --quiet
sync
run vault-local-snapshot "$vault" --repo "$work/local" snapshot "$work/src" --quiet
run vault-s3-snapshot "$vault" --repo "s3:http://127.0.0.1:$port/bench/vault" snapshot "$work/src" --quiet
restic -r "s3:http://127.0.0.1:$port/bench/restic" init >/dev/null
run restic-s3-snapshot restic -r "s3:http://127.0.0.1:$port/bench/restic" backup "$work/src" --quiet
run vault-local-restore "$vault" --repo "$work/local" restore latest --target "$work/r1" --quiet
run vault-s3-restore "$vault" --repo "s3:http://127.0.0.1:$port/bench/vault" restore latest --target "$work/r2" --quiet
run restic-s3-restore restic -r "s3:http://127.0.0.1:$port/bench/restic" restore latest --target "$work/r3" --quiet
diff -r "$work/src" "$work/r2$work/src" >/dev/null && echo "vault s3 restore byte-identical"
r() { python3 -c "print(f'$1: {${wall[$2]}/${wall[$3]}:.2f}')"; }
r "s3 / local, snapshot (wall)" vault-s3-snapshot vault-local-snapshot
r "s3 / local, restore (wall)" vault-s3-restore vault-local-restore
r "vault / restic on s3, snapshot (wall)" vault-s3-snapshot restic-s3-snapshot
r "vault / restic on s3, restore (wall)" vault-s3-restore restic-s3-restore
