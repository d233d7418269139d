#!/usr/bin/env bash
# Snapshot and restore throughput to a loopback S3 server (s3s-fs) and a loopback sshd (SFTP)
# against the local backend, and against restic's S3 and SFTP backends on the same servers, in
# one run (format-spec/11-remote.md). The SFTP part runs when sshd is installed and we are root.
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
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
    mkdir -p -m 0755 /run/sshd "$work/ssh" "$work/sftp"
    ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host"
    ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/user"
    cp "$work/ssh/user.pub" "$work/ssh/authorized_keys"
    sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$work/ssh/sshd_config" <<CFG
Port $sport
ListenAddress 127.0.0.1
HostKey $work/ssh/host
AuthorizedKeysFile $work/ssh/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
PidFile $work/ssh/pid
Subsystem sftp internal-sftp
ForceCommand internal-sftp
CFG
    /usr/sbin/sshd -D -e -f "$work/ssh/sshd_config" 2>"$work/sshd.log" &
    sshd_pid=$!
    trap 'kill "$server" "$sshd_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
    sleep 1
    export VAULT_SFTP_KEY="$work/ssh/user" VAULT_SFTP_KNOWN_HOSTS=accept
    sftp_vault="sftp:root@127.0.0.1:$sport$work/sftp/vault"
    ssh_cmd="ssh -i $work/ssh/user -p $sport -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1 -s sftp"
    sftp_restic=(restic -r "sftp:root@127.0.0.1:$work/sftp/restic" -o "sftp.command=$ssh_cmd")
    "$vault" --repo "$sftp_vault" init --quiet
    "${sftp_restic[@]}" init >/dev/null
    run vault-sftp-snapshot "$vault" --repo "$sftp_vault" snapshot "$work/src" --quiet
    run restic-sftp-snapshot "${sftp_restic[@]}" backup "$work/src" --quiet
    run vault-sftp-restore "$vault" --repo "$sftp_vault" restore latest --target "$work/r4" --quiet
    run restic-sftp-restore "${sftp_restic[@]}" restore latest --target "$work/r5" --quiet
    diff -r "$work/src" "$work/r4$work/src" >/dev/null && echo "vault sftp restore byte-identical"
fi
r() { python3 -c "print(f'$1: {${wall[$2]}/${wall[$3]}:.2f}')"; }
r "s3 / local, snapshot (wall)" vault-s3-snapshot vault-local-snapshot
r "s3 / local, restore (wall)" vault-s3-restore vault-local-restore
r "vault / restic on s3, snapshot (wall)" vault-s3-snapshot restic-s3-snapshot
r "vault / restic on s3, restore (wall)" vault-s3-restore restic-s3-restore
if [ -n "${wall[vault-sftp-snapshot]:-}" ]; then
    r "sftp / local, snapshot (wall)" vault-sftp-snapshot vault-local-snapshot
    r "sftp / local, restore (wall)" vault-sftp-restore vault-local-restore
    r "vault / restic on sftp, snapshot (wall)" vault-sftp-snapshot restic-sftp-snapshot
    r "vault / restic on sftp, restore (wall)" vault-sftp-restore restic-sftp-restore
fi
