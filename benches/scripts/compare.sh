#!/usr/bin/env bash
# End-to-end comparison of vault, vault-enc (vault on an encrypted repository), restic and borg
# (benches/README.md).
#
#   benches/scripts/compare.sh [--preset quick|full] [--tools vault,vault-enc,restic,borg] [compare options...]
#
# Installs restic, borgbackup and GNU time from Debian's packages when missing (as root),
# builds vault and the compare binary in release mode, and runs it; the Markdown table goes to
# stdout. The corpus and the repositories live in a temporary directory, removed at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
[ -x /usr/bin/time ] || missing+=(time)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "compare.sh: installing ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
cargo build --release -q -p vault-cli -p vault-benches --bin vault --bin compare \
    --manifest-path "$root/Cargo.toml"
exec "$root/target/release/compare" "$@"
