//! Format test vectors: the files in `format-spec/vectors/`.
//!
//! The non-ignored tests decode every vector and compare it with the values built below,
//! re-encode those values and compare with the exact bytes, check that each `.json` description
//! still describes its `.bin`, and check that a single flipped byte is rejected wherever the
//! format claims to detect it.
//!
//! `regenerate_vectors` (ignored) rewrites the files from the values below. It only writes when
//! `VAULT_REGENERATE_VECTORS=1`:
//!
//! ```text
//! VAULT_REGENERATE_VECTORS=1 cargo test -p vault-engine --test vectors -- --ignored
//! ```
//!
//! Everything here is deterministic: fixed ids, fixed timestamps, no randomness. Pack vectors
//! contain zstd output, which depends on the zstd library version (pinned by `Cargo.lock`); the
//! format does not require byte-identical compression, so the tests re-encode packs from the
//! stored bytes and only check that the compressor still makes the same raw/zstd choice.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use vault_engine::format::config::{self, ChunkerConfig, ChunkerParams, Compression, Config};
use vault_engine::format::manifest::{
    self, Manifest, SnapshotSummary, SourceProblem, SourceRecord,
};
use vault_engine::format::pack::{self, BlobEntry, BlobKind, Encoding, PackBuilder};
use vault_engine::format::plan::{self, Plan, PLAN_MAGIC};
use vault_engine::format::sealed;
use vault_engine::format::tree::{
    self, ChunkRef, Content, Entry, EntryKind, FileData, ListRef, Metadata, Tree,
};
use vault_engine::format::FORMAT_VERSION;
use vault_engine::id::{ChunkId, ListId, PackId, SnapshotId, TreeId};
use vault_engine::snapshot::{compress_blob, ContentChunker};

// ---------------------------------------------------------------------------------------------
// Where the vectors live.

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../format-spec/vectors")
}

