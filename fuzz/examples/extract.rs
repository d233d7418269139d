//! Seed extractor for `seed-corpus.sh`: decodes real pack files and writes
//! - every tree blob (raw, decompressed) to `<corpus>/tree/seed-<id>`,
//! - every chunk-list blob to `<corpus>/chunk_list/seed-<id>`,
//! - `pack size u64 LE | trailer | footer` of each pack to `<corpus>/pack_trailer/seed-<pack id>`.
//!
//! Usage: `cargo run --example extract -- <corpus dir> <pack file>...`

use std::path::Path;
use std::process::ExitCode;

use vault_engine::format::pack::{self, BlobKind};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("seed-{name}")), bytes)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((corpus, packs)) = args.split_first() else {
        eprintln!("usage: extract <corpus dir> <pack file>...");
        return ExitCode::from(2);
    };
    let corpus = Path::new(corpus);
    let (mut trees, mut lists) = (0, 0);
    for path in packs {
        let result = (|| -> Result<(), String> {
            let data = std::fs::read(path).map_err(|e| e.to_string())?;
            let entries = pack::decode_pack(&vault_engine::keys::Encryption::none(), &data)
                .map_err(|e| e.to_string())?;
            let range = vault_fuzz::trailer_range(&data).ok_or("no trailer")?;
            let mut tail = (data.len() as u64).to_le_bytes().to_vec();
            tail.extend_from_slice(&data[range.start..]);
            let pack_name = vault_engine::PackId::digest(&data).to_hex();
            write(&corpus.join("pack_trailer"), &pack_name, &tail).map_err(|e| e.to_string())?;
            for e in &entries {
                let dir = match e.kind {
                    BlobKind::Tree => "tree",
                    BlobKind::List => "chunk_list",
                    BlobKind::Chunk => continue,
                };
                let stored = vault_fuzz::stored_bytes(&data, e);
                let raw = pack::open_blob(
                    &vault_engine::keys::Encryption::none(),
                    e.id,
                    e.kind,
                    e.encoding,
                    e.raw_len,
                    stored,
                )
                .map_err(|err| format!("blob {}: {err}", e.id.to_hex()))?;
                write(&corpus.join(dir), &e.id.to_hex(), &raw).map_err(|e| e.to_string())?;
                if e.kind == BlobKind::Tree {
                    trees += 1;
                } else {
                    lists += 1;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("extract: {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "extract: {} packs, {trees} tree blobs, {lists} chunk-list blobs",
        packs.len()
    );
    ExitCode::SUCCESS
}
