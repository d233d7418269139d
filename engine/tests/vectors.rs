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
//! The unencrypted vectors are deterministic: fixed ids, fixed timestamps, no randomness. Pack
//! vectors contain zstd output, which depends on the zstd library version (pinned by
//! `Cargo.lock`); the format does not require byte-identical compression, so the tests re-encode
//! packs from the stored bytes and only check that the compressor still makes the same raw/zstd
//! choice.
//!
//! The encrypted vectors (`format-spec/vectors/encrypted/`) have fixed master keys, so their
//! ids, subkeys, gear table and config MAC are deterministic, but every seal draws a random nonce
//! and a key file a random salt. The generator keeps the sealed files on disk while they still
//! decode to the expected values (and rewrites only their descriptions); the tests decode them
//! with the engine and with an independent reference reader (module `reference`), and check that
//! every flipped byte is detected.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use vault_engine::format::config::{
    self, ChunkerConfig, ChunkerParams, Compression, Config, EncryptionConfig,
};
use vault_engine::format::manifest::{
    self, Manifest, SnapshotSummary, SourceProblem, SourceRecord,
};
use vault_engine::format::pack::{self, BlobEntry, BlobKind, Encoding, PackBuilder};
use vault_engine::format::plan::{self, Plan, PLAN_MAGIC};
use vault_engine::format::sealed;
use vault_engine::format::tree::{
    self, ChunkRef, Content, Entry, EntryKind, FileData, ListRef, Metadata, Tree,
};
use vault_engine::format::DecodeError;

/// The vectors of version 4 objects: frozen, read by every later version (a version 5
/// repository differs only in its packs, see pack_delta_vector).
const V4: u32 = 4;
use vault_engine::id::{ChunkId, ListId, PackId, RepositoryId, SnapshotId, TreeId};
use vault_engine::keys::keyfile::{self, KdfParams};
use vault_engine::keys::{Encryption, MasterKeys};
use vault_engine::snapshot::{compress_blob, ContentChunker};
use vault_engine::Repository;

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
        version: V4,
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
        encryption: vault_engine::format::config::EncryptionConfig::None,
    }
}

