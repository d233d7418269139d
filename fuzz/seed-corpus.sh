#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ with real repository objects.
#
# Builds the vault binary, makes two small repositories in a temporary directory (zstd and
# uncompressed blobs, tiny chunk sizes so that a 40 KiB file already needs chunk lists), takes a
# directory snapshot and a --stdin snapshot in each, and copies their config, snapshot manifests and
# packs into the corpus directories. Tree blobs, chunk-list blobs and pack tails are extracted from
# the packs by examples/extract.rs. The sealed-file test vectors in format-spec/vectors/ are seeds
# too; they are the only seeds of the prune-plan target (a finished prune deletes its plan).
#
# Seeds are named seed-*; earlier seeds are replaced on every run, while inputs the fuzzer found
# (named by their SHA-1) are kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
corpus="$here/corpus"
targets=(config manifest plan sealed pack pack_trailer tree chunk_list repository key_file encrypted segment)

echo "seed-corpus: building vault" >&2
# Without RUSTC_BOOTSTRAP (run-all.sh sets it for cargo-fuzz): it is part of cargo's
# fingerprint, and with it this would rebuild the whole workspace instead of reusing the build
# of `cargo build --release -p vault-cli` (README command 1).
(cd "$root" && env -u RUSTC_BOOTSTRAP cargo build --quiet --release -p vault-cli)
vault="${CARGO_TARGET_DIR:-$root/target}/release/vault"

work="$(mktemp -d "${TMPDIR:-/tmp}/vault-seed.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A small directory with every kind of entry a snapshot records (devices need root; skipped).
src="$work/src"
mkdir -p "$src/etc/app" "$src/data/nested/deeper" "$src/empty-dir"
printf 'port = 8080\nname = "demo"\n' > "$src/etc/app/app.toml"
printf 'hello\n' > "$src/data/hello.txt"
: > "$src/data/empty"
for i in $(seq 1 200); do echo "line $i of a log file with some repeated text"; done > "$src/data/nested/log.txt"
head -c 40000 /dev/urandom > "$src/data/nested/deeper/random.bin"    # > 64 chunks: chunk lists
ln -s ../etc/app/app.toml "$src/data/link-to-config"
ln "$src/data/hello.txt" "$src/data/hardlink-to-hello"
mkfifo "$src/data/fifo"
chmod 0640 "$src/etc/app/app.toml"

dump="$work/db.sql"
{
    echo "CREATE TABLE users (id integer primary key, name text);"
    for i in $(seq 1 1500); do echo "INSERT INTO users VALUES ($i, 'user number $i');"; done
} > "$dump"

for t in "${targets[@]}"; do
    mkdir -p "$corpus/$t"
    find "$corpus/$t" -maxdepth 1 -name 'seed-*' -delete
done

# Copies a file into corpus/<target>/seed-<sha1 of its content>.
seed() {
    local file="$1" target="$2" sum
    sum="$(sha1sum "$file" | cut -c1-40)"
    cp "$file" "$corpus/$target/seed-$sum"
}

packs=()
for compression in zstd:1 none; do
    repo="$work/repo-${compression%%:*}"
    export VAULT_REPO="$repo" VAULT_CACHE_DIR="$work/cache"
    "$vault" --quiet init --encryption none --chunk-min 64 --chunk-avg 256 --chunk-max 1024 --compression "$compression" >/dev/null
    "$vault" --quiet snapshot --tag seed "$src" >/dev/null
    "$vault" --quiet snapshot --stdin --stdin-name db.sql --label kind=dump < "$dump" >/dev/null
    # A label edit: a manifest with `origin`, `replaces` and `edited`.
    "$vault" --quiet label latest --add edited=yes >/dev/null
    seed "$repo/config" config
    seed "$repo/config" sealed
    for f in "$repo"/snapshots/*; do
        seed "$f" manifest
        seed "$f" sealed
    done
    for f in "$repo"/index/*; do
        seed "$f" segment
        seed "$f" sealed
    done
    for f in "$repo"/packs/*/*; do
        seed "$f" pack
        seed "$f" repository
        packs+=("$f")
    done
done

# An encrypted repository: its key file, config, manifests and packs seed the key-file and
# encrypted targets (their key differs from the target's fixed one: the seeds exercise the
# envelope and length checks before authentication).
repo="$work/repo-encrypted"
export VAULT_REPO="$repo" VAULT_CACHE_DIR="$work/cache" VAULT_PASSWORD=seed VAULT_KDF_MEMORY=64KiB VAULT_KDF_PASSES=1
"$vault" --quiet init --chunk-min 64 --chunk-avg 256 --chunk-max 1024 >/dev/null
"$vault" --quiet snapshot "$src" >/dev/null
for f in "$repo"/keys/*; do seed "$f" key_file; done
for f in "$repo"/snapshots/* "$repo"/packs/*/* "$repo"/config; do seed "$f" encrypted; done
unset VAULT_PASSWORD VAULT_KDF_MEMORY VAULT_KDF_PASSES

(cd "$here" && cargo run --quiet --example extract -- "$corpus" "${packs[@]}")

vectors="$root/format-spec/vectors"
for kind in config manifest plan; do
    seed "$vectors/$kind.bin" "$kind"
    seed "$vectors/$kind.bin" sealed
done
seed "$vectors/manifest-edited.bin" manifest
seed "$vectors/manifest-edited.bin" sealed
# Version 5: the only seed with a delta chunk and a base table (a snapshot of the small source
# above finds no similar chunks).
seed "$vectors/pack-delta.bin" pack
seed "$vectors/pack.bin" pack

for t in "${targets[@]}"; do
    printf 'seed-corpus: %-12s %3d seeds\n' "$t" "$(find "$corpus/$t" -maxdepth 1 -name 'seed-*' | wc -l)"
done