fn read_vector(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_json(name: &str) -> Value {
    serde_json::from_slice(&read_vector(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// The values the vectors encode.

/// Compressible content: stored with zstd.
fn chunk_a() -> Vec<u8> {
    let mut s = String::from("vault format test vector: chunk A\n");
    for i in 0..24 {
        s.push_str(&format!(
            "line {i:02}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    s.into_bytes()
}

/// Shorter than 64 bytes: always stored raw.
fn chunk_b() -> Vec<u8> {
    b"hello, vault\n".to_vec()
}

fn chunk_ref(data: &[u8]) -> ChunkRef {
    ChunkRef {
        id: ChunkId::digest(data),
        len: data.len() as u32,
    }
}

/// The chunk list vector: A, B, A.
fn chunk_list() -> Vec<ChunkRef> {
    vec![
        chunk_ref(&chunk_a()),
        chunk_ref(&chunk_b()),
        chunk_ref(&chunk_a()),
    ]
}

fn list_ref() -> ListRef {
    let refs = chunk_list();
    ListRef {
        id: ListId::digest(&tree::encode_list(&refs)),
        size: refs.iter().map(|r| r.len as u64).sum(),
        chunks: refs.len() as u32,
    }
}

#[allow(clippy::too_many_arguments)]
fn meta(
    mode: u32,
    uid: u32,
    gid: u32,
    user: &str,
    group: &str,
    mtime: (i64, u32),
    ctime: (i64, u32),
    dev: u64,
    inode: u64,
) -> Metadata {
    Metadata {
        mode,
        uid,
        gid,
        user: user.into(),
        group: group.into(),
        mtime_sec: mtime.0,
        mtime_nsec: mtime.1,
        ctime_sec: ctime.0,
        ctime_nsec: ctime.1,
        dev,
        inode,
    }
}

const DEV: u64 = 0x0803;

fn file_inline_entry() -> Entry {
    let refs = vec![chunk_ref(&chunk_a()), chunk_ref(&chunk_b())];
    Entry {
        name: b"file-inline".to_vec(),
        meta: meta(
            0o644,
            1000,
            100,
            "alice",
            "users",
            (1_700_000_000, 123_456_789),
            (1_700_000_100, 5),
            DEV,
            4242,
        ),
        kind: EntryKind::File(FileData {
            size: refs.iter().map(|r| r.len as u64).sum(),
            profile: 1,
            hardlinked: true,
            content: Content::Inline(refs),
        }),
    }
}

fn file_lists_entry() -> Entry {
    let list = list_ref();
    Entry {
        name: b"file-lists".to_vec(),
        meta: meta(
            0o600,
            0,
            0,
            "root",
            "root",
            (1_600_000_000, 0),
            (1_600_000_000, 0),
            DEV,
            4243,
        ),
        kind: EntryKind::File(FileData {
            size: list.size,
            profile: 0,
            hardlinked: false,
            content: Content::Lists(vec![list]),
        }),
    }
}

fn tree_empty() -> Tree {
    Tree::default()
}

fn tree_file_inline() -> Tree {
    Tree {
        entries: vec![file_inline_entry()],
    }
}

fn tree_file_lists() -> Tree {
    Tree {
        entries: vec![file_lists_entry()],
    }
}

/// One entry of every kind, plus a second link of `file-inline` and a name that is not UTF-8.
fn tree_all_kinds() -> Tree {
    let empty = TreeId::digest(&tree::encode_tree(&tree_empty()));
    let mut hardlink = file_inline_entry();
    hardlink.name = b"hardlink".to_vec();
    let entries = vec![
        Entry {
            name: b"block-device".to_vec(),
            meta: meta(
                0o660,
                0,
                6,
                "root",
                "disk",
                (1_500_000_000, 1),
                (1_500_000_000, 2),
                5,
                120,
            ),
            kind: EntryKind::BlockDevice { rdev: 0x0801 },
        },
        Entry {
            name: b"char-device".to_vec(),
            meta: meta(
                0o666,
                0,
                0,
                "root",
                "root",
                (1_500_000_000, 3),
                (1_500_000_000, 4),
                5,
                121,
            ),
            kind: EntryKind::CharDevice { rdev: 0x0103 },
        },
        Entry {
            name: b"directory".to_vec(),
            meta: meta(
                0o1777,
                0,
                0,
                "root",
                "root",
                (-86_400, 999_999_999),
                (0, 0),
                DEV,
                2,
            ),
            kind: EntryKind::Dir(empty),
        },
        Entry {
            name: b"fifo".to_vec(),
            meta: meta(
                0o640,
                4_294_967_294,
                4_294_967_294,
                "",
                "",
                (1_700_000_001, 0),
                (1_700_000_001, 0),
                DEV,
                77,
            ),
            kind: EntryKind::Fifo,
        },
        file_inline_entry(),
        file_lists_entry(),
        hardlink,
        Entry {
            name: b"symlink".to_vec(),
            meta: meta(
                0o777,
                1000,
                100,
                "alice",
                "users",
                (1_700_000_002, 500),
                (1_700_000_002, 500),
                DEV,
                78,
            ),
            kind: EntryKind::Symlink(b"../target/of the link".to_vec()),
        },
        Entry {
            name: b"\xfe\xff not UTF-8".to_vec(),
            meta: meta(
                0o4755,
                1000,
                100,
                "alice",
                "users",
                (1_700_000_003, 0),
                (1_700_000_003, 0),
                DEV,
                79,
            ),
            kind: EntryKind::Fifo,
        },
    ];
    Tree { entries }
}

fn config_value() -> Config {
    let id: Vec<u8> = (0u8..32).collect();
    Config {
        version: FORMAT_VERSION,
        id: hex(&id),
        created: "2024-05-06T07:00:00Z".into(),
        chunker: ChunkerConfig {
            stream: ChunkerParams {
                min: 4 << 10,
                avg: 16 << 10,
                max: 64 << 10,
            },
            file: ChunkerParams {
                min: 256 << 10,
                avg: 1 << 20,
                max: 4 << 20,
            },
        },
        compression: Compression::Zstd { level: 1 },
        pack_target_size: 16 << 20,
    }
}

fn manifest_value() -> Manifest {
    let root = TreeId::digest(&tree::encode_tree(&tree_all_kinds()));
    let parent = SnapshotId(*blake3::hash(b"vault test vector: parent snapshot").as_bytes());
    let mut labels = BTreeMap::new();
    labels.insert("env".to_string(), "test".to_string());
    labels.insert("owner".to_string(), "ops".to_string());
    Manifest {
        version: FORMAT_VERSION,
        time: "2024-05-06T07:08:09.5Z".into(),
        host: "db1.example.org".into(),
        paths: vec!["/db/app.sql".into(), "/srv/www".into()],
        sources: vec![
            SourceRecord {
                kind: "command".into(),
                path: "/db/app.sql".into(),
                command: Some("pg_dump app".into()),
            },
            SourceRecord {
                kind: "path".into(),
                path: "/srv/www".into(),
                command: None,
            },
        ],
        tags: vec!["daily".into(), "vectors".into()],
        labels,
        tree: root.to_hex(),
        parent: Some(parent.to_hex()),
        complete: false,
        summary: SnapshotSummary {
            files: 12,
            dirs: 3,
            files_unchanged: 7,
            bytes_total: 123_456,
            bytes_read: 23_456,
            bytes_added: 4_567,
            chunks_total: 20,
            chunks_new: 4,
            trees_new: 2,
            duration_secs: 1.25,
            errors: vec![SourceProblem {
                path: "/srv/www/private".into(),
                reason: "cannot list directory: Permission denied (os error 13)".into(),
            }],
        },
        program_version: "0.1.0".into(),
    }
}

/// A pack id that names no pack of the vectors: the plain `BLAKE3` of a fixed string.
fn fixed_pack_id(what: &str) -> PackId {
    PackId(*blake3::hash(format!("vault test vector: {what}").as_bytes()).as_bytes())
}

/// The prune plan vector: two condemned packs, one pack written by the prune, and the manifest
/// vector as the one snapshot marked live.
fn plan_value() -> Plan {
    let (snapshot, _) = manifest::encode(&manifest_value());
    Plan {
        version: FORMAT_VERSION,
        time: "2024-05-07T03:00:00Z".into(),
        host: "db1.example.org".into(),
        condemned: vec![
            fixed_pack_id("condemned pack 1").to_hex(),
            fixed_pack_id("condemned pack 2").to_hex(),
        ],
        written: vec![fixed_pack_id("pack written by prune").to_hex()],
        snapshots: vec![snapshot.to_hex()],
    }
}

/// The blobs of the pack vector: (kind, raw bytes). Encodings are what the compressor chooses at
/// zstd level 1.
fn pack_blobs() -> Vec<(BlobKind, Vec<u8>)> {
    vec![
        (BlobKind::Chunk, chunk_a()),
        (BlobKind::Chunk, chunk_b()),
        (BlobKind::List, tree::encode_list(&chunk_list())),
    ]
}

const PACK_ENCODINGS: [Encoding; 3] = [Encoding::Zstd, Encoding::Raw, Encoding::Zstd];

fn build_pack() -> (PackId, Vec<u8>, Vec<BlobEntry>) {
    let mut builder = PackBuilder::new();
    for (kind, raw) in pack_blobs() {
        let (encoding, stored) = compress_blob(&raw, Compression::Zstd { level: 1 });
        builder.add(kind.digest(&raw), kind, encoding, raw.len() as u32, &stored);
    }
    builder.finish()
}

/// The chunking vector's input: xorshift64 bytes (see `format-spec/vectors/chunking.json`).
fn chunking_input() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..CHUNKING_INPUT_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

const CHUNKING_INPUT_LEN: usize = 96 * 1024;
const ZEROS_LEN: usize = 200_000;

fn chunking_cases() -> Vec<(&'static str, ChunkerParams)> {
    vec![
        (
            "stream defaults",
            ChunkerParams {
                min: 4 << 10,
                avg: 16 << 10,
                max: 64 << 10,
            },
        ),
        (
            "small",
            ChunkerParams {
                min: 256,
                avg: 1024,
                max: 4096,
            },
        ),
        (
            "file defaults",
            ChunkerParams {
                min: 256 << 10,
                avg: 1 << 20,
                max: 4 << 20,
            },
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// A reference FastCDC v2020 (normalization level 1) written from `03-chunking.md`, to show the
// spec's algorithm is the one the engine runs.

const MASKS: [u64; 26] = [
    0,
    0,
    0,
    0,
    0,
    0x0000000001804110,
    0x0000000001803110,
    0x0000000018035100,
    0x0000001800035300,
    0x0000019000353000,
    0x0000590003530000,
    0x0000d90003530000,
    0x0000d90103530000,
    0x0000d90303530000,
    0x0000d90313530000,
    0x0000d90f03530000,
    0x0000d90303537000,
    0x0000d90703537000,
    0x0000d90707537000,
    0x0000d91707537000,
    0x0000d91747537000,
    0x0000d91767537000,
    0x0000d93767537000,
    0x0000d93777537000,
    0x0000d93777577000,
    0x0000db3777577000,
];

fn gear() -> Vec<u64> {
    fastcdc::v2020::get_gear_with_seed(0).0.to_vec()
}

fn reference_masks(avg: u32) -> (u64, u64) {
    let bits = (avg as f64).log2().round() as usize;
    (MASKS[bits + 1], MASKS[bits - 1])
}

/// Length of the first chunk of `data` (spec section "The cut function", byte-at-a-time form).
fn reference_cut(data: &[u8], p: ChunkerParams, gear: &[u64]) -> usize {
    let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
    let mut n = data.len();
    if n <= min {
        return n;
    }
    let mut center = avg;
    if n > max {
        n = max;
    } else if n < center {
        center = n;
    }
    let (mask_s, mask_l) = reference_masks(p.avg);
    let mut h: u64 = 0;
    // Candidates are tested in pairs, so an odd bound is rounded down to even.
    let first = min / 2 * 2;
    let switch = center / 2 * 2;
    let last = n / 2 * 2;
    for (i, &byte) in data.iter().enumerate().take(last).skip(first) {
        h = (h << 1).wrapping_add(gear[byte as usize]);
        let mask = if i < switch { mask_s } else { mask_l };
        if h & mask == 0 {
            return i;
        }
    }
    n
}

fn reference_chunks(data: &[u8], p: ChunkerParams) -> Vec<usize> {
    let gear = gear();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let len = reference_cut(&data[pos..], p, &gear);
        out.push(len);
        pos += len;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Descriptions (.json files). Built from decoded values, so a test can compare.

fn kind_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Chunk => "chunk",
        BlobKind::Tree => "tree",
        BlobKind::List => "list",
    }
}

fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Raw => "raw",
        Encoding::Zstd => "zstd",
    }
}

fn describe_meta(m: &Metadata) -> Value {
    json!({
        "mode": format!("{:04o}", m.mode),
        "uid": m.uid,
        "gid": m.gid,
        "user": m.user,
        "group": m.group,
        "mtime_sec": m.mtime_sec,
        "mtime_nsec": m.mtime_nsec,
        "ctime_sec": m.ctime_sec,
        "ctime_nsec": m.ctime_nsec,
        "dev": m.dev,
        "inode": m.inode,
    })
}

fn describe_refs(refs: &[ChunkRef]) -> Value {
    refs.iter()
        .map(|r| json!({ "id": r.id.to_hex(), "len": r.len }))
        .collect()
}

fn describe_entry(e: &Entry, offset: usize) -> Value {
    let mut v = json!({
        "offset": offset,
        "name": String::from_utf8_lossy(&e.name),
        "name_hex": hex(&e.name),
        "meta": describe_meta(&e.meta),
    });
    let (code, payload) = match &e.kind {
        EntryKind::File(f) => {
            let content = match &f.content {
                Content::Inline(refs) => {
                    json!({ "form": "inline", "form_code": 0, "chunks": describe_refs(refs) })
                }
                Content::Lists(lists) => json!({
                    "form": "lists",
                    "form_code": 1,
                    "lists": lists.iter().map(|l| json!({ "id": l.id.to_hex(), "size": l.size, "chunks": l.chunks })).collect::<Vec<_>>(),
                }),
            };
            (
                1,
                json!({
                    "size": f.size,
                    "profile": match f.profile { 0 => "stream", 1 => "file", _ => "invalid" },
                    "profile_code": f.profile,
                    "hardlinked": f.hardlinked,
                    "content": content,
                }),
            )
        }
        EntryKind::Dir(id) => (2, json!({ "tree": id.to_hex() })),
        EntryKind::Symlink(t) => (
            3,
            json!({ "target": String::from_utf8_lossy(t), "target_hex": hex(t) }),
        ),
        EntryKind::Fifo => (4, json!({})),
        EntryKind::CharDevice { rdev } => (5, json!({ "rdev": rdev })),
        EntryKind::BlockDevice { rdev } => (6, json!({ "rdev": rdev })),
    };
    v["kind"] = json!(e.kind.name());
    v["kind_code"] = json!(code);
    v["payload"] = payload;
    v
}

fn describe_tree(bytes: &[u8], note: &str) -> Value {
    let tree = tree::decode_tree(bytes).expect("vector decodes");
    let mut entries = Vec::new();
    for (i, e) in tree.entries.iter().enumerate() {
        // Offset of entry i = length of the encoding of the first i entries.
        let prefix = Tree {
            entries: tree.entries[..i].to_vec(),
        };
        entries.push(describe_entry(e, tree::encode_tree(&prefix).len()));
    }
    json!({
        "structure": "tree blob (05-trees.md)",
        "note": note,
        "length": bytes.len(),
        "id": TreeId::digest(bytes).to_hex(),
        "version": bytes[0],
        "count": tree.entries.len(),
        "entries": entries,
    })
}

fn describe_list(bytes: &[u8]) -> Value {
    let refs = tree::decode_list(bytes).expect("vector decodes");
    json!({
        "structure": "chunk-list blob (05-trees.md)",
        "length": bytes.len(),
        "id": ListId::digest(bytes).to_hex(),
        "version": bytes[0],
        "count": refs.len(),
        "chunks": describe_refs(&refs),
        "covers_bytes": refs.iter().map(|r| r.len as u64).sum::<u64>(),
    })
}

fn describe_sealed(bytes: &[u8], magic: [u8; 8]) -> Value {
    let version = FORMAT_VERSION;
    let payload = sealed::decode(magic, version, bytes).expect("vector decodes");
    let payload_json: Value = serde_json::from_slice(payload).expect("payload is JSON");
    let mut v = json!({
        "length": bytes.len(),
        "magic": String::from_utf8_lossy(&magic),
        "version": version,
        "payload_offset": 16,
        "payload_len": payload.len(),
        "payload": payload_json,
        "checksum_offset": 16 + payload.len(),
        "checksum": hex(&bytes[bytes.len() - 32..]),
    });
    if magic == sealed::SNAPSHOT_MAGIC {
        v["structure"] = json!("snapshot manifest, sealed file (02-sealed-files.md)");
        v["snapshot_id"] = json!(SnapshotId::digest(bytes).to_hex());
        v["file_name"] = json!(format!("snapshots/{}", SnapshotId::digest(bytes).to_hex()));
    } else if magic == PLAN_MAGIC {
        let id = hex(blake3::hash(bytes).as_bytes());
        v["structure"] = json!("prune plan, sealed file (02-sealed-files.md, 09-rotation.md)");
        v["plan_id"] = json!(id);
        v["file_name"] = json!(format!("prune/{id}"));
    } else {
        v["structure"] = json!("config, sealed file (02-sealed-files.md)");
        v["file_name"] = json!("config");
    }
    v
}

fn describe_pack(bytes: &[u8]) -> Value {
    let entries = pack::decode_pack(bytes).expect("vector decodes");
    let trailer_len =
        u32::from_le_bytes(bytes[bytes.len() - 12..bytes.len() - 8].try_into().unwrap()) as usize;
    let trailer_offset = bytes.len() - 12 - trailer_len;
    let blobs: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
            let raw =
                pack::open_blob(e.id, e.kind, e.encoding, e.raw_len, stored).expect("blob opens");
            json!({
                "trailer_entry_offset": trailer_offset + 4 + i * pack::ENTRY_LEN,
                "id": e.id.to_hex(),
                "kind": kind_name(e.kind),
                "kind_code": e.kind as u8,
                "encoding": encoding_name(e.encoding),
                "encoding_code": e.encoding as u8,
                "offset": e.offset,
                "stored_len": e.stored_len,
                "raw_len": e.raw_len,
                "stored_hex": hex(stored),
                "raw_hex": hex(&raw),
            })
        })
        .collect();
    json!({
        "structure": "pack file (04-packs.md)",
        "length": bytes.len(),
        "id": PackId::digest(bytes).to_hex(),
        "file_name": format!("packs/{}/{}", &PackId::digest(bytes).to_hex()[..2], PackId::digest(bytes).to_hex()),
        "header": { "offset": 0, "magic": "VAULTPAK", "version": u32::from_le_bytes(bytes[8..12].try_into().unwrap()) },
        "blobs": blobs,
        "trailer": {
            "offset": trailer_offset,
            "length": trailer_len,
            "count": entries.len(),
            "checksum_offset": bytes.len() - 12 - 32,
            "checksum": hex(&bytes[bytes.len() - 12 - 32..bytes.len() - 12]),
        },
        "footer": { "offset": bytes.len() - 12, "trailer_len": trailer_len, "magic": "VAULTEND" },
    })
}

fn chunk_table(data: &[u8], lengths: &[usize]) -> Value {
    let mut pos = 0;
    lengths
        .iter()
        .map(|&len| {
            let v = json!({
                "offset": pos,
                "length": len,
                "id": ChunkId::digest(&data[pos..pos + len]).to_hex(),
            });
            pos += len;
            v
        })
        .collect()
}

fn engine_lengths(data: &[u8], p: ChunkerParams) -> Vec<usize> {
    ContentChunker::new(p)
        .cut(data, true)
        .into_iter()
        .map(|l| l as usize)
        .collect()
}

fn describe_chunking() -> Value {
    let input = chunking_input();
    let zeros = vec![0u8; ZEROS_LEN];
    let cases: Vec<Value> = chunking_cases()
        .into_iter()
        .map(|(name, p)| {
            let (mask_s, mask_l) = reference_masks(p.avg);
            json!({
                "name": name,
                "min": p.min,
                "avg": p.avg,
                "max": p.max,
                "mask_s": format!("{mask_s:#018x}"),
                "mask_l": format!("{mask_l:#018x}"),
                "input_chunks": chunk_table(&input, &engine_lengths(&input, p)),
                "zeros_chunks": chunk_table(&zeros, &engine_lengths(&zeros, p)),
            })
        })
        .collect();
    json!({
        "structure": "content-defined chunking (03-chunking.md)",
        "input": {
            "file": "chunking-input.bin",
            "length": input.len(),
            "blake3": hex(blake3::hash(&input).as_bytes()),
            "generator": "x = 0x9E3779B97F4A7C15 (u64); for each byte: x ^= x << 13; x ^= x >> 7; x ^= x << 17; byte = x >> 56",
        },
        "zeros": { "length": ZEROS_LEN, "note": "200000 zero bytes, not stored as a file" },
        "cases": cases,
    })
}

fn describe_tables() -> Value {
    let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
    json!({
        "structure": "FastCDC v2020 tables of the fastcdc crate 5.0.0 (03-chunking.md)",
        "gear": gear.iter().map(|g| format!("{g:#018x}")).collect::<Vec<_>>(),
        "gear_ls_is_gear_shifted_left_by_1": gear.iter().zip(gear_ls.iter()).all(|(g, l)| g.wrapping_shl(1) == *l),
        "masks": fastcdc::v2020::MASKS.iter().map(|m| format!("{m:#018x}")).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------------
// The generator.

fn pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap();
    out.push(b'\n');
    out
}

/// Every vector file: name -> bytes.
fn all_vector_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let config_bytes = config::encode(&config_value());
    files.push((
        "config.json".into(),
        pretty(&describe_sealed(&config_bytes, sealed::CONFIG_MAGIC)),
    ));
    files.push(("config.bin".into(), config_bytes));
    let (_, manifest_bytes) = manifest::encode(&manifest_value());
    files.push((
        "manifest.json".into(),
        pretty(&describe_sealed(&manifest_bytes, sealed::SNAPSHOT_MAGIC)),
    ));
    files.push(("manifest.bin".into(), manifest_bytes));
    let (_, plan_bytes) = plan::encode(&plan_value());
    files.push((
        "plan.json".into(),
        pretty(&describe_sealed(&plan_bytes, PLAN_MAGIC)),
    ));
    files.push(("plan.bin".into(), plan_bytes));
    let (_, pack_bytes, _) = build_pack();
    files.push(("pack.json".into(), pretty(&describe_pack(&pack_bytes))));
    files.push(("pack.bin".into(), pack_bytes));
    for (name, tree, note) in trees() {
        let bytes = tree::encode_tree(&tree);
        files.push((format!("{name}.json"), pretty(&describe_tree(&bytes, note))));
        files.push((format!("{name}.bin"), bytes));
    }
    let list_bytes = tree::encode_list(&chunk_list());
    files.push((
        "chunk-list.json".into(),
        pretty(&describe_list(&list_bytes)),
    ));
    files.push(("chunk-list.bin".into(), list_bytes));
    files.push(("chunking-input.bin".into(), chunking_input()));
    files.push(("chunking.json".into(), pretty(&describe_chunking())));
    files.push(("fastcdc-tables.json".into(), pretty(&describe_tables())));
    files
}

fn trees() -> Vec<(&'static str, Tree, &'static str)> {
    vec![
        ("tree-empty", tree_empty(), "an empty directory"),
        (
            "tree-all-kinds",
            tree_all_kinds(),
            "one entry of every kind; `file-inline` and `hardlink` are two links of one file (hardlinked, equal dev and inode); the last name is not UTF-8",
        ),
        (
            "tree-file-inline",
            tree_file_inline(),
            "a file whose content is two chunk references held inline",
        ),
        (
            "tree-file-lists",
            tree_file_lists(),
            "a file whose content is one chunk-list reference (the chunk-list vector)",
        ),
    ]
}

#[test]
#[ignore = "rewrites format-spec/vectors; run with VAULT_REGENERATE_VECTORS=1"]
fn regenerate_vectors() {
    if std::env::var("VAULT_REGENERATE_VECTORS").as_deref() != Ok("1") {
        eprintln!("set VAULT_REGENERATE_VECTORS=1 to rewrite format-spec/vectors");
        return;
    }
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in all_vector_files() {
        std::fs::write(dir.join(&name), bytes).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn every_vector_file_is_current() {
    // The descriptions and bytes on disk are exactly what the values above produce.
    for (name, bytes) in all_vector_files() {
        let on_disk = read_vector(&name);
        if name.ends_with(".json") {
            let a: Value = serde_json::from_slice(&on_disk).unwrap();
            let b: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(a, b, "{name} is stale; regenerate the vectors");
        } else {
            assert!(on_disk == bytes, "{name} is stale; regenerate the vectors");
        }
    }
}

#[test]
fn config_vector() {
    let bytes = read_vector("config.bin");
    let decoded = config::decode(&bytes).unwrap();
    assert_eq!(decoded, config_value());
    assert_eq!(config::encode(&decoded), bytes);
    assert_eq!(
        describe_sealed(&bytes, sealed::CONFIG_MAGIC),
        read_json("config.json")
    );
    // Layout spot checks against the spec.
    assert_eq!(&bytes[..8], b"VAULTCFG");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        FORMAT_VERSION
    );
    let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), 16 + len + 32);
    assert_eq!(
        &bytes[16 + len..],
        blake3::hash(&bytes[..16 + len]).as_bytes()
    );
}

#[test]
fn manifest_vector() {
    let bytes = read_vector("manifest.bin");
    let decoded = manifest::decode(&bytes).unwrap();
    assert_eq!(decoded, manifest_value());
    let (id, encoded) = manifest::encode(&decoded);
    assert_eq!(encoded, bytes);
    assert_eq!(id, SnapshotId::digest(&bytes));
    assert_eq!(id.0, *blake3::hash(&bytes).as_bytes());
    assert_eq!(&bytes[..8], b"VAULTSNP");
    assert_eq!(
        describe_sealed(&bytes, sealed::SNAPSHOT_MAGIC),
        read_json("manifest.json")
    );
    // The manifest's root is the all-kinds tree vector.
    assert_eq!(
        decoded.root().unwrap(),
        TreeId::digest(&read_vector("tree-all-kinds.bin"))
    );
}

#[test]
fn plan_vector() {
    let bytes = read_vector("plan.bin");
    let decoded = plan::decode(&bytes).unwrap();
    assert_eq!(decoded, plan_value());
    let (id, encoded) = plan::encode(&decoded);
    assert_eq!(encoded, bytes);
    assert_eq!(id, *blake3::hash(&bytes).as_bytes());
    assert_eq!(&bytes[..8], b"VAULTPLN");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        FORMAT_VERSION
    );
    assert_eq!(describe_sealed(&bytes, PLAN_MAGIC), read_json("plan.json"));
    assert_eq!(decoded.condemned_packs().len(), 2);
    // The snapshot it marked live is the manifest vector.
    assert_eq!(
        decoded.snapshots,
        [SnapshotId::digest(&read_vector("manifest.bin")).to_hex()]
    );
    // What the decoder refuses behind a valid envelope (09-rotation.md §9.3).
    let mut other_version = decoded.clone();
    other_version.version = FORMAT_VERSION - 1;
    assert!(plan::decode(&plan::encode(&other_version).1).is_err());
    let mut not_a_pack = decoded.clone();
    not_a_pack.condemned.push("condemned".into());
    assert!(plan::decode(&plan::encode(&not_a_pack).1).is_err());
    let mut short_id = decoded;
    short_id.condemned[0].pop();
    assert!(plan::decode(&plan::encode(&short_id).1).is_err());
}

/// Decodes a sealed vector with the decoder of the kind its name says; whether it was accepted.
fn sealed_accepted(name: &str, bytes: &[u8]) -> bool {
    match name {
        "config.bin" => config::decode(bytes).is_ok(),
        "manifest.bin" => manifest::decode(bytes).is_ok(),
        "plan.bin" => plan::decode(bytes).is_ok(),
        _ => unreachable!("{name} is not a sealed vector"),
    }
}

const SEALED_VECTORS: [&str; 3] = ["config.bin", "manifest.bin", "plan.bin"];

#[test]
fn sealed_vectors_reject_every_flipped_byte() {
    for name in SEALED_VECTORS {
        let bytes = read_vector(name);
        assert!(sealed_accepted(name, &bytes), "{name}");
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(
                    !sealed_accepted(name, &bad),
                    "{name}: flip {bit:#x} at {i} accepted"
                );
            }
        }
        // Truncation and extension too.
        assert!(!sealed_accepted(name, &bytes[..bytes.len() - 1]), "{name}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!sealed_accepted(name, &longer), "{name}");
    }
    // The magic keeps the three kinds apart.
    for file in SEALED_VECTORS {
        for decoder in SEALED_VECTORS {
            if file != decoder {
                assert!(
                    !sealed_accepted(decoder, &read_vector(file)),
                    "{file} accepted as {decoder}"
                );
            }
        }
    }
}

#[test]
fn pack_vector() {
    let bytes = read_vector("pack.bin");
    let entries = pack::decode_pack(&bytes).unwrap();
    let blobs = pack_blobs();
    assert_eq!(entries.len(), blobs.len());
    for ((e, (kind, raw)), encoding) in entries.iter().zip(&blobs).zip(PACK_ENCODINGS) {
        assert_eq!(e.id, kind.digest(raw));
        assert_eq!(e.kind, *kind);
        assert_eq!(e.encoding, encoding);
        assert_eq!(e.raw_len as usize, raw.len());
        let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        assert_eq!(
            &pack::open_blob(e.id, e.kind, e.encoding, e.raw_len, stored).unwrap(),
            raw
        );
        // The compressor still makes the same choice (its bytes may differ across zstd versions).
        assert_eq!(
            compress_blob(raw, Compression::Zstd { level: 1 }).0,
            encoding
        );
    }
    // Re-encoding from the stored bytes gives the same file and id.
    let mut builder = PackBuilder::new();
    for e in &entries {
        let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        builder.add(e.id, e.kind, e.encoding, e.raw_len, stored);
    }
    let (id, rebuilt, rebuilt_entries) = builder.finish();
    assert_eq!(rebuilt, bytes);
    assert_eq!(rebuilt_entries, entries);
    assert_eq!(id, PackId::digest(&bytes));
    assert_eq!(describe_pack(&bytes), read_json("pack.json"));
    // The reader's two-step path: footer, then trailer.
    let footer = &bytes[bytes.len() - pack::FOOTER_LEN..];
    let trailer_len = pack::decode_footer(footer, bytes.len() as u64).unwrap() as usize;
    let start = bytes.len() - pack::FOOTER_LEN - trailer_len;
    assert_eq!(
        pack::decode_trailer(
            &bytes[start..bytes.len() - pack::FOOTER_LEN],
            bytes.len() as u64
        )
        .unwrap(),
        entries
    );
    assert_eq!(trailer_len, 4 + entries.len() * pack::ENTRY_LEN + 32);
}

/// Whether a reader that checks everything the pack's own structure lets it check (header,
/// footer, trailer checksum and bounds, every blob decompressed and compared with its id)
/// rejects `bytes`.
fn pack_rejected(bytes: &[u8]) -> bool {
    let Ok(entries) = pack::decode_pack(bytes) else {
        return true;
    };
    entries.iter().any(|e| {
        let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        pack::open_blob(e.id, e.kind, e.encoding, e.raw_len, stored).is_err()
    })
}

#[test]
fn pack_vector_rejects_every_flipped_byte() {
    let bytes = read_vector("pack.bin");
    let id = PackId::digest(&bytes);
    let entries = pack::decode_pack(&bytes).unwrap();
    assert!(!pack_rejected(&bytes));
    let mut only_by_name = Vec::new();
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            // The pack's name (BLAKE3 of the whole file) catches every flip.
            assert_ne!(PackId::digest(&bad), id);
            if !pack_rejected(&bad) {
                only_by_name.push(i);
            }
        }
    }
    // Structure and blob checks catch every flip except, possibly, one inside zstd data that
    // decompresses to the same content (the content is then intact; only the name disagrees).
    for &i in &only_by_name {
        let e = entries
            .iter()
            .find(|e| e.offset as usize <= i && i < (e.offset + e.stored_len as u64) as usize)
            .unwrap_or_else(|| panic!("flip at {i} outside every blob accepted"));
        assert_eq!(
            e.encoding,
            Encoding::Zstd,
            "flip at {i} in a raw blob accepted"
        );
    }
    eprintln!("flips caught only by the pack name: {only_by_name:?}");
    assert!(only_by_name.len() <= 8, "{only_by_name:?}");
    assert!(pack_rejected(&bytes[..bytes.len() - 1]));
    assert!(pack_rejected(&bytes[1..]));
}

#[test]
fn tree_vectors() {
    for (name, tree, note) in trees() {
        let bytes = read_vector(&format!("{name}.bin"));
        let decoded = tree::decode_tree(&bytes).unwrap();
        assert_eq!(decoded, tree, "{name}");
        assert_eq!(tree::encode_tree(&decoded), bytes, "{name}");
        assert_eq!(
            describe_tree(&bytes, note),
            read_json(&format!("{name}.json")),
            "{name}"
        );
    }
    assert_eq!(read_vector("tree-empty.bin"), [1, 0, 0, 0, 0]);
}

#[test]
fn chunk_list_vector() {
    let bytes = read_vector("chunk-list.bin");
    let decoded = tree::decode_list(&bytes).unwrap();
    assert_eq!(decoded, chunk_list());
    assert_eq!(tree::encode_list(&decoded), bytes);
    assert_eq!(describe_list(&bytes), read_json("chunk-list.json"));
    assert_eq!(bytes.len(), 5 + 36 * decoded.len());
    // The list the file-lists vector references is this one.
    let lists = read_vector("tree-file-lists.bin");
    let tree = tree::decode_tree(&lists).unwrap();
    let EntryKind::File(FileData {
        content: Content::Lists(refs),
        ..
    }) = &tree.entries[0].kind
    else {
        panic!("file-lists holds lists")
    };
    assert_eq!(refs[0].id, ListId::digest(&bytes));
}

/// Trees and chunk lists carry no checksum of their own: they are detected through their id
/// (BLAKE3 of the raw bytes in the tree or list domain), checked when the blob is read.
#[test]
fn tree_and_list_vectors_reject_every_flipped_byte_through_their_id() {
    let mut names: Vec<String> = trees().iter().map(|(n, _, _)| format!("{n}.bin")).collect();
    names.push("chunk-list.bin".into());
    for name in names {
        let bytes = read_vector(&name);
        let kind = if name == "chunk-list.bin" {
            BlobKind::List
        } else {
            BlobKind::Tree
        };
        let id = kind.digest(&bytes);
        assert!(pack::open_blob(id, kind, Encoding::Raw, bytes.len() as u32, &bytes).is_ok());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                pack::open_blob(id, kind, Encoding::Raw, bad.len() as u32, &bad).is_err(),
                "{name}: flip at {i} accepted"
            );
        }
    }
}