fn manifest_value() -> Manifest {
    let root = TreeId::digest(&tree::encode_tree(&tree_all_kinds()));
    let parent = SnapshotId(*blake3::hash(b"vault test vector: parent snapshot").as_bytes());
    let mut labels = BTreeMap::new();
    labels.insert("env".to_string(), "test".to_string());
    labels.insert("owner".to_string(), "ops".to_string());
    Manifest {
        version: V4,
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
        origin: None,
        replaces: None,
        edited: None,
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

/// The manifest vector after a label and tag edit (format-spec/09-rotation.md §9.9): new tags
/// and labels, `replaces` = the manifest vector's id, `origin` = a fixed repository id (that of
/// the config vector) and that id, `edited` a fixed time; everything else as before.
fn manifest_edited_value() -> Manifest {
    let old = manifest_value();
    let (old_id, _) = manifest::encode(&vault_engine::keys::Encryption::none(), &old);
    let mut labels = old.labels.clone();
    labels.remove("owner");
    labels.insert("app".to_string(), "website".to_string());
    Manifest {
        tags: vec!["vectors".into(), "keep".into()],
        labels,
        origin: Some(format!("{}/{}", config_value().id, old_id.to_hex())),
        replaces: Some(old_id.to_hex()),
        edited: Some("2024-05-07T10:00:00Z".into()),
        ..old
    }
}

/// A pack id that names no pack of the vectors: the plain `BLAKE3` of a fixed string.
fn fixed_pack_id(what: &str) -> PackId {
    PackId(*blake3::hash(format!("vault test vector: {what}").as_bytes()).as_bytes())
}

/// The prune plan vector: two condemned packs, one pack written by the prune, and the manifest
/// vector as the one snapshot marked live.
fn plan_value() -> Plan {
    let (snapshot, _) =
        manifest::encode(&vault_engine::keys::Encryption::none(), &manifest_value());
    Plan {
        version: V4,
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

/// The delta vector (version 5, 04-packs.md §4.9): chunk A stored raw, and chunk A with one line
/// changed stored as a delta of it.
fn build_delta_pack() -> (Vec<u8>, Vec<BlobEntry>, Vec<u8>) {
    let base = chunk_a();
    let mut changed = base.clone();
    let at = changed.len() / 2;
    changed.splice(at..at + 9, b"CHANGED!\n".iter().copied());
    let base_id = BlobKind::Chunk.digest(&base);
    let id = BlobKind::Chunk.digest(&changed);
    let mut builder = PackBuilder::with_capacity(5, 0);
    builder.add(
        base_id,
        BlobKind::Chunk,
        Encoding::Raw,
        base.len() as u32,
        &base,
    );
    let delta = vault_engine::write::compress::encode_delta(
        &changed,
        &base,
        Compression::Zstd { level: 1 },
        changed.len(),
    )
    .expect("the changed chunk is a small delta of its base");
    builder.add(
        id,
        BlobKind::Chunk,
        Encoding::Delta { base: base_id },
        changed.len() as u32,
        &delta,
    );
    let (_, bytes, entries) = builder.finish(&vault_engine::keys::Encryption::none());
    (bytes, entries, changed)
}

fn build_pack() -> (PackId, Vec<u8>, Vec<BlobEntry>) {
    let mut builder = PackBuilder::with_capacity(V4, 0);
    for (kind, raw) in pack_blobs() {
        let (encoding, stored) = compress_blob(&raw, Compression::Zstd { level: 1 });
        builder.add(kind.digest(&raw), kind, encoding, raw.len() as u32, &stored);
    }
    builder.finish(&vault_engine::keys::Encryption::none())
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
    reference_chunks_with(data, p, &gear())
}

/// [`reference_chunks`] with another gear table (an encrypted repository's keyed one).
fn reference_chunks_with(data: &[u8], p: ChunkerParams, gear: &[u64]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let len = reference_cut(&data[pos..], p, gear);
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
        Encoding::Delta { .. } => "delta",
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
    let version = V4;
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
    let entries =
        pack::decode_pack(&vault_engine::keys::Encryption::none(), bytes).expect("vector decodes");
    let trailer_len =
        u32::from_le_bytes(bytes[bytes.len() - 12..bytes.len() - 8].try_into().unwrap()) as usize;
    let trailer_offset = bytes.len() - 12 - trailer_len;
    // Raw bytes of the blobs so far: a delta's base is an earlier blob of the vector pack.
    let mut opened: Vec<(vault_engine::id::BlobId, Vec<u8>)> = Vec::new();
    let mut deltas = 0;
    let blobs: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
            let base_raw = e.encoding.base().map(|base| {
                opened
                    .iter()
                    .find(|(id, _)| *id == base)
                    .map(|(_, raw)| raw.clone())
                    .expect("the base is in the vector pack")
            });
            let mut raw = Vec::new();
            pack::open_blob_append(
                &vault_engine::keys::Encryption::none(),
                e.id,
                e.kind,
                e.encoding,
                e.raw_len,
                stored,
                base_raw.as_deref(),
                &mut raw,
            )
            .expect("blob opens");
            opened.push((e.id, raw.clone()));
            let mut described = json!({
                "trailer_entry_offset": trailer_offset + 4 + i * pack::ENTRY_LEN,
                "id": e.id.to_hex(),
                "kind": kind_name(e.kind),
                "kind_code": e.kind as u8,
                "encoding": encoding_name(e.encoding),
                "encoding_code": e.encoding.code(),
                "offset": e.offset,
                "stored_len": e.stored_len,
                "raw_len": e.raw_len,
                "stored_hex": hex(stored),
                "raw_hex": hex(&raw),
            });
            if let Some(base) = e.encoding.base() {
                described["base"] = json!(base.to_hex());
                described["base_table_offset"] =
                    json!(trailer_offset + 4 + entries.len() * pack::ENTRY_LEN + deltas * 32);
                deltas += 1;
            }
            described
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
    ContentChunker::new(p, &vault_engine::keys::Encryption::none())
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
    let (_, manifest_bytes) =
        manifest::encode(&vault_engine::keys::Encryption::none(), &manifest_value());
    files.push((
        "manifest.json".into(),
        pretty(&describe_sealed(&manifest_bytes, sealed::SNAPSHOT_MAGIC)),
    ));
    files.push(("manifest.bin".into(), manifest_bytes));
    let (_, edited_bytes) = manifest::encode(
        &vault_engine::keys::Encryption::none(),
        &manifest_edited_value(),
    );
    files.push((
        "manifest-edited.json".into(),
        pretty(&describe_sealed(&edited_bytes, sealed::SNAPSHOT_MAGIC)),
    ));
    files.push(("manifest-edited.bin".into(), edited_bytes));
    let (_, plan_bytes) = plan::encode(&vault_engine::keys::Encryption::none(), &plan_value());
    files.push((
        "plan.json".into(),
        pretty(&describe_sealed(&plan_bytes, PLAN_MAGIC)),
    ));
    files.push(("plan.bin".into(), plan_bytes));
    let (_, pack_bytes, _) = build_pack();
    files.push(("pack.json".into(), pretty(&describe_pack(&pack_bytes))));
    files.push(("pack.bin".into(), pack_bytes));
    let (delta_bytes, _, _) = build_delta_pack();
    files.push((
        "pack-delta.json".into(),
        pretty(&describe_pack(&delta_bytes)),
    ));
    files.push(("pack-delta.bin".into(), delta_bytes));
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
    // The encrypted vectors: sealed files that still decode to the expected values are kept
    // (a new seal draws new nonces, so every byte would change for nothing).
    std::fs::create_dir_all(dir.join(ENCRYPTED_DIR)).unwrap();
    for (name, bytes) in encrypted_vector_files(on_disk) {
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
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), V4);
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
    let decoded = manifest::decode(&vault_engine::keys::Encryption::none(), &bytes).unwrap();
    assert_eq!(decoded, manifest_value());
    let (id, encoded) = manifest::encode(&vault_engine::keys::Encryption::none(), &decoded);
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
fn manifest_edited_vector() {
    let none = vault_engine::keys::Encryption::none();
    let bytes = read_vector("manifest-edited.bin");
    let decoded = manifest::decode(&none, &bytes).unwrap();
    assert_eq!(decoded, manifest_edited_value());
    let (id, encoded) = manifest::encode(&none, &decoded);
    assert_eq!(encoded, bytes);
    assert_eq!(id, SnapshotId::digest(&bytes));
    assert_eq!(
        describe_sealed(&bytes, sealed::SNAPSHOT_MAGIC),
        read_json("manifest-edited.json")
    );
    // It replaces the manifest vector, and is that snapshot but for tags, labels and the
    // three members an edit sets.
    let old = manifest::decode(&none, &read_vector("manifest.bin")).unwrap();
    assert_eq!(
        decoded.replaced(),
        Some(SnapshotId::digest(&read_vector("manifest.bin")))
    );
    let undone = Manifest {
        tags: old.tags.clone(),
        labels: old.labels.clone(),
        origin: None,
        replaces: None,
        edited: None,
        ..decoded.clone()
    };
    assert_eq!(undone, old);
    // A reader that knows none of the three members (the manifest struct before edits, like
    // any serde struct without `deny_unknown_fields`) reads it as an ordinary snapshot.
    #[derive(serde::Deserialize)]
    struct BeforeEdits {
        version: u32,
        tree: String,
        tags: Vec<String>,
        origin: Option<String>,
    }
    let payload = read_json("manifest-edited.json")["payload"].clone();
    assert!(payload.get("replaces").is_some() && payload.get("edited").is_some());
    let before: BeforeEdits = serde_json::from_value(payload).unwrap();
    assert_eq!(before.version, V4);
    assert_eq!(before.tree, old.tree);
    assert_eq!(before.tags, decoded.tags);
    assert_eq!(before.origin, decoded.origin);
    // `replaces` must be a snapshot id.
    let mut bad = decoded;
    bad.replaces = Some("not an id".into());
    assert!(manifest::decode(&none, &manifest::encode(&none, &bad).1).is_err());
}

#[test]
fn plan_vector() {
    let bytes = read_vector("plan.bin");
    let decoded = plan::decode(&vault_engine::keys::Encryption::none(), &bytes).unwrap();
    assert_eq!(decoded, plan_value());
    let (id, encoded) = plan::encode(&vault_engine::keys::Encryption::none(), &decoded);
    assert_eq!(encoded, bytes);
    assert_eq!(id, *blake3::hash(&bytes).as_bytes());
    assert_eq!(&bytes[..8], b"VAULTPLN");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), V4);
    assert_eq!(describe_sealed(&bytes, PLAN_MAGIC), read_json("plan.json"));
    assert_eq!(decoded.condemned_packs().len(), 2);
    // The snapshot it marked live is the manifest vector.
    assert_eq!(
        decoded.snapshots,
        [SnapshotId::digest(&read_vector("manifest.bin")).to_hex()]
    );
    // What the decoder refuses behind a valid envelope (09-rotation.md §9.3).
    let mut other_version = decoded.clone();
    other_version.version = V4 - 1;
    assert!(plan::decode(
        &vault_engine::keys::Encryption::none(),
        &plan::encode(&vault_engine::keys::Encryption::none(), &other_version).1
    )
    .is_err());
    let mut not_a_pack = decoded.clone();
    not_a_pack.condemned.push("condemned".into());
    assert!(plan::decode(
        &vault_engine::keys::Encryption::none(),
        &plan::encode(&vault_engine::keys::Encryption::none(), &not_a_pack).1
    )
    .is_err());
    let mut short_id = decoded;
    short_id.condemned[0].pop();
    assert!(plan::decode(
        &vault_engine::keys::Encryption::none(),
        &plan::encode(&vault_engine::keys::Encryption::none(), &short_id).1
    )
    .is_err());
}

/// Decodes a sealed vector with the decoder of the kind its name says; whether it was accepted.
fn sealed_accepted(name: &str, bytes: &[u8]) -> bool {
    match name {
        "config.bin" => config::decode(bytes).is_ok(),
        "manifest.bin" | "manifest-edited.bin" => {
            manifest::decode(&vault_engine::keys::Encryption::none(), bytes).is_ok()
        }
        "plan.bin" => plan::decode(&vault_engine::keys::Encryption::none(), bytes).is_ok(),
        _ => unreachable!("{name} is not a sealed vector"),
    }
}

const SEALED_VECTORS: [&str; 4] = [
    "config.bin",
    "manifest.bin",
    "manifest-edited.bin",
    "plan.bin",
];

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
            // Both manifests are manifests.
            if file != decoder && !(file.starts_with("manifest") && decoder.starts_with("manifest"))
            {
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
    let entries = pack::decode_pack(&vault_engine::keys::Encryption::none(), &bytes).unwrap();
    let blobs = pack_blobs();
    assert_eq!(entries.len(), blobs.len());
    for ((e, (kind, raw)), encoding) in entries.iter().zip(&blobs).zip(PACK_ENCODINGS) {
        assert_eq!(e.id, kind.digest(raw));
        assert_eq!(e.kind, *kind);
        assert_eq!(e.encoding, encoding);
        assert_eq!(e.raw_len as usize, raw.len());
        let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        assert_eq!(
            &pack::open_blob(
                &vault_engine::keys::Encryption::none(),
                e.id,
                e.kind,
                e.encoding,
                e.raw_len,
                stored
            )
            .unwrap(),
            raw
        );
        // The compressor still makes the same choice (its bytes may differ across zstd versions).
        assert_eq!(
            compress_blob(raw, Compression::Zstd { level: 1 }).0,
            encoding
        );
    }
    // Re-encoding from the stored bytes gives the same file and id.
    let mut builder = PackBuilder::with_capacity(V4, 0);
    for e in &entries {
        let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        builder.add(e.id, e.kind, e.encoding, e.raw_len, stored);
    }
    let (id, rebuilt, rebuilt_entries) = builder.finish(&vault_engine::keys::Encryption::none());
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
    let Ok(entries) = pack::decode_pack(&vault_engine::keys::Encryption::none(), bytes) else {
        return true;
    };
    entries.iter().any(|e| {
        let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        pack::open_blob(
            &vault_engine::keys::Encryption::none(),
            e.id,
            e.kind,
            e.encoding,
            e.raw_len,
            stored,
        )
        .is_err()
    })
}

#[test]
fn pack_delta_vector() {
    let bytes = read_vector("pack-delta.bin");
    let (built, entries, changed) = build_delta_pack();
    assert_eq!(bytes, built, "pack-delta.bin is not what the writer makes");
    let none = vault_engine::keys::Encryption::none();
    assert_eq!(pack::decode_pack(&none, &bytes).unwrap(), entries);
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 5);
    let (base, delta) = (entries[0], entries[1]);
    assert_eq!(delta.encoding, Encoding::Delta { base: base.id });
    let stored = |e: &BlobEntry, b: &[u8]| {
        b[e.offset as usize..(e.offset + e.stored_len as u64) as usize].to_vec()
    };
    let base_raw = stored(&base, &bytes);
    let mut raw = Vec::new();
    pack::open_blob_append(
        &none,
        delta.id,
        delta.kind,
        delta.encoding,
        delta.raw_len,
        &stored(&delta, &bytes),
        Some(&base_raw),
        &mut raw,
    )
    .unwrap();
    assert!(raw == changed);
    assert!(delta.stored_len < 100, "a one-line change is a small delta");
    // The trailer's length counts the base table.
    let trailer_len =
        u32::from_le_bytes(bytes[bytes.len() - 12..bytes.len() - 8].try_into().unwrap());
    assert_eq!(trailer_len as usize, 4 + 2 * pack::ENTRY_LEN + 32 + 32);
    // Every flipped byte of the delta's frame or of the base table is rejected, by the trailer
    // checksum or by the delta's id.
    let trailer = bytes.len() - 12 - trailer_len as usize;
    let delta_range = delta.offset as usize..(delta.offset + delta.stored_len as u64) as usize;
    let base_table = trailer + 4 + 2 * pack::ENTRY_LEN..trailer + 4 + 2 * pack::ENTRY_LEN + 32;
    for i in delta_range.chain(base_table) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let accepted = pack::decode_pack(&none, &bad).is_ok_and(|es| {
            let d = es[1];
            let mut out = Vec::new();
            pack::open_blob_append(
                &none,
                d.id,
                d.kind,
                d.encoding,
                d.raw_len,
                &stored(&d, &bad),
                Some(&stored(&es[0], &bad)),
                &mut out,
            )
            .is_ok()
        });
        assert!(!accepted, "flip at {i} accepted");
    }
    // A version 4 header cannot carry it.
    let mut v4 = bytes.clone();
    v4[8] = 4;
    assert!(pack::decode_pack(&none, &v4).is_err());
}

