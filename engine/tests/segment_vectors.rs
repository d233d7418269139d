//! The index-segment test vector (format-spec/11-remote.md 11.4): `format-spec/vectors/segment.bin`
//! describes the pack vector `pack.bin`. Checked by the engine's decoder and by a reference
//! reader written from the spec alone; regenerate with
//!
//! ```text
//! VAULT_REGENERATE_VECTORS=1 cargo test -p vault-engine --test segment_vectors -- --ignored
//! ```

use std::path::PathBuf;

use serde_json::{json, Value};
use vault_engine::format::pack;
use vault_engine::format::segment::{self, SegmentPack};
use vault_engine::format::OBJECT_VERSION;
use vault_engine::keys::Encryption;
use vault_engine::PackId;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../format-spec/vectors")
}

fn read(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The segment's content: the pack vector, as its own trailer describes it.
fn expected() -> Vec<SegmentPack> {
    let bytes = read("pack.bin");
    vec![SegmentPack {
        id: PackId(*blake3::hash(&bytes).as_bytes()),
        size: bytes.len() as u64,
        entries: pack::decode_pack(&Encryption::none(), &bytes).expect("pack vector decodes"),
    }]
}

/// A record of the segment as the reference reader sees it.
struct Record {
    id: [u8; 32],
    size: u64,
    trailer: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Reads a segment from the spec alone (02 sealed-file envelope, 11.4 payload), unencrypted.
fn reference_read(file: &[u8]) -> Result<Vec<Record>, String> {
    if file.len() < 16 + 32 || &file[..8] != b"VAULTIDX" {
        return Err("not a segment".into());
    }
    if u32_at(file, 8) != OBJECT_VERSION {
        return Err("version".into());
    }
    let len = u32_at(file, 12) as usize;
    if file.len() != 16 + len + 32 {
        return Err("length".into());
    }
    if blake3::hash(&file[..16 + len]).as_bytes() != &file[16 + len..] {
        return Err("checksum".into());
    }
    let p = &file[16..16 + len];
    let count = u32_at(p, 0) as usize;
    let mut at = 4;
    let mut out = Vec::new();
    for _ in 0..count {
        let id: [u8; 32] = p.get(at..at + 32).ok_or("short")?.try_into().unwrap();
        let size = u64::from_le_bytes(p.get(at + 32..at + 40).ok_or("short")?.try_into().unwrap());
        let tlen = u32_at(p, at + 40) as usize;
        let trailer = p.get(at + 44..at + 44 + tlen).ok_or("short")?.to_vec();
        at += 44 + tlen;
        out.push(Record { id, size, trailer });
    }
    if at != p.len() {
        return Err("trailing bytes".into());
    }
    Ok(out)
}

fn describe(file: &[u8]) -> Value {
    let records = reference_read(file).expect("the vector reads");
    let len = u32_at(file, 12) as usize;
    json!({
        "structure": "index segment (11-remote.md 11.4): sealed file, magic VAULTIDX, describing pack.bin",
        "magic": "VAULTIDX",
        "version": OBJECT_VERSION,
        "payload_len": len,
        "pack_count": records.len(),
        "packs": records.iter().map(|r| json!({
            "pack_id": hex::encode(r.id),
            "pack_size": r.size,
            "trailer_len": r.trailer.len(),
            "trailer_blake3": hex::encode(blake3::hash(&r.trailer).as_bytes()),
            "trailer_is_the_packs_own": "the last trailer_len bytes before pack.bin's 12-byte footer",
        })).collect::<Vec<_>>(),
        "checksum": hex::encode(&file[16 + len..]),
        "segment_id": hex::encode(blake3::hash(file).as_bytes()),
    })
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap();
    out.push(b'\n');
    out
}

#[test]
#[ignore = "rewrites format-spec/vectors/segment.*; run with VAULT_REGENERATE_VECTORS=1"]
fn regenerate_segment_vector() {
    if std::env::var("VAULT_REGENERATE_VECTORS").as_deref() != Ok("1") {
        eprintln!("set VAULT_REGENERATE_VECTORS=1 to rewrite the segment vector");
        return;
    }
    let (_, file) = segment::encode(&Encryption::none(), &expected());
    std::fs::write(vectors_dir().join("segment.bin"), &file).unwrap();
    std::fs::write(vectors_dir().join("segment.json"), pretty(&describe(&file))).unwrap();
}

#[test]
fn segment_vector_decodes_and_matches_the_pack_it_describes() {
    let file = read("segment.bin");
    let decoded = segment::decode(&Encryption::none(), &file).expect("segment vector decodes");
    assert_eq!(decoded, expected());
    let (id, encoded) = segment::encode(&Encryption::none(), &decoded);
    assert_eq!(
        encoded, file,
        "the encoder reproduces the vector byte for byte"
    );
    assert_eq!(&id, blake3::hash(&file).as_bytes());
    let described: Value = serde_json::from_slice(&read("segment.json")).unwrap();
    assert_eq!(describe(&file), described);

    // The reference reader: the record is pack.bin, with pack.bin's own trailer bytes.
    let pack_bytes = read("pack.bin");
    let records = reference_read(&file).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(&r.id, blake3::hash(&pack_bytes).as_bytes());
    assert_eq!(r.size, pack_bytes.len() as u64);
    let footer_at = pack_bytes.len() - 12;
    let tlen = u32_at(&pack_bytes, footer_at) as usize;
    assert_eq!(r.trailer, pack_bytes[footer_at - tlen..footer_at]);
}

#[test]
fn segment_vector_rejects_every_flipped_byte_and_a_lying_pack_size() {
    let file = read("segment.bin");
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x01;
        assert!(
            segment::decode(&Encryption::none(), &bad).is_err(),
            "flip at {i}"
        );
    }
    assert!(segment::decode(&Encryption::none(), &file[..file.len() - 1]).is_err());
    // A pack said to be smaller than its blobs need is refused behind a valid envelope.
    let mut packs = expected();
    packs[0].size -= 13;
    let (_, lying) = segment::encode(&Encryption::none(), &packs);
    assert!(segment::decode(&Encryption::none(), &lying).is_err());
}