#[test]
fn tree_decoder_rejects_what_the_spec_forbids() {
    let good = tree::encode_tree(&tree_file_inline());
    assert!(tree::decode_tree(&good).is_ok());
    // Offsets in tree-file-inline.bin: 0 version, 1 count, 5 name_len, 6 name (11 bytes),
    // 17 kind, 18 mode, 22 uid, 26 gid, 30 user_len.
    let corrupt = |at: usize, value: &[u8]| {
        let mut bad = good.clone();
        bad[at..at + value.len()].copy_from_slice(value);
        tree::decode_tree(&bad)
    };
    assert!(corrupt(0, &[2]).is_err(), "version");
    assert!(corrupt(6, b"..").is_ok(), "a name starting with .. is fine");
    assert!(corrupt(6, b"a/b").is_err(), "slash in name");
    assert!(corrupt(6, b"\0").is_err(), "NUL in name");
    assert!(corrupt(17, &[7]).is_err(), "unknown kind");
    assert!(
        corrupt(18, &0o10000u32.to_le_bytes()).is_err(),
        "mode over 0o7777"
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(tree::decode_tree(&trailing).is_err(), "trailing byte");
    // Unsorted and duplicated entries.
    let mut t = tree_all_kinds();
    t.entries.swap(0, 1);
    let mut unsorted = tree::encode_tree(&Tree { entries: vec![] });
    unsorted[1..5].copy_from_slice(&(t.entries.len() as u32).to_le_bytes());
    for e in &t.entries {
        let one = tree::encode_tree(&Tree {
            entries: vec![e.clone()],
        });
        unsorted.extend_from_slice(&one[5..]);
    }
    assert!(tree::decode_tree(&unsorted).is_err(), "unsorted");
    let dup = {
        let one = tree::encode_tree(&tree_file_inline());
        let mut d = one.clone();
        d[1..5].copy_from_slice(&2u32.to_le_bytes());
        d.extend_from_slice(&one[5..]);
        d
    };
    assert!(tree::decode_tree(&dup).is_err(), "duplicate");
}

#[test]
fn chunking_vector() {
    let input = read_vector("chunking-input.bin");
    assert_eq!(input, chunking_input());
    assert_eq!(describe_chunking(), read_json("chunking.json"));
    let zeros = vec![0u8; ZEROS_LEN];
    for (name, p) in chunking_cases() {
        for data in [&input, &zeros] {
            let engine = engine_lengths(data, p);
            // The spec's byte-at-a-time algorithm and the fastcdc crate agree with the engine.
            assert_eq!(reference_chunks(data, p), engine, "{name}: reference");
            let crate_lengths: Vec<usize> =
                fastcdc::v2020::FastCDC::new(data, p.min as usize, p.avg as usize, p.max as usize)
                    .map(|c| c.length)
                    .collect();
            assert_eq!(crate_lengths, engine, "{name}: fastcdc crate");
            assert_eq!(engine.iter().sum::<usize>(), data.len());
        }
    }
}

#[test]
fn chunking_is_independent_of_windows() {
    // The engine cuts windows and carries the unfinished tail; cut points equal the whole-input
    // cut points for any window of at least two maximum chunks.
    let input = chunking_input();
    let p = chunking_cases()[1].1;
    let chunker = ContentChunker::new(p);
    let whole = chunker.cut(&input, true);
    for window in [2 * p.max as usize, 3 * p.max as usize + 1, 10_000, 50_001] {
        let mut pos = 0;
        let mut cuts = Vec::new();
        loop {
            let end = (pos + window).min(input.len());
            let eof = end == input.len();
            let c = chunker.cut(&input[pos..end], eof);
            pos += c.iter().map(|&l| l as usize).sum::<usize>();
            cuts.extend(c);
            if eof {
                break;
            }
        }
        assert_eq!(cuts, whole, "window {window}");
    }
    assert_eq!(chunker.window_size(), 4 << 20);
}

#[test]
fn fastcdc_tables_vector() {
    assert_eq!(describe_tables(), read_json("fastcdc-tables.json"));
    assert_eq!(&fastcdc::v2020::MASKS, &MASKS);
    assert_eq!(
        read_json("fastcdc-tables.json")["gear_ls_is_gear_shifted_left_by_1"],
        json!(true)
    );
}