#[test]
fn pack_vector_rejects_every_flipped_byte() {
    let bytes = read_vector("pack.bin");
    let id = PackId::digest(&bytes);
    let entries = pack::decode_pack(&vault_engine::keys::Encryption::none(), &bytes).unwrap();
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
    // decompresses to the same content (the content is then intact; only the name disagrees),
    // and the flip of the header's version 4 into 5 (a version 5 pack without deltas is a
    // version 4 pack in every other byte).
    only_by_name.retain(|&i| !(i == 8 && vault_engine::format::supported(bytes[8] as u32 ^ 1)));
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
        assert!(pack::open_blob(
            &vault_engine::keys::Encryption::none(),
            id,
            kind,
            Encoding::Raw,
            bytes.len() as u32,
            &bytes
        )
        .is_ok());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                pack::open_blob(
                    &vault_engine::keys::Encryption::none(),
                    id,
                    kind,
                    Encoding::Raw,
                    bad.len() as u32,
                    &bad
                )
                .is_err(),
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
    let chunker = ContentChunker::new(p, &vault_engine::keys::Encryption::none());
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

// ---------------------------------------------------------------------------------------------
// Encrypted vectors: `format-spec/vectors/encrypted/`.
//
// Fixed master keys, so every id, subkey and gear entry is deterministic; but every seal draws a
// fresh random nonce (and a key file a random salt), so the sealed files are not: the generator
// keeps the files on disk while they still decode to the values below and only seals anew when
// they do not. The tests decode the files on disk, twice: with the engine, and with a small
// reference reader written here from the specification (BLAKE3 key derivation, Argon2id,
// AES-256-GCM under subkey = BLAKE3 keyed_hash(key, nonce[0..12]) and GCM nonce nonce[12..24],
// with `nonce | ciphertext | tag`, ISO/IEC 7816-4 padding to 64 bytes). Its AES-GCM is the
// RustCrypto `aes-gcm` crate, the engine's is ring: two implementations.

mod reference {
    //! An independent reader of the encrypted structures, from the specification only.

    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};

    pub const AEAD_CONTEXT: &str = "vault 2026-12-02 aead key";
    pub const CONFIG_MAC_CONTEXT: &str = "vault 2026-12-02 config mac key";
    pub const CHUNK_ID_CONTEXT: &str = "vault 2026-12-02 chunk id key";
    pub const TREE_ID_CONTEXT: &str = "vault 2026-12-02 tree id key";
    pub const LIST_ID_CONTEXT: &str = "vault 2026-12-02 chunk list id key";
    pub const GEAR_CONTEXT: &str = "vault 2026-12-02 chunker gear key";

    pub const NONCE_LEN: usize = 24;
    pub const TAG_LEN: usize = 16;
    pub const PAD_TO: usize = 64;

    /// The subkeys of master keys `data` and `id`: (name, context, derived from, key).
    pub fn subkeys(
        data: &[u8; 32],
        id: &[u8; 32],
    ) -> Vec<(&'static str, &'static str, &'static str, [u8; 32])> {
        vec![
            (
                "aead",
                AEAD_CONTEXT,
                "data",
                blake3::derive_key(AEAD_CONTEXT, data),
            ),
            (
                "config_mac",
                CONFIG_MAC_CONTEXT,
                "data",
                blake3::derive_key(CONFIG_MAC_CONTEXT, data),
            ),
            (
                "chunk_id",
                CHUNK_ID_CONTEXT,
                "id",
                blake3::derive_key(CHUNK_ID_CONTEXT, id),
            ),
            (
                "tree_id",
                TREE_ID_CONTEXT,
                "id",
                blake3::derive_key(TREE_ID_CONTEXT, id),
            ),
            (
                "list_id",
                LIST_ID_CONTEXT,
                "id",
                blake3::derive_key(LIST_ID_CONTEXT, id),
            ),
            (
                "gear",
                GEAR_CONTEXT,
                "id",
                blake3::derive_key(GEAR_CONTEXT, id),
            ),
        ]
    }

    pub fn subkey(data: &[u8; 32], id: &[u8; 32], name: &str) -> [u8; 32] {
        subkeys(data, id)
            .into_iter()
            .find(|k| k.0 == name)
            .expect("a subkey name")
            .3
    }

    /// The keyed gear table: 2048 bytes of keyed-BLAKE3 output (empty input), read as 256
    /// little-endian u64.
    pub fn gear(gear_key: &[u8; 32]) -> Vec<u64> {
        let mut table = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(gear_key)
            .finalize_xof()
            .fill(&mut table);
        table
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            .collect()
    }

    /// `sealed` split: (nonce, ciphertext, tag).
    pub fn split(sealed: &[u8]) -> (&[u8], &[u8], &[u8]) {
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        (nonce, ciphertext, tag)
    }

    /// Decryption of `nonce | ciphertext | tag` (AES-256-GCM under the per-message subkey),
    /// without unpadding.
    pub fn decrypt(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let subkey = blake3::keyed_hash(key, &nonce[..12]);
        Aes256Gcm::new(subkey.as_bytes().into())
            .decrypt(
                Nonce::from_slice(&nonce[12..]),
                Payload { msg: body, aad: ad },
            )
            .ok()
    }

    /// Removes ISO/IEC 7816-4 padding: trailing zeros, then one 0x80, at most 64 bytes in all,
    /// from a plaintext whose length is a positive multiple of 64.
    pub fn unpad(padded: &[u8]) -> Option<&[u8]> {
        if padded.is_empty() || !padded.len().is_multiple_of(PAD_TO) {
            return None;
        }
        let i = padded.iter().rposition(|&b| b != 0)?;
        (padded[i] == 0x80 && padded.len() - i <= PAD_TO).then(|| &padded[..i])
    }

    /// Decrypts and unpads.
    pub fn open(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        decrypt(key, ad, sealed).and_then(|p| unpad(&p).map(<[u8]>::to_vec))
    }

    /// Associated data of a pack trailer, a manifest or a plan: magic[8] | version u32.
    pub fn file_ad(magic: &[u8; 8], version: u32) -> Vec<u8> {
        let mut ad = magic.to_vec();
        ad.extend_from_slice(&version.to_le_bytes());
        ad
    }

    /// Associated data of a blob: "VAULTBLB" | kind u8 | encoding u8 | raw_len u32 | id[32].
    pub fn blob_ad(kind: u8, encoding: u8, raw_len: u32, id: &[u8; 32]) -> Vec<u8> {
        let mut ad = b"VAULTBLB".to_vec();
        ad.push(kind);
        ad.push(encoding);
        ad.extend_from_slice(&raw_len.to_le_bytes());
        ad.extend_from_slice(id);
        ad
    }

    /// Associated data of the wrapped master keys in a key file: "VAULTKEY" | repository id.
    pub fn key_ad(repository: &[u8; 32]) -> Vec<u8> {
        let mut ad = b"VAULTKEY".to_vec();
        ad.extend_from_slice(repository);
        ad
    }

    /// Argon2id (version 0x13), 32-byte output.
    pub fn argon2id(
        password: &[u8],
        salt: &[u8],
        memory_kib: u32,
        passes: u32,
        lanes: u32,
    ) -> [u8; 32] {
        use argon2::{Algorithm, Argon2, Params, Version};
        let params = Params::new(memory_kib, passes, lanes, Some(32)).unwrap();
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, salt, &mut out)
            .unwrap();
        out
    }
}

const ENCRYPTED_DIR: &str = "encrypted";
const VECTOR_PASSWORD: &str = "vector password";
const VECTOR_KDF: KdfParams = KdfParams {
    memory_kib: 64,
    passes: 1,
    parallelism: 1,
};
const VECTOR_KEY_HOST: &str = "vector-host";
const VECTOR_KEY_CREATED: &str = "2024-05-06T07:00:00Z";

fn enc_name(name: &str) -> String {
    format!("{ENCRYPTED_DIR}/{name}")
}

/// The vector master keys: the data key is `BLAKE3("vault test vector: data key")`, the id key
/// `BLAKE3("vault test vector: id key")`.
fn vector_master() -> MasterKeys {
    MasterKeys {
        data: *blake3::hash(b"vault test vector: data key").as_bytes(),
        id: *blake3::hash(b"vault test vector: id key").as_bytes(),
    }
}

fn vector_encryption() -> Encryption {
    Encryption::with_keys(vector_master())
}

/// The repository id of the encrypted vectors: bytes 00 01 .. 1f, as in `config.bin`.
fn vector_repository() -> RepositoryId {
    RepositoryId(std::array::from_fn(|i| i as u8))
}

fn reference_key(name: &str) -> [u8; 32] {
    let m = vector_master();
    reference::subkey(&m.data, &m.id, name)
}

fn enc_chunk_ref(enc: &Encryption, data: &[u8]) -> ChunkRef {
    ChunkRef {
        id: enc.chunk_id(data),
        len: data.len() as u32,
    }
}

/// The encrypted repository's chunk list: A, B, A with keyed chunk ids.
fn enc_chunk_list(enc: &Encryption) -> Vec<ChunkRef> {
    vec![
        enc_chunk_ref(enc, &chunk_a()),
        enc_chunk_ref(enc, &chunk_b()),
        enc_chunk_ref(enc, &chunk_a()),
    ]
}

/// A tree of one file (the `file-lists` entry) whose content is the encrypted chunk list.
fn enc_tree(enc: &Encryption) -> Tree {
    let refs = enc_chunk_list(enc);
    let list = ListRef {
        id: ListId(enc.blob_id(BlobKind::List, &tree::encode_list(&refs)).0),
        size: refs.iter().map(|r| r.len as u64).sum(),
        chunks: refs.len() as u32,
    };
    let mut entry = file_lists_entry();
    entry.kind = EntryKind::File(FileData {
        size: list.size,
        profile: 0,
        hardlinked: false,
        content: Content::Lists(vec![list]),
    });
    Tree {
        entries: vec![entry],
    }
}

/// The blobs of the encrypted pack, in pack order: two chunks, the chunk list, the tree.
fn enc_pack_blobs(enc: &Encryption) -> Vec<(BlobKind, Vec<u8>)> {
    vec![
        (BlobKind::Chunk, chunk_a()),
        (BlobKind::Chunk, chunk_b()),
        (BlobKind::List, tree::encode_list(&enc_chunk_list(enc))),
        (BlobKind::Tree, tree::encode_tree(&enc_tree(enc))),
    ]
}

/// The config of the encrypted vectors: `config_value()` with `encryption` = repokey and its MAC.
fn enc_config_value() -> Config {
    let mut config = config_value();
    config.id = vector_repository().to_hex();
    config.encryption = EncryptionConfig::Repokey {
        aead: config::AEAD.into(),
        mac: String::new(),
    };
    let mac = vector_encryption().config_mac(&config.mac_input()).unwrap();
    config.encryption = EncryptionConfig::Repokey {
        aead: config::AEAD.into(),
        mac: hex(&mac),
    };
    config
}

/// The manifest of the encrypted vectors: `manifest_value()` rooted at the encrypted tree.
fn enc_manifest_value() -> Manifest {
    let enc = vector_encryption();
    let mut m = manifest_value();
    m.tree = enc
        .blob_id(BlobKind::Tree, &tree::encode_tree(&enc_tree(&enc)))
        .to_hex();
    m
}

/// The plan of the encrypted vectors, marking the encrypted manifest (whose id is the digest of
/// its file, so it changes whenever the manifest is sealed anew) live.
fn enc_plan_value(manifest_id: SnapshotId) -> Plan {
    let mut p = plan_value();
    p.snapshots = vec![manifest_id.to_hex()];
    p
}

fn build_enc_pack(enc: &Encryption) -> Vec<u8> {
    let mut builder = PackBuilder::with_capacity(V4, 0);
    for (kind, raw) in enc_pack_blobs(enc) {
        let id = enc.blob_id(kind, &raw);
        let (encoding, stored) = compress_blob(&raw, Compression::Zstd { level: 1 });
        let sealed = enc.seal(
            &pack::blob_ad(kind, encoding, raw.len() as u32, &id),
            stored,
        );
        builder.add(id, kind, encoding, raw.len() as u32, &sealed);
    }
    builder.finish(enc).1
}

/// A key file wrapping the vector master keys with [`VECTOR_PASSWORD`] for
/// [`vector_repository`], as `keyfile::create` writes it, with a fixed `created` time.
fn build_key_file() -> Vec<u8> {
    let (_, bytes) = keyfile::create(
        &vector_master(),
        VECTOR_PASSWORD.as_bytes(),
        VECTOR_KDF,
        &vector_repository(),
        VECTOR_KEY_HOST,
    );
    let mut file = keyfile::decode(&bytes).unwrap();
    file.created = VECTOR_KEY_CREATED.into();
    let payload = serde_json::to_vec_pretty(&file).unwrap();
    sealed::encode(keyfile::KEY_MAGIC, V4, &payload)
}

// The checks of the decoded values, shared by the generator (keep a file?) and the tests.

fn enc_pack_decodes_as_expected(enc: &Encryption, bytes: &[u8]) -> Result<(), String> {
    let entries = pack::decode_pack(enc, bytes).map_err(|e| e.to_string())?;
    let blobs = enc_pack_blobs(enc);
    if entries.len() != blobs.len() {
        return Err(format!("{} entries", entries.len()));
    }
    for (e, (kind, raw)) in entries.iter().zip(&blobs) {
        let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        let opened = pack::open_blob(enc, e.id, e.kind, e.encoding, e.raw_len, stored)
            .map_err(|err| err.to_string())?;
        let encoding = compress_blob(raw, Compression::Zstd { level: 1 }).0;
        if e.id != enc.blob_id(*kind, raw)
            || e.kind != *kind
            || e.encoding != encoding
            || e.raw_len as usize != raw.len()
            || opened != *raw
        {
            return Err(format!("entry {e:?} differs"));
        }
    }
    Ok(())
}

fn enc_manifest_decodes_as_expected(enc: &Encryption, bytes: &[u8]) -> Result<(), String> {
    let m = manifest::decode(enc, bytes).map_err(|e| e.to_string())?;
    (m == enc_manifest_value())
        .then_some(())
        .ok_or_else(|| "manifest differs".into())
}

fn enc_plan_decodes_as_expected(
    enc: &Encryption,
    bytes: &[u8],
    manifest_id: SnapshotId,
) -> Result<(), String> {
    let p = plan::decode(enc, bytes).map_err(|e| e.to_string())?;
    (p == enc_plan_value(manifest_id))
        .then_some(())
        .ok_or_else(|| "plan differs".into())
}

fn key_file_decodes_as_expected(bytes: &[u8]) -> Result<(), String> {
    let file = keyfile::decode(bytes).map_err(|e| e.to_string())?;
    let master = file
        .unwrap(VECTOR_PASSWORD.as_bytes(), &vector_repository())
        .ok_or("the password does not unwrap it")?;
    let expected = vector_master();
    ((master.data, master.id) == (expected.data, expected.id)
        && file.created == VECTOR_KEY_CREATED
        && file.host == VECTOR_KEY_HOST
        && file.kdf.params == VECTOR_KDF
        && file.version == V4)
        .then_some(())
        .ok_or_else(|| "key file differs".into())
}

// Descriptions of the encrypted vectors, made with the reference reader.

/// Layout of a sealed byte string and its decrypted plaintext.
fn describe_seal(sealed: &[u8], ad: &[u8], offset: usize) -> (Value, Vec<u8>) {
    let (nonce, ciphertext, tag) = reference::split(sealed);
    let padded = reference::decrypt(&reference_key("aead"), ad, sealed).expect("vector opens");
    let plain = reference::unpad(&padded)
        .expect("vector is padded")
        .to_vec();
    (
        json!({
            "offset": offset,
            "length": sealed.len(),
            "nonce": hex(nonce),
            "ciphertext_offset": offset + reference::NONCE_LEN,
            "ciphertext_len": ciphertext.len(),
            "tag_offset": offset + reference::NONCE_LEN + ciphertext.len(),
            "tag": hex(tag),
            "associated_data_hex": hex(ad),
            "plaintext_len": plain.len(),
            "padding_len": padded.len() - plain.len(),
        }),
        plain,
    )
}

fn describe_keys() -> Value {
    let m = vector_master();
    let enc = vector_encryption();
    let subkeys: serde_json::Map<String, Value> = reference::subkeys(&m.data, &m.id)
        .into_iter()
        .map(|(name, context, from, key)| {
            (
                name.to_string(),
                json!({ "context": context, "from": format!("{from} key"), "key": hex(&key) }),
            )
        })
        .collect();
    let gear = reference::gear(&reference_key("gear"));
    let table: Vec<u8> = gear.iter().flat_map(|g| g.to_le_bytes()).collect();
    let ids: Vec<Value> = enc_pack_blobs(&enc)
        .iter()
        .map(|(kind, raw)| {
            json!({
                "kind": kind_name(*kind),
                "raw_len": raw.len(),
                "raw_blake3": hex(blake3::hash(raw).as_bytes()),
                "unencrypted_id": kind.digest(raw).to_hex(),
                "keyed_id": enc.blob_id(*kind, raw).to_hex(),
            })
        })
        .collect();
    let input = chunking_input();
    let cases: Vec<Value> = chunking_cases()[..2]
        .iter()
        .map(|(name, p)| {
            let lengths = engine_lengths_with(&input, *p, &enc);
            let mut pos = 0;
            let chunks: Vec<Value> = lengths
                .iter()
                .map(|&len| {
                    let v = json!({
                        "offset": pos,
                        "length": len,
                        "id": enc.chunk_id(&input[pos..pos + len]).to_hex(),
                    });
                    pos += len;
                    v
                })
                .collect();
            json!({ "name": name, "min": p.min, "avg": p.avg, "max": p.max, "chunks": chunks })
        })
        .collect();
    json!({
        "structure": "the keys of an encrypted repository and what derives from them",
        "master_keys": {
            "data_key": hex(&m.data),
            "data_key_is": "BLAKE3(\"vault test vector: data key\")",
            "id_key": hex(&m.id),
            "id_key_is": "BLAKE3(\"vault test vector: id key\")",
            "bytes_hex": hex(vector_master().to_bytes().as_ref()),
            "bytes_are": "data key | id key (64 bytes): what a key file wraps",
        },
        "derivation": "subkey = BLAKE3_DERIVE(context, master key): blake3::derive_key(context, key)",
        "subkeys": subkeys,
        "gear": {
            "is": "keyed BLAKE3 (gear key) of the empty input, extended output of 2048 bytes, read as 256 little-endian u64; gear_ls[i] = gear[i] << 1",
            "first": gear[..8].iter().map(|g| format!("{g:#018x}")).collect::<Vec<_>>(),
            "first_ls": gear[..8].iter().map(|g| format!("{:#018x}", g << 1)).collect::<Vec<_>>(),
            "last": format!("{:#018x}", gear[255]),
            "table_blake3": hex(blake3::hash(&table).as_bytes()),
        },
        "ids": {
            "is": "id = keyed BLAKE3(chunk, tree or chunk-list id key, raw bytes)",
            "blobs_of_pack_bin": ids,
        },
        "chunking": {
            "is": "FastCDC v2020 as in 03-chunking.md with the keyed gear table, over ../chunking-input.bin; chunk ids keyed",
            "input_blake3": hex(blake3::hash(&input).as_bytes()),
            "cases": cases,
        },
    })
}

fn describe_enc_config(bytes: &[u8]) -> Value {
    let mut v = describe_sealed(bytes, sealed::CONFIG_MAGIC);
    let config = config::decode(bytes).expect("vector decodes");
    let input = config.mac_input();
    v["structure"] = json!("config of an encrypted repository, sealed file (02-sealed-files.md)");
    v["mac"] = json!({
        "is": "keyed BLAKE3(config MAC key, mac input), hex, in encryption.mac",
        "input": String::from_utf8(input.clone()).unwrap(),
        "input_is": "the compact JSON of the config (members in the order of the file, no whitespace) with encryption.mac = \"\"",
        "input_len": input.len(),
        "value": hex(blake3::keyed_hash(&reference_key("config_mac"), &input).as_bytes()),
    });
    v
}

fn describe_key_file(bytes: &[u8]) -> Value {
    let payload = sealed::decode(keyfile::KEY_MAGIC, V4, bytes).expect("vector decodes");
    let file: Value = serde_json::from_slice(payload).unwrap();
    let salt = hex::decode(file["kdf"]["salt"].as_str().unwrap()).unwrap();
    let wrapped = hex::decode(file["keys"].as_str().unwrap()).unwrap();
    let wrapping = reference::argon2id(
        VECTOR_PASSWORD.as_bytes(),
        &salt,
        VECTOR_KDF.memory_kib,
        VECTOR_KDF.passes,
        VECTOR_KDF.parallelism,
    );
    let ad = reference::key_ad(&vector_repository().0);
    let master = reference::decrypt(&wrapping, &ad, &wrapped).expect("the password unwraps it");
    let (nonce, ciphertext, tag) = reference::split(&wrapped);
    let id = hex(blake3::hash(bytes).as_bytes());
    json!({
        "structure": "key file, sealed file with magic VAULTKEY",
        "length": bytes.len(),
        "magic": "VAULTKEY",
        "version": V4,
        "payload_offset": 16,
        "payload_len": payload.len(),
        "payload": file,
        "checksum_offset": 16 + payload.len(),
        "checksum": hex(&bytes[bytes.len() - 32..]),
        "key_id": id,
        "file_name": format!("keys/{id}"),
        "repository_id": vector_repository().to_hex(),
        "password": VECTOR_PASSWORD,
        "wrapping_key": hex(&wrapping),
        "wrapping_key_is": "Argon2id v0x13 (password, salt, memory_kib, passes, parallelism), 32-byte output",
        "wrapped": {
            "nonce": hex(nonce),
            "ciphertext": hex(ciphertext),
            "tag": hex(tag),
            "associated_data_hex": hex(&ad),
            "associated_data_is": "\"VAULTKEY\" | repository id",
            "plaintext_hex": hex(&master),
            "plaintext_is": "the master keys, data key | id key (not padded)",
        },
    })
}

fn describe_enc_pack(bytes: &[u8]) -> Value {
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let trailer_len =
        u32::from_le_bytes(bytes[bytes.len() - 12..bytes.len() - 8].try_into().unwrap()) as usize;
    let trailer_offset = bytes.len() - 12 - trailer_len;
    let (trailer, plain) = describe_seal(
        &bytes[trailer_offset..bytes.len() - 12],
        &reference::file_ad(&pack::FOOTER_MAGIC, version),
        trailer_offset,
    );
    let count = u32::from_le_bytes(plain[..4].try_into().unwrap()) as usize;
    let blobs: Vec<Value> = (0..count)
        .map(|i| {
            let e = &plain[4 + i * pack::ENTRY_LEN..4 + (i + 1) * pack::ENTRY_LEN];
            let id: [u8; 32] = e[..32].try_into().unwrap();
            let (kind, encoding) = (e[32], e[33]);
            let offset = u64::from_le_bytes(e[36..44].try_into().unwrap()) as usize;
            let stored_len = u32::from_le_bytes(e[44..48].try_into().unwrap()) as usize;
            let raw_len = u32::from_le_bytes(e[48..52].try_into().unwrap());
            let (seal, encoded) = describe_seal(
                &bytes[offset..offset + stored_len],
                &reference::blob_ad(kind, encoding, raw_len, &id),
                offset,
            );
            let raw = match encoding {
                0 => encoded.clone(),
                _ => zstd::bulk::decompress(&encoded, raw_len as usize).unwrap(),
            };
            let kind = BlobKind::from_u8(kind).unwrap();
            json!({
                "trailer_entry_offset_in_plaintext": 4 + i * pack::ENTRY_LEN,
                "id": hex(&id),
                "kind": kind_name(kind),
                "kind_code": kind as u8,
                "encoding": encoding_name(Encoding::from_code(encoding, None).unwrap()),
                "encoding_code": encoding,
                "offset": offset,
                "stored_len": stored_len,
                "raw_len": raw_len,
                "sealed": seal,
                "encoded_hex": hex(&encoded),
                "raw_hex": hex(&raw),
                "raw_blake3": hex(blake3::hash(&raw).as_bytes()),
            })
        })
        .collect();
    let id = PackId::digest(bytes).to_hex();
    json!({
        "structure": "pack file of an encrypted repository (04-packs.md)",
        "length": bytes.len(),
        "id": id,
        "file_name": format!("packs/{}/{id}", &id[..2]),
        "header": { "offset": 0, "magic": "VAULTPAK", "version": version },
        "blobs": blobs,
        "trailer": {
            "sealed": trailer,
            "plaintext_hex": hex(&plain),
            "count": count,
            "checksum": hex(&plain[plain.len() - 32..]),
            "checksum_is": "BLAKE3 of the plaintext trailer's first 4 + 52 * count bytes",
        },
        "footer": { "offset": bytes.len() - 12, "trailer_len": trailer_len, "magic": "VAULTEND" },
    })
}

fn describe_enc_sealed_file(bytes: &[u8], magic: [u8; 8]) -> Value {
    let payload = sealed::decode(magic, V4, bytes).expect("vector decodes");
    let (seal, plain) = describe_seal(payload, &reference::file_ad(&magic, V4), 16);
    let id = hex(blake3::hash(bytes).as_bytes());
    let mut v = json!({
        "length": bytes.len(),
        "magic": String::from_utf8_lossy(&magic),
        "version": V4,
        "payload_offset": 16,
        "payload_len": payload.len(),
        "payload_is": "nonce | AES-256-GCM under BLAKE3 keyed_hash(aead key, nonce[0..12]), GCM nonce nonce[12..24] (JSON padded to a multiple of 64 bytes) | tag",
        "sealed": seal,
        "plaintext": serde_json::from_slice::<Value>(&plain).expect("plaintext is JSON"),
        "checksum_offset": 16 + payload.len(),
        "checksum": hex(&bytes[bytes.len() - 32..]),
    });
    if magic == sealed::SNAPSHOT_MAGIC {
        v["structure"] = json!("snapshot manifest of an encrypted repository");
        v["snapshot_id"] = json!(id);
        v["file_name"] = json!(format!("snapshots/{id}"));
    } else {
        v["structure"] = json!("prune plan of an encrypted repository");
        v["plan_id"] = json!(id);
        v["file_name"] = json!(format!("prune/{id}"));
    }
    v
}

fn engine_lengths_with(data: &[u8], p: ChunkerParams, enc: &Encryption) -> Vec<usize> {
    ContentChunker::new(p, enc)
        .cut(data, true)
        .into_iter()
        .map(|l| l as usize)
        .collect()
}

/// Every encrypted vector file (name relative to `format-spec/vectors/`) -> bytes. `existing`
/// gives a file's current bytes: sealed files that still decode to the expected values are kept.
fn encrypted_vector_files(existing: impl Fn(&str) -> Option<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let enc = vector_encryption();
    let keep = |name: &str, ok: &dyn Fn(&[u8]) -> bool, make: &dyn Fn() -> Vec<u8>| {
        existing(&enc_name(name))
            .filter(|b| ok(b))
            .unwrap_or_else(make)
    };
    let key_file = keep(
        "key-file.bin",
        &|b| key_file_decodes_as_expected(b).is_ok(),
        &build_key_file,
    );
    let pack = keep(
        "pack.bin",
        &|b| enc_pack_decodes_as_expected(&enc, b).is_ok(),
        &|| build_enc_pack(&enc),
    );
    let manifest = keep(
        "manifest.bin",
        &|b| enc_manifest_decodes_as_expected(&enc, b).is_ok(),
        &|| manifest::encode(&enc, &enc_manifest_value()).1,
    );
    let manifest_id = SnapshotId::digest(&manifest);
    let plan = keep(
        "plan.bin",
        &|b| enc_plan_decodes_as_expected(&enc, b, manifest_id).is_ok(),
        &|| plan::encode(&enc, &enc_plan_value(manifest_id)).1,
    );
    let config = config::encode(&enc_config_value());
    vec![
        (enc_name("keys.json"), pretty(&describe_keys())),
        (
            enc_name("config.json"),
            pretty(&describe_enc_config(&config)),
        ),
        (enc_name("config.bin"), config),
        (
            enc_name("key-file.json"),
            pretty(&describe_key_file(&key_file)),
        ),
        (enc_name("key-file.bin"), key_file),
        (enc_name("pack.json"), pretty(&describe_enc_pack(&pack))),
        (enc_name("pack.bin"), pack),
        (
            enc_name("manifest.json"),
            pretty(&describe_enc_sealed_file(&manifest, sealed::SNAPSHOT_MAGIC)),
        ),
        (enc_name("manifest.bin"), manifest),
        (
            enc_name("plan.json"),
            pretty(&describe_enc_sealed_file(&plan, PLAN_MAGIC)),
        ),
        (enc_name("plan.bin"), plan),
    ]
}

fn on_disk(name: &str) -> Option<Vec<u8>> {
    std::fs::read(vectors_dir().join(name)).ok()
}

// ---------------------------------------------------------------------------------------------
// The tests of the encrypted vectors.

fn enc_read(name: &str) -> Vec<u8> {
    read_vector(&enc_name(name))
}

#[test]
fn encrypted_vector_files_are_current() {
    // The descriptions still describe their files, the deterministic files (`keys.json`,
    // `config.bin`) are exact, and the sealed files decode to the values above (otherwise the
    // generator would seal them anew, and they would differ from the files on disk).
    for (name, bytes) in encrypted_vector_files(on_disk) {
        let disk = read_vector(&name);
        if name.ends_with(".json") {
            let a: Value = serde_json::from_slice(&disk).unwrap();
            let b: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(a, b, "{name} is stale; regenerate the vectors");
        } else {
            assert!(disk == bytes, "{name} is stale; regenerate the vectors");
        }
    }
}

#[test]
fn encrypted_keys_vector() {
    let m = vector_master();
    let enc = vector_encryption();
    let described = read_json(&enc_name("keys.json"));
    assert_eq!(described, describe_keys());
    // Master keys: data key, then id key.
    let bytes = m.to_bytes();
    assert_eq!(
        hex(bytes.as_ref()),
        described["master_keys"]["bytes_hex"].as_str().unwrap()
    );
    assert_eq!(&bytes[..32], &m.data);
    let back = MasterKeys::from_bytes(&bytes);
    assert_eq!((back.data, back.id), (m.data, m.id));
    // The engine's keyed ids are keyed BLAKE3 with the subkeys the reference derives.
    for (kind, raw) in enc_pack_blobs(&enc) {
        let key = reference_key(match kind {
            BlobKind::Chunk => "chunk_id",
            BlobKind::Tree => "tree_id",
            BlobKind::List => "list_id",
        });
        let keyed = *blake3::keyed_hash(&key, &raw).as_bytes();
        assert_eq!(enc.blob_id(kind, &raw).0, keyed);
        assert_ne!(kind.digest(&raw).0, keyed);
        if kind == BlobKind::Chunk {
            assert_eq!(enc.chunk_id(&raw).0, keyed);
        }
    }
    // The same bytes have a different id in each kind.
    let same = chunk_a();
    let ids: Vec<_> = [BlobKind::Chunk, BlobKind::Tree, BlobKind::List]
        .iter()
        .map(|k| enc.blob_id(*k, &same))
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    // The gear table and its shifted twin.
    let gear = reference::gear(&reference_key("gear"));
    let (engine_gear, engine_gear_ls) = enc.gear().unwrap();
    assert_eq!(&engine_gear[..], &gear[..]);
    assert!(engine_gear
        .iter()
        .zip(engine_gear_ls.iter())
        .all(|(g, l)| g << 1 == *l));
    assert_ne!(&gear[..], &fastcdc::v2020::get_gear_with_seed(0).0[..]);
    // The config MAC key.
    assert_eq!(
        enc.config_mac(b"any bytes").unwrap(),
        *blake3::keyed_hash(&reference_key("config_mac"), b"any bytes").as_bytes()
    );
    assert!(Encryption::none().config_mac(b"any bytes").is_none());
    // The AEAD key: the engine's seal opens with the reference's key, and the other way round.
    let sealed = enc.seal(b"ad", b"plaintext".to_vec());
    assert_eq!(sealed.len(), 24 + 64 + 16);
    assert_eq!(
        reference::open(&reference_key("aead"), b"ad", &sealed).unwrap(),
        b"plaintext"
    );
}

#[test]
fn encrypted_chunking_uses_the_keyed_gear_table() {
    // The spec's byte-at-a-time algorithm with the keyed gear table cuts where the engine does.
    let enc = vector_encryption();
    let gear = reference::gear(&reference_key("gear"));
    let input = chunking_input();
    let zeros = vec![0u8; ZEROS_LEN];
    for (name, p) in chunking_cases() {
        for data in [&input, &zeros] {
            let engine = engine_lengths_with(data, p, &enc);
            assert_eq!(reference_chunks_with(data, p, &gear), engine, "{name}");
            assert_eq!(engine.iter().sum::<usize>(), data.len());
        }
    }
    // With the small parameters the keyed cut points differ from the unencrypted ones.
    let small = chunking_cases()[1].1;
    assert_ne!(
        engine_lengths_with(&input, small, &enc),
        engine_lengths(&input, small)
    );
}

#[test]
fn encrypted_config_vector() {
    let bytes = enc_read("config.bin");
    let decoded = config::decode(&bytes).unwrap();
    assert_eq!(decoded, enc_config_value());
    assert_eq!(config::encode(&decoded), bytes);
    let EncryptionConfig::Repokey { aead, mac } = &decoded.encryption else {
        panic!("the encrypted config says repokey")
    };
    assert_eq!(aead, "aes-256-gcm-blake3-subkey");
    let input = decoded.mac_input();
    assert_eq!(
        *mac,
        hex(blake3::keyed_hash(&reference_key("config_mac"), &input).as_bytes())
    );
    // What the MAC covers: the compact JSON of the config with an empty mac.
    let text = String::from_utf8(input).unwrap();
    assert!(text.starts_with("{\"version\":4,"), "{text}");
    assert!(
        text.ends_with(",\"encryption\":{\"scheme\":\"repokey\",\"aead\":\"aes-256-gcm-blake3-subkey\",\"mac\":\"\"}}"),
        "{text}"
    );
    // Changed settings no longer match the MAC.
    let mut changed = decoded.clone();
    changed.compression = Compression::None;
    assert_ne!(
        hex(&vector_encryption()
            .config_mac(&changed.mac_input())
            .unwrap()),
        *mac
    );
}

#[test]
fn encrypted_key_file_vector() {
    let bytes = enc_read("key-file.bin");
    key_file_decodes_as_expected(&bytes).unwrap();
    assert_eq!(&bytes[..8], b"VAULTKEY");
    let file = keyfile::decode(&bytes).unwrap();
    assert_eq!(file.kdf.algorithm, "argon2id");
    assert!(file
        .unwrap(b"vector Password", &vector_repository())
        .is_none());
    assert!(file
        .unwrap(VECTOR_PASSWORD.as_bytes(), &RepositoryId([0xff; 32]))
        .is_none());
    // The reference unwraps it too: Argon2id, then the AEAD with "VAULTKEY" | repository id.
    let salt = hex::decode(&file.kdf.salt).unwrap();
    let wrapped = hex::decode(&file.keys).unwrap();
    assert_eq!((salt.len(), wrapped.len()), (32, 24 + 64 + 16));
    let wrapping = reference::argon2id(VECTOR_PASSWORD.as_bytes(), &salt, 64, 1, 1);
    let plain = reference::decrypt(
        &wrapping,
        &reference::key_ad(&vector_repository().0),
        &wrapped,
    )
    .unwrap();
    assert_eq!(plain, vector_master().to_bytes().as_ref());
    let described = read_json(&enc_name("key-file.json"));
    assert_eq!(described["wrapping_key"], json!(hex(&wrapping)));
    assert_eq!(
        described["key_id"],
        json!(hex(blake3::hash(&bytes).as_bytes()))
    );
}

#[test]
fn encrypted_pack_vector() {
    let enc = vector_encryption();
    let bytes = enc_read("pack.bin");
    enc_pack_decodes_as_expected(&enc, &bytes).unwrap();
    let entries = pack::decode_pack(&enc, &bytes).unwrap();
    // The kinds and encodings the vector promises.
    let kinds: Vec<BlobKind> = entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            BlobKind::Chunk,
            BlobKind::Chunk,
            BlobKind::List,
            BlobKind::Tree
        ]
    );
    assert!(entries.iter().any(|e| e.encoding == Encoding::Zstd));
    assert!(entries.iter().any(|e| e.encoding == Encoding::Raw));
    assert_eq!(&bytes[..8], b"VAULTPAK");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), V4);
    // The trailer: sealed, its length that of a sealed plain trailer.
    let trailer_len =
        pack::decode_footer(&bytes[bytes.len() - 12..], bytes.len() as u64).unwrap() as usize;
    assert_eq!(
        trailer_len,
        enc.sealed_len(4 + entries.len() * pack::ENTRY_LEN + 32)
    );
    assert_eq!(
        pack::overhead(&enc, entries.len() as u64, 0) as usize,
        12 + trailer_len + 12
    );
    let stored_trailer = &bytes[bytes.len() - 12 - trailer_len..bytes.len() - 12];
    assert_eq!(
        pack::open_trailer(&enc, stored_trailer, bytes.len() as u64).unwrap(),
        entries
    );
    // Each blob as the reference reads it (described in pack.json) is what the engine opens.
    let described = read_json(&enc_name("pack.json"));
    for (e, d) in entries.iter().zip(described["blobs"].as_array().unwrap()) {
        let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
        let raw = pack::open_blob(&enc, e.id, e.kind, e.encoding, e.raw_len, stored).unwrap();
        assert_eq!(d["raw_hex"], json!(hex(&raw)));
        assert_eq!(d["id"], json!(e.id.to_hex()));
        assert_eq!(
            e.stored_len as usize,
            enc.sealed_len(d["encoded_hex"].as_str().unwrap().len() / 2)
        );
        // The associated data binds the blob to its entry: another kind, encoding, length or
        // id fails authentication.
        let other_kind = if e.kind == BlobKind::Tree {
            BlobKind::List
        } else {
            BlobKind::Tree
        };
        let other_encoding = if e.encoding == Encoding::Raw {
            Encoding::Zstd
        } else {
            Encoding::Raw
        };
        let mut other_id = e.id;
        other_id.0[31] ^= 1;
        for (id, kind, encoding, raw_len) in [
            (e.id, other_kind, e.encoding, e.raw_len),
            (e.id, e.kind, other_encoding, e.raw_len),
            (e.id, e.kind, e.encoding, e.raw_len + 1),
            (other_id, e.kind, e.encoding, e.raw_len),
        ] {
            assert_eq!(
                pack::open_blob(&enc, id, kind, encoding, raw_len, stored),
                Err(DecodeError::Authentication),
                "{e:?}"
            );
        }
    }
    // A blob's bytes under another entry fail authentication.
    let (a, b) = (entries[0], entries[2]);
    let stored_b = &bytes[b.offset as usize..(b.offset + b.stored_len as u64) as usize];
    assert_eq!(
        pack::open_blob(&enc, a.id, a.kind, a.encoding, a.raw_len, stored_b),
        Err(DecodeError::Authentication)
    );
    // Without the keys, or with other keys, the trailer does not open.
    assert!(pack::decode_pack(&Encryption::none(), &bytes).is_err());
    let other = Encryption::with_keys(MasterKeys {
        data: [7; 32],
        id: vector_master().id,
    });
    assert_eq!(
        pack::decode_pack(&other, &bytes),
        Err(DecodeError::Authentication)
    );
    // No plaintext of the blobs is in the file.
    for needle in [&b"hello, vault"[..], b"quick brown fox", b"file-lists"] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

#[test]
fn encrypted_manifest_and_plan_vectors() {
    let enc = vector_encryption();
    let manifest_bytes = enc_read("manifest.bin");
    let plan_bytes = enc_read("plan.bin");
    let manifest_id = SnapshotId::digest(&manifest_bytes);
    enc_manifest_decodes_as_expected(&enc, &manifest_bytes).unwrap();
    enc_plan_decodes_as_expected(&enc, &plan_bytes, manifest_id).unwrap();
    let other = Encryption::with_keys(MasterKeys {
        data: [7; 32],
        id: vector_master().id,
    });
    for (bytes, magic, plaintext) in [
        (
            &manifest_bytes,
            sealed::SNAPSHOT_MAGIC,
            serde_json::to_value(enc_manifest_value()).unwrap(),
        ),
        (
            &plan_bytes,
            PLAN_MAGIC,
            serde_json::to_value(enc_plan_value(manifest_id)).unwrap(),
        ),
    ] {
        assert_eq!(&bytes[..8], &magic);
        // The reference reader's plaintext (in the .json) is the expected JSON.
        assert_eq!(
            describe_enc_sealed_file(bytes, magic)["plaintext"],
            plaintext
        );
        // Not readable without the keys or with other keys.
        let decode = |enc: &Encryption, b: &[u8]| {
            if magic == PLAN_MAGIC {
                plan::decode(enc, b).map(drop)
            } else {
                manifest::decode(enc, b).map(drop)
            }
        };
        assert!(decode(&Encryption::none(), bytes).is_err());
        assert_eq!(decode(&other, bytes), Err(DecodeError::Authentication));
        // The associated data names the kind: the payload in the other kind's envelope (with a
        // valid checksum) fails authentication.
        let payload = sealed::decode(magic, V4, bytes).unwrap();
        let other_magic = if magic == PLAN_MAGIC {
            sealed::SNAPSHOT_MAGIC
        } else {
            PLAN_MAGIC
        };
        let moved = sealed::encode(other_magic, V4, payload);
        let moved_result = if magic == PLAN_MAGIC {
            manifest::decode(&enc, &moved).map(drop)
        } else {
            plan::decode(&enc, &moved).map(drop)
        };
        assert_eq!(moved_result, Err(DecodeError::Authentication));
    }
    assert!(!manifest_bytes.windows(15).any(|w| w == b"db1.example.org"));
    // The manifest's root is the tree blob of the encrypted pack.
    let root = manifest::decode(&enc, &manifest_bytes)
        .unwrap()
        .root()
        .unwrap();
    let pack_entries = pack::decode_pack(&enc, &enc_read("pack.bin")).unwrap();
    assert_eq!(pack_entries[3].id, root.into());
}

/// Whether the encrypted vector `name` decodes completely (with the vector keys and password).
fn enc_accepted(name: &str, bytes: &[u8]) -> bool {
    let enc = vector_encryption();
    match name {
        "config.bin" => config::decode(bytes).is_ok_and(|c| match &c.encryption {
            EncryptionConfig::Repokey { mac, .. } => {
                hex(&enc.config_mac(&c.mac_input()).unwrap()) == *mac
            }
            EncryptionConfig::None => false,
        }),
        "key-file.bin" => keyfile::decode(bytes).is_ok_and(|f| {
            f.unwrap(VECTOR_PASSWORD.as_bytes(), &vector_repository())
                .is_some()
        }),
        "pack.bin" => pack::decode_pack(&enc, bytes).is_ok_and(|entries| {
            entries.iter().all(|e| {
                let stored = &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
                pack::open_blob(&enc, e.id, e.kind, e.encoding, e.raw_len, stored).is_ok()
            })
        }),
        "manifest.bin" => manifest::decode(&enc, bytes).is_ok(),
        "plan.bin" => plan::decode(&enc, bytes).is_ok(),
        _ => unreachable!("{name}"),
    }
}

const ENCRYPTED_BINS: [&str; 5] = [
    "config.bin",
    "key-file.bin",
    "pack.bin",
    "manifest.bin",
    "plan.bin",
];

#[test]
fn encrypted_vectors_reject_every_flipped_byte() {
    for name in ENCRYPTED_BINS {
        let bytes = enc_read(name);
        assert!(enc_accepted(name, &bytes), "{name}");
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                // A pack header's version 4 flipped into 5 is a version 5 pack without deltas,
                // byte for byte a version 4 one otherwise: only the pack's name tells.
                if name == "pack.bin" && i == 8 && vault_engine::format::supported(bad[8] as u32) {
                    continue;
                }
                assert!(
                    !enc_accepted(name, &bad),
                    "{name}: flip {bit:#x} at {i} accepted"
                );
            }
        }
        assert!(!enc_accepted(name, &bytes[..bytes.len() - 1]), "{name}");
    }
}

/// `bytes` (a sealed file of `magic`) with byte `i` of its payload flipped and the checksum
/// recomputed: what is left to catch the flip is what is inside the payload.
fn reenveloped_flip(bytes: &[u8], magic: [u8; 8], i: usize, bit: u8) -> Vec<u8> {
    let mut payload = sealed::decode(magic, V4, bytes).unwrap().to_vec();
    payload[i] ^= bit;
    sealed::encode(magic, V4, &payload)
}

#[test]
fn encrypted_payloads_reject_every_flip_behind_a_valid_checksum() {
    let enc = vector_encryption();
    // Sealed payloads: the AEAD tag catches every flip.
    for (name, magic) in [
        ("manifest.bin", sealed::SNAPSHOT_MAGIC),
        ("plan.bin", PLAN_MAGIC),
    ] {
        let bytes = enc_read(name);
        let len = bytes.len() - 48;
        for i in 0..len {
            for bit in [0x01u8, 0x80] {
                let bad = reenveloped_flip(&bytes, magic, i, bit);
                let result = if magic == PLAN_MAGIC {
                    plan::decode(&enc, &bad).map(drop)
                } else {
                    manifest::decode(&enc, &bad).map(drop)
                };
                assert_eq!(
                    result,
                    Err(DecodeError::Authentication),
                    "{name}: flip at {i}"
                );
            }
        }
    }
    // The config is not encrypted: its MAC (or the decoder) catches every flip in its JSON.
    let bytes = enc_read("config.bin");
    for i in 0..bytes.len() - 48 {
        for bit in [0x01u8, 0x80] {
            let bad = reenveloped_flip(&bytes, sealed::CONFIG_MAGIC, i, bit);
            assert!(
                !enc_accepted("config.bin", &bad),
                "config.bin: flip {bit:#x} at {i}"
            );
        }
    }
    // A key file: every flip in the salt, the Argon2id parameters or the wrapped keys. (The
    // `created` and `host` members are informational and covered only by the checksum.)
    let bytes = enc_read("key-file.bin");
    let payload = sealed::decode(keyfile::KEY_MAGIC, V4, &bytes)
        .unwrap()
        .to_vec();
    let file = keyfile::decode(&bytes).unwrap();
    let find = |needle: &str| {
        payload
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap_or_else(|| panic!("{needle} not in the key file"))
    };
    let kdf_start = find("\"kdf\"");
    let salt_at = find(&file.kdf.salt);
    let keys_at = find(&file.keys);
    let flipped =
        (kdf_start..salt_at + file.kdf.salt.len()).chain(keys_at..keys_at + file.keys.len());
    for i in flipped {
        for bit in [0x01u8, 0x80] {
            let bad = reenveloped_flip(&bytes, keyfile::KEY_MAGIC, i, bit);
            assert!(
                !enc_accepted("key-file.bin", &bad),
                "key-file.bin: flip {bit:#x} at {i}"
            );
        }
    }
}

#[test]
fn encrypted_vectors_are_a_repository_that_unlocks_and_restores() {
    // The config, key file, pack and manifest, stored under their names, are a repository.
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("repo");
    let pack = enc_read("pack.bin");
    let pack_id = PackId::digest(&pack).to_hex();
    let key = enc_read("key-file.bin");
    let manifest_bytes = enc_read("manifest.bin");
    let files = [
        ("config".to_string(), enc_read("config.bin")),
        (format!("keys/{}", hex(blake3::hash(&key).as_bytes())), key),
        (format!("packs/{}/{pack_id}", &pack_id[..2]), pack),
        (
            format!("snapshots/{}", SnapshotId::digest(&manifest_bytes).to_hex()),
            manifest_bytes,
        ),
    ];
    for (name, bytes) in &files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let backend = || std::sync::Arc::new(vault_engine::storage::LocalBackend::new(&root));
    let cache = work.path().join("cache");
    let wrong = Repository::unlock(backend(), &cache, &|| {
        Ok(zeroize::Zeroizing::new(b"not the password".to_vec()))
    });
    assert!(
        matches!(wrong, Err(vault_engine::Error::WrongPassword { .. })),
        "{wrong:?}"
    );
    let repo = Repository::unlock(backend(), &cache, &|| {
        Ok(zeroize::Zeroizing::new(VECTOR_PASSWORD.as_bytes().to_vec()))
    })
    .unwrap();
    assert_eq!(repo.id(), vector_repository());
    assert_eq!(
        repo.encryption().master().unwrap().to_bytes()[..],
        vector_master().to_bytes()[..]
    );
    let (snapshots, bad) = repo.snapshots().unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].manifest, enc_manifest_value());
    let target = work.path().join("restored");
    vault_engine::restore::run(
        &repo,
        &snapshots[0],
        &vault_engine::RestoreOptions::new(target.clone()),
        &vault_engine::NoProgress,
    )
    .unwrap();
    let content = std::fs::read(target.join("file-lists")).unwrap();
    assert_eq!(content, [chunk_a(), chunk_b(), chunk_a()].concat());
}
