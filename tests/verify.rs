//! `vault verify` and `vault index rebuild` against real repositories damaged on disk.
//!
//! Every test builds the same repository: two snapshots (made by the real binary) of a tree of
//! compressible and random files, in a repository initialised through the engine with the
//! smallest pack target (1 MiB) and 64 KiB file chunks, so that ~12 MiB of data fill a dozen
//! packs (the CLI has no `--pack-size`). Then it damages the repository the way a disk or an
//! operator would, and checks the exact report: problem kind, pack id, blob id, and the
//! snapshots and paths affected, against an oracle computed here from the pack files and the
//! source files alone (which file holds the raw bytes of which chunk), plus the exit code
//! (0 clean, 3 problems, 1 could not run) and that nothing panicked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vault_engine::format::pack::{self, BlobEntry, BlobKind, Encoding};
use vault_engine::format::tree::decode_tree;
use vault_engine::index::Index;
use vault_engine::storage::LocalBackend;
use vault_engine::{ChunkerConfig, ChunkerParams, InitOptions, PackId, Repository};

use crate::util::*;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

// ------------------------------------------------------------------------------------------------
// The repository under test
// ------------------------------------------------------------------------------------------------

/// Files of the first snapshot (source-relative path, content). `report-copy.txt` repeats
/// `report.txt`, so its chunks are stored once and reached by two paths; `video.bin` has more
/// than 64 chunks, so its content goes through a chunk list.
fn first_files() -> Vec<(&'static str, Vec<u8>)> {
    let report = compressible_bytes(11, MIB);
    vec![
        ("docs/report.txt", report.clone()),
        ("docs/report-copy.txt", report),
        ("docs/notes.txt", compressible_bytes(12, 300 * KIB)),
        ("media/photo.bin", random_bytes(21, 2 * MIB)),
        ("media/video.bin", random_bytes(22, 5 * MIB)),
        ("deep/a/sibling.bin", random_bytes(32, 256 * KIB)),
        ("deep/a/b/leaf.txt", compressible_bytes(31, 200 * KIB)),
        ("deep/a/b/c/tiny.txt", b"tiny\n".to_vec()),
        ("small.txt", b"hello\n".to_vec()),
    ]
}

/// Files added before the second snapshot.
fn later_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("later/fresh.bin", random_bytes(41, 3 * MIB / 2)),
        ("later/fresh.txt", compressible_bytes(42, 400 * KIB)),
    ]
}

/// A pack file on disk, decoded before any damage.
#[derive(Clone)]
struct PackFile {
    id: String,
    path: PathBuf,
    size: u64,
    entries: Vec<BlobEntry>,
}

impl PackFile {
    fn chunk_ids(&self) -> BTreeSet<String> {
        self.entries
            .iter()
            .filter(|e| e.kind == BlobKind::Chunk)
            .map(|e| e.id.to_hex())
            .collect()
    }
}

struct Fixture {
    env: Env,
    src: PathBuf,
    /// Source-relative path -> content, every file of the second snapshot.
    files: BTreeMap<String, Vec<u8>>,
    /// Source-relative paths of the files in the first snapshot.
    in_first: BTreeSet<String>,
    first: String,
    second: String,
    index_file: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let env = Env::new();
        let options = InitOptions {
            chunker: ChunkerConfig {
                file: ChunkerParams {
                    min: 16 << 10,
                    avg: 64 << 10,
                    max: 256 << 10,
                },
                ..InitOptions::default().chunker
            },
            pack_target_size: 1 << 20,
            ..InitOptions::default()
        };
        let repo = Repository::init(Arc::new(LocalBackend::new(&env.repo)), &env.cache, &options)
            .expect("init the repository");
        let index_file = repo.index().path().to_path_buf();
        drop(repo);

        let src = env.path("src");
        let mut files = BTreeMap::new();
        for (rel, content) in first_files() {
            write(&src.join(rel), &content);
            files.insert(rel.to_string(), content);
        }
        let in_first: BTreeSet<String> = files.keys().cloned().collect();
        let first = id_of(&env.snapshot([
            src.as_os_str(),
            "--time".as_ref(),
            "2026-01-01T00:00:00Z".as_ref(),
        ]));
        for (rel, content) in later_files() {
            write(&src.join(rel), &content);
            files.insert(rel.to_string(), content);
        }
        let second = id_of(&env.snapshot([
            src.as_os_str(),
            "--time".as_ref(),
            "2026-01-02T00:00:00Z".as_ref(),
        ]));
        let fixture = Fixture {
            env,
            src,
            files,
            in_first,
            first,
            second,
            index_file,
        };
        assert!(
            fixture.index_file.is_file(),
            "no index cache at {}",
            fixture.index_file.display()
        );
        let packs = fixture.packs();
        assert!(packs.len() >= 8, "only {} packs", packs.len());
        fixture
    }

    /// The absolute path of a source file, as snapshots record it.
    fn abs(&self, rel: &str) -> String {
        self.src.join(rel).to_str().unwrap().to_string()
    }

    /// Every pack in the repository, by id, decoded.
    fn packs(&self) -> BTreeMap<String, PackFile> {
        let mut out = BTreeMap::new();
        for path in pack_files(&self.env.repo) {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let data = fs::read(&path).unwrap();
            let entries = pack::decode_pack(&vault_engine::keys::Encryption::none(), &data)
                .unwrap_or_else(|e| panic!("pack {name} does not decode: {e}"));
            out.insert(
                name.clone(),
                PackFile {
                    id: name,
                    path,
                    size: data.len() as u64,
                    entries,
                },
            );
        }
        out
    }

    /// Source-relative paths of the files whose content contains `raw`.
    fn files_holding(&self, raw: &[u8]) -> BTreeSet<String> {
        self.files
            .iter()
            .filter(|(_, content)| contains(content, raw))
            .map(|(rel, _)| rel.clone())
            .collect()
    }

    /// Files holding any chunk of `pack`.
    fn files_of_pack(&self, pack: &PackFile) -> BTreeSet<String> {
        let data = fs::read(&pack.path).unwrap();
        let mut out = BTreeSet::new();
        for e in pack.entries.iter().filter(|e| e.kind == BlobKind::Chunk) {
            let holders = self.files_holding(&raw_blob(&data, e));
            assert!(!holders.is_empty(), "chunk {} is in no file", e.id.to_hex());
            out.extend(holders);
        }
        out
    }

    /// What a problem reaching `rels` (source-relative) affects: snapshot -> absolute paths.
    fn affected(&self, rels: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        let first: BTreeSet<String> = rels
            .iter()
            .filter(|r| self.in_first.contains(*r))
            .map(|r| self.abs(r))
            .collect();
        if !first.is_empty() {
            out.insert(self.first.clone(), first);
        }
        if !rels.is_empty() {
            out.insert(
                self.second.clone(),
                rels.iter().map(|r| self.abs(r)).collect(),
            );
        }
        out
    }

    /// The first data pack (chunks only) holding a chunk of a file of the first snapshot.
    fn data_pack(&self) -> PackFile {
        self.packs()
            .into_values()
            .find(|p| {
                p.entries.iter().all(|e| e.kind == BlobKind::Chunk)
                    && self
                        .files_of_pack(p)
                        .iter()
                        .any(|f| self.in_first.contains(f))
            })
            .expect("a data pack")
    }

    /// The first chunk (in pack id and trailer order) matching `wanted`, with its pack.
    fn find_chunk(
        &self,
        wanted: impl Fn(&BlobEntry, &BTreeSet<String>) -> bool,
    ) -> (PackFile, BlobEntry) {
        for pack in self.packs().into_values() {
            let data = fs::read(&pack.path).unwrap();
            for e in pack.entries.iter().filter(|e| e.kind == BlobKind::Chunk) {
                if wanted(e, &self.files_holding(&raw_blob(&data, e))) {
                    return (pack.clone(), *e);
                }
            }
        }
        panic!("no such chunk in the repository");
    }

    /// The tree blob of directory `rel` (found by its entry names), with its pack.
    fn find_tree(&self, entry_names: &[&str]) -> (PackFile, BlobEntry) {
        for pack in self.packs().into_values() {
            let data = fs::read(&pack.path).unwrap();
            for e in pack.entries.iter().filter(|e| e.kind == BlobKind::Tree) {
                let tree = decode_tree(&raw_blob(&data, e)).unwrap();
                let got: Vec<&[u8]> = tree.entries.iter().map(|t| t.name.as_slice()).collect();
                let want: Vec<&[u8]> = entry_names.iter().map(|n| n.as_bytes()).collect();
                if got == want {
                    return (pack.clone(), *e);
                }
            }
        }
        panic!("no tree with entries {entry_names:?}");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The raw bytes of a blob of a pack file, checked against its id.
fn raw_blob(pack_data: &[u8], e: &BlobEntry) -> Vec<u8> {
    let stored = &pack_data[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
    pack::open_blob(
        &vault_engine::keys::Encryption::none(),
        e.id,
        e.kind,
        e.encoding,
        e.raw_len,
        stored,
    )
    .unwrap_or_else(|err| panic!("blob {} does not open: {err}", e.id.to_hex()))
}

/// Makes a repository file writable again (objects are written read-only).
fn writable(path: &Path) {
    chmod(path, 0o644);
}

/// Flips one bit of `e`'s stored bytes in the pack file, choosing a bit whose change the blob's
/// digest check notices (a few bits of zstd data change nothing once decoded).
fn damage_blob(pack: &PackFile, e: &BlobEntry) {
    writable(&pack.path);
    let mut data = fs::read(&pack.path).unwrap();
    let len = e.stored_len as u64;
    for attempt in 0..64u64 {
        let at = (e.offset + len / 2 + attempt * 7 % len.max(1)) as usize;
        let bit = (attempt % 8) as u8;
        data[at] ^= 1 << bit;
        let stored = &data[e.offset as usize..(e.offset + len) as usize];
        if pack::open_blob(
            &vault_engine::keys::Encryption::none(),
            e.id,
            e.kind,
            e.encoding,
            e.raw_len,
            stored,
        )
        .is_err()
        {
            fs::write(&pack.path, &data).unwrap();
            return;
        }
        data[at] ^= 1 << bit;
    }
    panic!("no bit flip damages blob {}", e.id.to_hex());
}

// ------------------------------------------------------------------------------------------------
// Running verify and reading its report
// ------------------------------------------------------------------------------------------------

#[track_caller]
fn no_panic(out: &Out) {
    out.no_panic();
}

/// `vault <args>` (no --json): asserts the exit code and that nothing panicked.
#[track_caller]
fn run_vault(env: &Env, args: &[&str], code: i32) -> Out {
    let out = env.run(args);
    no_panic(&out);
    out.code(code);
    out
}

/// `vault verify --json ARGS`: asserts the exit code, that nothing panicked and that `clean`
/// agrees with the exit code; returns the whole JSON object.
#[track_caller]
fn verify_json(env: &Env, args: &[&str], code: i32) -> (Value, Out) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let out = run_vault(env, &all, code);
    let v = out.json();
    assert_eq!(v["clean"], code == 0, "{v:#}");
    for key in [
        "snapshots",
        "trees",
        "packs",
        "packs_read",
        "blobs_read",
        "bytes_read",
    ] {
        assert!(v["report"][key].is_u64(), "report.{key} missing: {v:#}");
    }
    (v, out)
}

/// One problem of a report, in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Found {
    kind: String,
    pack: Option<String>,
    blob: Option<String>,
    count: u64,
    /// Snapshot id -> paths.
    affected: BTreeMap<String, BTreeSet<String>>,
}

impl Found {
    fn new(
        kind: &str,
        pack: Option<&str>,
        blob: Option<&str>,
        count: u64,
        affected: BTreeMap<String, BTreeSet<String>>,
    ) -> Found {
        Found {
            kind: kind.into(),
            pack: pack.map(str::to_string),
            blob: blob.map(str::to_string),
            count,
            affected,
        }
    }
}

/// The problems of a `verify --json` report, sorted; checks details are present and no path is
/// listed twice or left uncounted.
#[track_caller]
fn problems(v: &Value) -> Vec<Found> {
    let mut out: Vec<Found> = v["report"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems array: {v:#}"))
        .iter()
        .map(|p| {
            assert!(
                !p["detail"].as_str().unwrap_or("").is_empty(),
                "problem without detail: {p}"
            );
            let affected = p["affected"]
                .as_object()
                .unwrap_or_else(|| panic!("no affected: {p}"))
                .iter()
                .map(|(snapshot, a)| {
                    assert_eq!(a["more"], 0, "{p}");
                    let paths: Vec<String> = a["paths"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_string())
                        .collect();
                    let set: BTreeSet<String> = paths.iter().cloned().collect();
                    assert_eq!(set.len(), paths.len(), "a path listed twice: {p}");
                    (snapshot.clone(), set)
                })
                .collect();
            Found {
                kind: p["kind"].as_str().unwrap().to_string(),
                pack: p["pack"].as_str().map(str::to_string),
                blob: p["blob"].as_str().map(str::to_string),
                count: p["count"].as_u64().unwrap(),
                affected,
            }
        })
        .collect();
    out.sort();
    out
}

/// `damaged_snapshots` of a report.
fn damaged(v: &Value) -> Vec<String> {
    v["damaged_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn report_u64(v: &Value, key: &str) -> u64 {
    v["report"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("report.{key} missing: {v:#}"))
}

/// The human report names each damaged snapshot, each problem's kind and object, and paths.
#[track_caller]
fn assert_human_report(out: &Out, expected: &[Found]) {
    let text = out.stdout_str();
    let mut wanted: Vec<String> = vec!["PROBLEMS FOUND".into()];
    for f in expected {
        let object = f.blob.as_deref().or(f.pack.as_deref()).unwrap_or("");
        wanted.push(format!(
            "  {} {}: ",
            f.kind,
            &object[..object.len().min(16)]
        ));
        for (snapshot, paths) in &f.affected {
            wanted.push(format!("snapshot {}: DAMAGED", &snapshot[..16]));
            for path in paths {
                wanted.push(format!("    {path}\n"));
            }
        }
    }
    for w in wanted {
        assert!(text.contains(&w), "human report lacks {w:?}:\n{text}");
    }
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[test]
fn undamaged_repository_verifies_clean_and_read_data_reads_every_pack() {
    let fx = Fixture::new();
    let packs = fx.packs();
    let (v, _) = verify_json(&fx.env, &[], 0);
    assert_eq!(problems(&v), vec![]);
    assert_eq!(report_u64(&v, "snapshots"), 2);
    assert_eq!(report_u64(&v, "packs"), packs.len() as u64);
    assert_eq!(report_u64(&v, "packs_read"), 0);
    assert!(report_u64(&v, "trees") >= 7, "{v:#}");

    let (v, _) = verify_json(&fx.env, &["--read-data"], 0);
    assert_eq!(report_u64(&v, "packs_read"), packs.len() as u64);
    assert_eq!(
        report_u64(&v, "bytes_read"),
        packs.values().map(|p| p.size).sum::<u64>()
    );
    assert_eq!(
        report_u64(&v, "blobs_read"),
        packs.values().map(|p| p.entries.len() as u64).sum::<u64>()
    );

    let out = run_vault(&fx.env, &["verify"], 0);
    let text = out.stdout_str();
    assert!(
        text.contains("clean: 2 snapshots, ") && text.contains(" 0 problems in "),
        "{text}"
    );
    assert!(!text.contains("DAMAGED"), "{text}");
}

#[test]
fn bit_flip_in_a_compressed_chunk_is_found_by_read_data() {
    let fx = Fixture::new();
    let both: BTreeSet<String> = ["docs/report-copy.txt", "docs/report.txt"]
        .map(String::from)
        .into();
    let (pack, chunk) =
        fx.find_chunk(|e, holders| e.encoding == Encoding::Zstd && *holders == both);
    damage_blob(&pack, &chunk);

    // Structure is intact: the trailer, the index and every tree still agree.
    let (v, _) = verify_json(&fx.env, &[], 0);
    assert_eq!(problems(&v), vec![]);

    let expected = vec![Found::new(
        "blob_damaged",
        Some(&pack.id),
        Some(&chunk.id.to_hex()),
        1,
        fx.affected(&both),
    )];
    let (v, _) = verify_json(&fx.env, &["--read-data"], 3);
    assert_eq!(problems(&v), expected, "{v:#}");
    assert_eq!(
        damaged(&v),
        sorted(vec![fx.first.clone(), fx.second.clone()])
    );
    assert_eq!(report_u64(&v, "blobs_unindexed"), 1, "{v:#}");
    assert_eq!(report_u64(&v, "packs_read"), fx.packs().len() as u64);

    // Again, in words: the damaged copy is still in its pack and still reached.
    let out = run_vault(&fx.env, &["verify", "--read-data"], 3);
    assert_human_report(&out, &expected);

    // Without --read-data, verify reads again the pack in which damage was recorded (and only
    // that one): the chunk is still reported as damaged there, for the same snapshots and paths.
    let (v, _) = verify_json(&fx.env, &[], 3);
    assert_eq!(problems(&v), expected, "{v:#}");
    assert_eq!(report_u64(&v, "packs_read"), 1, "{v:#}");
}

#[test]
fn truncated_pack_is_unreadable_with_its_impact() {
    let fx = Fixture::new();
    let pack = fx.data_pack();
    let holders = fx.files_of_pack(&pack);
    writable(&pack.path);
    let f = fs::OpenOptions::new().write(true).open(&pack.path).unwrap();
    f.set_len(pack.size / 2).unwrap();
    drop(f);

    let expected = vec![Found::new(
        "pack_unreadable",
        Some(&pack.id),
        None,
        1,
        fx.affected(&holders),
    )];
    let (v, _) = verify_json(&fx.env, &[], 3);
    assert_eq!(problems(&v), expected, "{v:#}");
    let (v, _) = verify_json(&fx.env, &["--read-data"], 3);
    assert_eq!(problems(&v), expected, "{v:#}");
    let out = run_vault(&fx.env, &["verify"], 3);
    assert_human_report(&out, &expected);
}

#[test]
fn deleted_pack_is_reported_as_missing_blobs_with_their_impact() {
    let fx = Fixture::new();
    let pack = fx.data_pack();
    let holders = fx.files_of_pack(&pack);
    let chunks = pack.chunk_ids();
    fs::remove_file(&pack.path).unwrap();

    let (v, out) = verify_json(&fx.env, &[], 3);
    assert!(
        out.stderr
            .contains("1 packs known to the index cache are gone; index rebuilt"),
        "{}",
        out.stderr
    );
    let found = problems(&v);
    assert_eq!(found.len(), 1, "{v:#}");
    let first = found[0].blob.clone().expect("the first missing blob");
    assert!(
        chunks.contains(&first),
        "{first} is not a chunk of the pack"
    );
    assert_eq!(
        found,
        vec![Found::new(
            "blob_missing",
            None,
            Some(&first),
            chunks.len() as u64,
            fx.affected(&holders)
        )]
    );
    let detail = v["report"]["problems"][0]["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        format!(
            "{} chunk blob(s) referenced by snapshots are in no pack (first: {first})",
            chunks.len()
        )
    );
    assert_eq!(report_u64(&v, "packs"), fx.packs().len() as u64);
}

#[test]
fn corrupted_trailer_makes_the_pack_unreadable_with_its_impact() {
    let fx = Fixture::new();
    let pack = fx.data_pack();
    let holders = fx.files_of_pack(&pack);
    // A byte inside the first entry's blob id: the trailer checksum (P4) no longer matches.
    let trailer_len = 4 + 52 * pack.entries.len() as u64 + 32;
    let at = (pack.size - 12 - trailer_len + 4 + 10) as usize;
    writable(&pack.path);
    let mut data = fs::read(&pack.path).unwrap();
    data[at] ^= 0x20;
    fs::write(&pack.path, &data).unwrap();

    let expected = vec![Found::new(
        "pack_unreadable",
        Some(&pack.id),
        None,
        1,
        fx.affected(&holders),
    )];
    let (v, _) = verify_json(&fx.env, &[], 3);
    assert_eq!(problems(&v), expected, "{v:#}");
    let out = run_vault(&fx.env, &["verify"], 3);
    assert_human_report(&out, &expected);

    // A rebuilt index still places the pack's blobs, through the index segment that described
    // the pack when it was written (format-spec/11-remote.md 11.4): only the trailer is damaged.
    let out = run_vault(&fx.env, &["index", "rebuild"], 0);
    assert!(
        out.stdout_str().contains("index rebuilt"),
        "{}",
        out.stdout_str()
    );
    let (v, _) = verify_json(&fx.env, &[], 3);
    assert_eq!(problems(&v), expected, "{v:#}");

    // Without the segments, a rebuilt index cannot place the pack's blobs any more: the pack is
    // still unreadable and its chunks are now missing, for the same snapshots and paths.
    for segment in fs::read_dir(fx.env.repo.join("index")).unwrap() {
        fs::remove_file(segment.unwrap().path()).unwrap();
    }
    let out = run_vault(&fx.env, &["index", "rebuild"], 3);
    out.stderr_has(&format!("vault: pack {} could not be read: ", pack.id));
    let (v, _) = verify_json(&fx.env, &[], 3);
    let found = problems(&v);
    assert_eq!(found.len(), 2, "{v:#}");
    assert_eq!(
        found[0],
        Found::new(
            "blob_missing",
            None,
            found[0].blob.as_deref(),
            pack.chunk_ids().len() as u64,
            fx.affected(&holders)
        )
    );
    assert!(pack.chunk_ids().contains(found[0].blob.as_ref().unwrap()));
    assert_eq!(
        found[1],
        Found::new("pack_unreadable", Some(&pack.id), None, 1, BTreeMap::new())
    );
}

#[test]
fn deleted_index_cache_is_rebuilt_and_verify_passes() {
    let fx = Fixture::new();
    let packs = fx.packs();
    let blobs: BTreeSet<String> = packs
        .values()
        .flat_map(|p| p.entries.iter().map(|e| e.id.to_hex()))
        .collect();
    fs::remove_file(&fx.index_file).unwrap();

    let out = run_vault(&fx.env, &["verify"], 0);
    assert!(
        out.stderr.contains("index cache") && out.stderr.contains("rebuil"),
        "verify does not say that it rebuilt the missing index cache:\n{}",
        out.stderr
    );
    assert!(fx.index_file.is_file());

    let out = run_vault(&fx.env, &["index", "rebuild"], 0);
    assert!(
        out.stdout_str().contains(&format!(
            "index rebuilt from {} packs: {} blobs",
            packs.len(),
            blobs.len()
        )),
        "{}",
        out.stdout_str()
    );
    let out = run_vault(&fx.env, &["index", "rebuild", "--json"], 0);
    assert_eq!(
        out.json(),
        serde_json::json!({"schema_version": 1, "packs": packs.len(), "blobs": blobs.len(), "unreadable": [], "segments_unreadable": []})
    );
    let (v, _) = verify_json(&fx.env, &["--read-data"], 0);
    assert_eq!(report_u64(&v, "snapshots"), 2);
    assert_eq!(report_u64(&v, "packs_read"), packs.len() as u64);
}

#[test]
fn garbage_index_cache_is_moved_aside_and_rebuilt() {
    let fx = Fixture::new();
    let garbage = random_bytes(99, 64 * KIB);
    fs::write(&fx.index_file, &garbage).unwrap();

    let out = run_vault(&fx.env, &["verify"], 0);
    out.stderr_has(&format!(
        "vault: index cache {} was unusable (",
        fx.index_file.display()
    ))
    .stderr_has("moved aside, rebuilding it from the pack trailers");
    let dir = fx.index_file.parent().unwrap();
    let aside: Vec<PathBuf> = names(dir)
        .into_iter()
        .filter(|n| n.to_str().unwrap().starts_with("index.redb.broken-"))
        .map(|n| dir.join(n))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", names(dir));
    let suffix = aside[0].to_str().unwrap().rsplit('-').next().unwrap();
    assert!(
        !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        "{}",
        aside[0].display()
    );
    assert_eq!(fs::read(&aside[0]).unwrap(), garbage);

    run_vault(&fx.env, &["index", "rebuild"], 0);
    let (v, out) = verify_json(&fx.env, &["--read-data"], 0);
    assert!(!out.stderr.contains("unusable"), "{}", out.stderr);
    assert_eq!(report_u64(&v, "packs_read"), fx.packs().len() as u64);
}

#[test]
fn corrupted_manifest_names_its_snapshot_and_others_still_verify() {
    let fx = Fixture::new();
    let manifest = fx.env.repo.join("snapshots").join(&fx.first);
    writable(&manifest);
    let mut data = fs::read(&manifest).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x01;
    fs::write(&manifest, &data).unwrap();

    let root: BTreeSet<String> = ["/".to_string()].into();
    let expected = vec![Found::new(
        "snapshot_damaged",
        None,
        None,
        1,
        [(fx.first.clone(), root)].into(),
    )];
    let (v, _) = verify_json(&fx.env, &["--read-data"], 3);
    assert_eq!(problems(&v), expected, "{v:#}");
    assert_eq!(damaged(&v), vec![fx.first.clone()]);
    assert_eq!(
        report_u64(&v, "snapshots"),
        1,
        "the intact snapshot is walked"
    );
    let out = run_vault(&fx.env, &["verify"], 3);
    let text = out.stdout_str();
    assert!(
        text.contains(&format!("snapshot {}: DAMAGED", &fx.first[..16]))
            && text.contains(&format!("  snapshot {}: damaged", fx.first))
            && !text.contains(&format!("snapshot {}: DAMAGED", &fx.second[..16])),
        "{text}"
    );

    let (v, _) = verify_json(&fx.env, &["--snapshot", &fx.second], 0);
    assert_eq!(report_u64(&v, "snapshots"), 1);
    let target = fx.env.path("t");
    fx.env.restore(&fx.second, &target, Vec::<&str>::new()).ok();
    assert_same_tree(
        &fx.src,
        &Env::restored(&target, &fx.src),
        Compare::default(),
    );
}

/// `latest` never skips a manifest it cannot read (it might be the newest): every command that
/// resolves it fails with exit 3 naming the damaged snapshot; the damaged id is reported as
/// damaged, not as absent; `forget` takes it by id, after which `latest` means the newest
/// readable snapshot again and prune deletes the damaged manifest.
#[test]
fn damaged_newest_manifest_is_never_skipped_by_latest() {
    let fx = Fixture::new();
    let manifest = fx.env.repo.join("snapshots").join(&fx.second);
    writable(&manifest);
    let mut data = fs::read(&manifest).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x01;
    fs::write(&manifest, &data).unwrap();

    let target = fx.env.path("t");
    for args in [
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
        vec![
            "restore",
            "latest",
            "--host",
            "nowhere",
            "--target",
            target.to_str().unwrap(),
        ],
        vec![
            "restore",
            "--latest-per",
            "host",
            "--target",
            target.to_str().unwrap(),
        ],
        vec!["dump", "latest", "/nothing"],
        vec!["export", "latest", "--output", "x.tar"],
        vec!["verify", "--snapshot", "latest"],
    ] {
        let out = run_vault(&fx.env, &args, 3);
        assert!(
            out.stderr.contains(&fx.second) && out.stderr.contains("vault forget"),
            "{}: {}",
            out.cmdline,
            out.stderr
        );
        assert!(!target.exists(), "{} wrote its target", out.cmdline);
    }
    // By id: damaged, not absent.
    let out = run_vault(&fx.env, &["restore", &fx.second[..8], "--target", "t"], 3);
    assert!(
        out.stderr.contains("cannot be read") && !out.stderr.contains("no snapshot matches"),
        "{}",
        out.stderr
    );
    // Too short an id says so, as a usage error.
    let out = run_vault(&fx.env, &["restore", &fx.first[..3], "--target", "t"], 2);
    assert!(
        out.stderr.contains("at least 4 hex digits"),
        "{}",
        out.stderr
    );

    // The way out the message names.
    run_vault(&fx.env, &["forget", &fx.second[..8]], 0);
    fx.env.restore("latest", &target, Vec::<&str>::new()).ok();
    let restored = Env::restored(&target, &fx.src);
    for rel in &fx.in_first {
        assert!(
            restored.join(rel).is_file(),
            "{rel} missing from the first snapshot's restore"
        );
    }
    assert_eq!(fx.env.snapshot_ids(), [fx.first.clone()].into());
    let (v, _) = verify_json(&fx.env, &["--read-data"], 0);
    assert_eq!(report_u64(&v, "snapshots"), 1);
    run_vault(&fx.env, &["prune"], 0);
    assert!(
        !manifest.exists(),
        "prune left the forgotten damaged manifest"
    );
}

/// A copy of a repository (`cp -a`, rsync to a USB disk) has the same id as the original. What
/// verify learns about the copy stays with the copy: the original's cache is its own.
#[test]
fn damage_found_in_a_copy_of_the_repository_never_touches_the_original() {
    let fx = Fixture::new();
    let copy = fx.env.path("repo-copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&fx.env.repo)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let notes: BTreeSet<String> = ["docs/notes.txt".to_string()].into();
    let (pack, chunk) = fx.find_chunk(|_, holders| *holders == notes);
    let in_copy = PackFile {
        path: copy.join(pack.path.strip_prefix(&fx.env.repo).unwrap()),
        ..pack
    };
    damage_blob(&in_copy, &chunk);

    let mut on_copy = fx.env.cmd(["verify", "--read-data"]);
    on_copy.env("VAULT_REPO", &copy);
    let out = run_cmd(on_copy);
    no_panic(&out);
    out.code(3);

    run_vault(&fx.env, &["verify", "--read-data"], 0);
    let target = fx.env.path("t");
    fx.env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(
        &fx.src,
        &Env::restored(&target, &fx.src),
        Compare::default(),
    );
}

/// Damage recorded by verify goes when the repository no longer has it: a pack put back whole
/// (from a copy, say) is found whole by the next verify, even without --read-data, and its
/// blobs are used again; `index rebuild` starts the cache afresh, damage records included.
#[test]
fn damage_records_go_when_the_pack_is_put_back_whole() {
    let fx = Fixture::new();
    let notes: BTreeSet<String> = ["docs/notes.txt".to_string()].into();
    let (pack, chunk) = fx.find_chunk(|_, holders| *holders == notes);
    let good = fs::read(&pack.path).unwrap();
    let target = fx.env.path("t");
    for repair in [&["verify"][..], &["index", "rebuild"][..]] {
        damage_blob(&pack, &chunk);
        run_vault(&fx.env, &["verify", "--read-data"], 3);
        fs::write(&pack.path, &good).unwrap();
        let out = run_vault(&fx.env, repair, 0);
        if repair[0] == "verify" {
            assert!(
                out.stdout_str().contains("whole again"),
                "{}",
                out.stdout_str()
            );
        }
        let _ = fs::remove_dir_all(&target);
        fx.env.restore("latest", &target, Vec::<&str>::new()).ok();
        assert_same_tree(
            &fx.src,
            &Env::restored(&target, &fx.src),
            Compare::default(),
        );
        let (v, _) = verify_json(&fx.env, &["--read-data"], 0);
        assert_eq!(report_u64(&v, "damage_records_cleared"), 0, "{v:#}");
    }
}

#[test]
fn corrupted_subdirectory_tree_reports_the_subtree() {
    let fx = Fixture::new();
    // The tree of deep/a: a directory b and a file sibling.bin. Both snapshots reach it.
    let (pack, tree) = fx.find_tree(&["b", "sibling.bin"]);
    damage_blob(&pack, &tree);
    let subtree: BTreeSet<String> = [fx.abs("deep/a")].into();
    let affected: BTreeMap<String, BTreeSet<String>> = [
        (fx.first.clone(), subtree.clone()),
        (fx.second.clone(), subtree),
    ]
    .into();

    let expected = vec![Found::new(
        "tree_damaged",
        Some(&pack.id),
        Some(&tree.id.to_hex()),
        1,
        affected.clone(),
    )];
    let (v, _) = verify_json(&fx.env, &[], 3);
    assert_eq!(problems(&v), expected, "{v:#}");
    let out = run_vault(&fx.env, &["verify"], 3);
    assert_human_report(&out, &expected);

    let (v, _) = verify_json(&fx.env, &["--read-data"], 3);
    assert_eq!(
        problems(&v),
        vec![Found::new(
            "blob_damaged",
            Some(&pack.id),
            Some(&tree.id.to_hex()),
            1,
            affected
        )],
        "{v:#}"
    );
}

/// `number` of 08-verification.md §8.3: the first 8 bytes of the id, little-endian.
fn slice_number(pack_id: &str) -> u64 {
    let id = PackId::from_hex(pack_id).unwrap();
    u64::from_le_bytes(id.0[..8].try_into().unwrap())
}

/// (packs, bytes, blobs) a set of packs adds up to.
fn totals<'a>(packs: impl IntoIterator<Item = &'a PackFile>) -> (u64, u64, u64) {
    packs.into_iter().fold((0, 0, 0), |(n, b, e), p| {
        (n + 1, b + p.size, e + p.entries.len() as u64)
    })
}

fn read_counts(v: &Value) -> (u64, u64, u64) {
    (
        report_u64(v, "packs_read"),
        report_u64(v, "bytes_read"),
        report_u64(v, "blobs_read"),
    )
}

#[test]
fn read_data_subsets_read_every_pack_exactly_once() {
    let fx = Fixture::new();
    let packs = fx.packs();
    let all = totals(packs.values());
    let mut sum = (0, 0, 0);
    for n in 1..=3u64 {
        let slice = format!("{n}/3");
        let (v, _) = verify_json(&fx.env, &["--read-data-subset", &slice], 0);
        let expected = totals(packs.values().filter(|p| slice_number(&p.id) % 3 == n - 1));
        assert_eq!(read_counts(&v), expected, "slice {slice}: {v:#}");
        assert_eq!(report_u64(&v, "packs"), packs.len() as u64);
        sum = (sum.0 + expected.0, sum.1 + expected.1, sum.2 + expected.2);
    }
    assert_eq!(sum, all);
    // The slice takes precedence over --read-data.
    let (v, _) = verify_json(&fx.env, &["--read-data", "--read-data-subset", "2/3"], 0);
    assert_eq!(
        read_counts(&v),
        totals(packs.values().filter(|p| slice_number(&p.id) % 3 == 1))
    );

    let (v, _) = verify_json(&fx.env, &["--read-data-subset", "100%"], 0);
    assert_eq!(read_counts(&v), all);
    // A random half: whatever was read is a set of whole packs.
    let sizes: Vec<(u64, u64)> = packs
        .values()
        .map(|p| (p.size, p.entries.len() as u64))
        .collect();
    assert!(
        sizes.len() <= 20,
        "{} packs: too many to enumerate",
        sizes.len()
    );
    for _ in 0..3 {
        let (v, _) = verify_json(&fx.env, &["--read-data-subset", "50%"], 0);
        let (n, bytes, blobs) = read_counts(&v);
        let whole_packs = (0u32..1 << sizes.len()).any(|mask| {
            let chosen = sizes
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0);
            let (c, b, e) = chosen.fold((0, 0, 0), |(c, b, e), (_, (s, k))| (c + 1, b + s, e + k));
            (c, b, e) == (n, bytes, blobs)
        });
        assert!(whole_packs, "50% read no set of whole packs: {v:#}");
    }
    let (v, _) = verify_json(&fx.env, &["--read-data-subset", "12.5%"], 0);
    assert!(report_u64(&v, "packs_read") <= packs.len() as u64);

    for bad in ["0/3", "4/3", "3", "0%", "101%", "x%"] {
        let out = run_vault(&fx.env, &["verify", "--read-data-subset", bad], 2);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn read_data_budget_moves_on_to_the_packs_verified_longest_ago() {
    let fx = Fixture::new();
    let packs = fx.packs();
    // Ids sort as hex strings do as bytes, which is how the engine breaks ties.
    let by_id: Vec<&PackFile> = packs.values().collect();
    // A budget that holds the first three packs by id but not the fourth.
    let budget_kib = (by_id[..3].iter().map(|p| p.size).sum::<u64>()).div_ceil(1024);
    assert!(budget_kib * 1024 < by_id[..4].iter().map(|p| p.size).sum::<u64>());
    let budget = format!("{budget_kib}KiB");

    // The model: run number each pack was last read in (0: never).
    let mut last_read: BTreeMap<String, u64> = packs.keys().map(|k| (k.clone(), 0)).collect();
    let mut seen = BTreeSet::new();
    let mut covered_at = None;
    for run in 1..=(packs.len() as u64 + 2) {
        let mut order: Vec<&PackFile> = by_id.clone();
        order.sort_by_key(|p| (last_read[&p.id], p.id.clone()));
        let mut chosen = Vec::new();
        let mut total = 0;
        for p in order {
            if !chosen.is_empty() && total + p.size > budget_kib * 1024 {
                break;
            }
            total += p.size;
            chosen.push(p);
        }
        let (v, _) = verify_json(&fx.env, &["--read-data-budget", &budget], 0);
        assert_eq!(
            read_counts(&v),
            totals(chosen.iter().copied()),
            "run {run}: {v:#}"
        );
        // No pack is read twice while another was never read.
        let unread: BTreeSet<&String> = last_read
            .iter()
            .filter(|(_, r)| **r == 0)
            .map(|(id, _)| id)
            .collect();
        let chosen_ids: BTreeSet<&String> = chosen.iter().map(|p| &p.id).collect();
        if chosen.iter().any(|p| last_read[&p.id] > 0) {
            assert!(
                unread.is_subset(&chosen_ids),
                "run {run} reads a pack again too early"
            );
        }
        for p in &chosen {
            last_read.insert(p.id.clone(), run);
            seen.insert(p.id.clone());
        }
        if seen.len() == packs.len() && covered_at.is_none() {
            covered_at = Some(run);
        }

        // The index records when each pack was read: same instant within a run, later runs
        // later, never-read packs absent.
        let index = Index::open(&fx.index_file).unwrap();
        let times: BTreeMap<String, u64> = index
            .pack_verified_times()
            .unwrap()
            .into_iter()
            .map(|(id, t)| (id.to_hex(), t))
            .collect();
        drop(index);
        let model: BTreeMap<&String, u64> = last_read
            .iter()
            .filter(|(_, r)| **r > 0)
            .map(|(k, r)| (k, *r))
            .collect();
        assert_eq!(
            times.keys().collect::<BTreeSet<_>>(),
            model.keys().copied().collect::<BTreeSet<_>>(),
            "run {run}"
        );
        for (a, ra) in &model {
            for (b, rb) in &model {
                assert_eq!(
                    ra.cmp(rb),
                    times[*a].cmp(&times[*b]),
                    "run {run}: {a} vs {b}"
                );
            }
        }
    }
    assert!(covered_at.is_some(), "not every pack was read");

    // A time budget reads everything there is time for (here: all of it).
    let (v, _) = verify_json(&fx.env, &["--read-data-budget", "30m"], 0);
    assert_eq!(read_counts(&v), totals(packs.values()));
    run_vault(&fx.env, &["verify", "--read-data-budget", "lots"], 2);
    run_vault(
        &fx.env,
        &[
            "verify",
            "--read-data-budget",
            "1GiB",
            "--read-data-subset",
            "1/2",
        ],
        2,
    );
}

/// README "Verification and recovery", steps 1-3, with the new snapshot taken as `snapshot_args`
/// say (besides the source and a time).
fn heal_a_damaged_chunk(snapshot_args: &[&str]) {
    let fx = Fixture::new();
    let notes: BTreeSet<String> = ["docs/notes.txt".to_string()].into();
    let (pack, chunk) = fx.find_chunk(|_, holders| *holders == notes);
    damage_blob(&pack, &chunk);

    // 1. Found, reported, and the damaged copy leaves the index.
    let out = run_vault(&fx.env, &["verify", "--read-data"], 3);
    let text = out.stdout_str();
    assert!(
        text.contains("\n1 damaged blob copies were removed from the index: the next snapshot"),
        "{text}"
    );
    let (v, _) = verify_json(&fx.env, &["--read-data"], 3);
    assert_eq!(
        problems(&v),
        vec![Found::new(
            "blob_damaged",
            Some(&pack.id),
            Some(&chunk.id.to_hex()),
            1,
            fx.affected(&notes)
        )],
        "{v:#}"
    );
    // Removed by the first run already.
    assert_eq!(report_u64(&v, "blobs_unindexed"), 0);
    {
        let index = Index::open(&fx.index_file).unwrap();
        let recorded: Vec<(String, String)> = index
            .damaged()
            .unwrap()
            .into_iter()
            .map(|(b, p)| (b.to_hex(), p.to_hex()))
            .collect();
        assert_eq!(recorded, vec![(chunk.id.to_hex(), pack.id.clone())]);
        assert!(!index.reader().unwrap().contains(&chunk.id).unwrap());
    }

    // 2. A new snapshot of the unchanged source stores the chunk again.
    let mut args: Vec<&std::ffi::OsStr> = vec![
        fx.src.as_os_str(),
        "--time".as_ref(),
        "2026-01-03T00:00:00Z".as_ref(),
    ];
    args.extend(snapshot_args.iter().map(std::ffi::OsStr::new));
    let third = fx.env.snapshot(args);
    assert!(
        summary(&third, "chunks_new") >= 1,
        "the new snapshot did not store the damaged chunk again: {third:#}"
    );
    let third = id_of(&third);
    let packs_after = fx.packs();
    let good_copies: Vec<&String> = packs_after
        .values()
        .filter(|p| p.id != pack.id && p.chunk_ids().contains(&chunk.id.to_hex()))
        .map(|p| &p.id)
        .collect();
    assert_eq!(good_copies.len(), 1, "one new copy of the chunk");

    // 3. Verify reports the good copy and the snapshots that are whole again; nothing is
    // damaged any more.
    let (v, _) = verify_json(&fx.env, &["--read-data"], 0);
    assert_eq!(problems(&v), vec![]);
    assert_eq!(report_u64(&v, "healed_blobs"), 1, "{v:#}");
    assert_eq!(report_u64(&v, "damaged_copies_superseded"), 1, "{v:#}");
    let whole: Vec<String> = v["report"]["snapshots_whole_again"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        whole,
        sorted(vec![fx.first.clone(), fx.second.clone()]),
        "snapshots whole again (the new one {third} was never damaged): {v:#}"
    );
    // "Whole again" is news once: the next run no longer reports those snapshots.
    let out = run_vault(&fx.env, &["verify", "--read-data"], 0);
    let text = out.stdout_str();
    for line in [
        "1 previously damaged blobs have a good copy again".to_string(),
        "clean: 3 snapshots".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} missing:\n{text}");
    }
    assert!(!text.contains("whole again"), "reported twice:\n{text}");

    // The new snapshot restores byte for byte, and the old ones read the good copy.
    let target = fx.env.path("t");
    fx.env.restore(&third, &target, Vec::<&str>::new()).ok();
    assert_same_tree(
        &fx.src,
        &Env::restored(&target, &fx.src),
        Compare::default(),
    );
    let notes_path = fx.abs("docs/notes.txt");
    let (want, len) = file_digest(&fx.src.join("docs/notes.txt"));
    for old in [&fx.first, &fx.second] {
        let (code, got, got_len, stderr) = fx.env.dump_digest(old, &notes_path, &[]);
        assert_eq!((code, got, got_len), (0, want, len), "{stderr}");
    }
}

// ------------------------------------------------------------------------------------------------
// Prune over damaged packs
// ------------------------------------------------------------------------------------------------

/// A third snapshot after `media/video.bin` was replaced by a re-encoded `media/video-v2.bin`
/// whose bytes of one old chunk are new, with the first two forgotten: that chunk becomes
/// unused, and the pack holding it also holds live chunks of the same file. Returns that pack,
/// the unused and a live chunk (one the new file references as it is: not a delta's base), and
/// the third snapshot's id. (A new name, not a rewrite in place: a large file changed in place
/// is cut into fine chunks from then on, format-spec 03 §3.1.1, and would share no chunk with
/// its old version.) The replaced bytes are random, so no new chunk is stored as a delta of the
/// unused one (format 5: a base stays while a delta needs it); the test checks that too.
fn unused_beside_live(fx: &Fixture) -> (PackFile, BlobEntry, BlobEntry, String) {
    let old = fx.files["media/video.bin"].clone();
    let video: BTreeSet<String> = ["media/video.bin".to_string()].into();
    // The pack holding the most chunks that only the old video holds, with their raw bytes.
    let (pack, chunks) = fx
        .packs()
        .into_values()
        .map(|pack| {
            let data = fs::read(&pack.path).unwrap();
            let chunks: Vec<(BlobEntry, Vec<u8>)> = pack
                .entries
                .iter()
                .filter(|e| e.kind == BlobKind::Chunk)
                .filter(|e| !matches!(e.encoding, Encoding::Delta { .. }))
                .map(|e| (*e, raw_blob(&data, e)))
                .filter(|(_, raw)| fx.files_holding(raw) == video)
                .collect();
            (pack, chunks)
        })
        .max_by_key(|(_, chunks)| chunks.len())
        .unwrap();
    assert!(chunks.len() >= 3, "media/video.bin is spread too thin");
    let (unused, raw) = &chunks[chunks.len() / 2];
    let at = old.windows(raw.len()).position(|w| w == raw).unwrap();
    let mut new = old.clone();
    new[at..at + raw.len()].copy_from_slice(&random_bytes(77, raw.len()));
    fs::remove_file(fx.src.join("media/video.bin")).unwrap();
    write(&fx.src.join("media/video-v2.bin"), &new);
    let third = id_of(&fx.env.snapshot([
        fx.src.as_os_str(),
        "--time".as_ref(),
        "2026-01-03T00:00:00Z".as_ref(),
    ]));
    let bases: BTreeSet<_> = fx
        .packs()
        .into_values()
        .flat_map(|p| p.entries)
        .filter_map(|e| match e.encoding {
            Encoding::Delta { base } => Some(base),
            _ => None,
        })
        .collect();
    assert!(!bases.contains(&unused.id), "a delta of random bytes");
    let (live, _) = chunks
        .iter()
        .find(|(e, raw)| !bases.contains(&e.id) && contains(&new, raw))
        .expect("the new file keeps a chunk of the pack as it is");
    run_vault(&fx.env, &["forget", &fx.first, &fx.second], 0);
    (pack, *unused, *live, third)
}

/// `prune --max-unused 0% --json`: the report.
fn prune_everything(fx: &Fixture) -> Value {
    run_vault(&fx.env, &["prune", "--max-unused", "0%", "--json"], 0).json()
}

/// A damaged blob that no snapshot needs any more does not stop its pack from being repacked:
/// prune sees that the pack no longer matches its name, checks each blob it copies, and every
/// one of those is good.
#[test]
fn prune_repacks_a_damaged_pack_whose_damage_is_in_unused_data() {
    let fx = Fixture::new();
    let (pack, unused, _, third) = unused_beside_live(&fx);
    damage_blob(&pack, &unused);
    let report = prune_everything(&fx);
    assert_eq!(
        report["packs_kept_damaged"],
        serde_json::json!([]),
        "{report:#}"
    );
    assert!(
        report["packs_repacked"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(!pack.path.exists(), "the damaged pack was not repacked");
    let (v, _) = verify_json(&fx.env, &["--read-data"], 0);
    assert_eq!(problems(&v), vec![]);
    let target = fx.env.path("t");
    fx.env.restore(&third, &target, Vec::<&str>::new()).ok();
    assert_same_tree(
        &fx.src,
        &Env::restored(&target, &fx.src),
        Compare::default(),
    );
}

/// A damaged blob that a snapshot still needs: its pack is kept whole (deleting it would lose
/// the only copy, damaged as it is), reported, and verify still finds the damage afterwards.
#[test]
fn prune_keeps_a_pack_whose_needed_blob_is_damaged() {
    let fx = Fixture::new();
    let (pack, _, live, third) = unused_beside_live(&fx);
    damage_blob(&pack, &live);
    let report = prune_everything(&fx);
    assert_eq!(
        report["packs_kept_damaged"],
        serde_json::json!([pack.id]),
        "{report:#}"
    );
    assert!(pack.path.exists());
    let (v, _) = verify_json(&fx.env, &["--read-data"], 3);
    let found = problems(&v);
    assert_eq!(found.len(), 1, "{v:#}");
    assert_eq!(found[0].kind, "blob_damaged");
    assert_eq!(damaged(&v), vec![third.clone()]);
    // Everything else of the snapshot still restores: only the damaged file's chunk is lost.
    let target = fx.env.path("t");
    let out = fx.env.restore(&third, &target, ["--include", "**/docs/**"]);
    out.code(0);
    let restored = Env::restored(&target, &fx.src);
    assert_eq!(
        fs::read(restored.join("docs/report.txt")).unwrap(),
        fx.files["docs/report.txt"]
    );
}

/// The README's recovery: "Take a new snapshot of the same sources (`vault snapshot ...` as in
/// your schedule). Data that still exists at the source is stored again".
#[test]
fn damaged_chunk_heals_with_the_next_snapshot() {
    heal_a_damaged_chunk(&[]);
}

/// The same with `--force-read`, which reads the unchanged files instead of taking their
/// content from the parent snapshot.
#[test]
fn damaged_chunk_heals_with_a_force_read_snapshot() {
    heal_a_damaged_chunk(&["--force-read"]);
}

/// A reader that hands out `data`, stopping at each gate offset until the gate opens.
struct Gated {
    data: Vec<u8>,
    pos: usize,
    gates: Vec<(usize, mpsc::Receiver<()>)>,
}

impl Read for Gated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if let Some((at, gate)) = self.gates.first() {
            if *at == self.pos {
                let _ = gate.recv();
                self.gates.remove(0);
            }
        }
        let end = self
            .gates
            .first()
            .map_or(self.data.len(), |(at, _)| *at)
            .min(self.pos + out.len());
        let n = end - self.pos;
        out[..n].copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(n)
    }
}

/// Waits until the repository holds more than `than` packs (a running snapshot wrote some).
fn wait_for_packs(fx: &Fixture, than: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = fx.packs().len();
        if n > than {
            return n;
        }
        assert!(Instant::now() < deadline, "the snapshot wrote no pack");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn verify_beside_a_running_snapshot() {
    let fx = Fixture::new();
    let data = random_bytes(77, 24 * MIB);
    let (open_1, gate_1) = mpsc::channel();
    let (open_2, gate_2) = mpsc::channel();
    let reader = Gated {
        data,
        pos: 0,
        gates: vec![(8 * MIB, gate_1), (16 * MIB, gate_2)],
    };
    let mut cmd = fx.env.cmd([
        "snapshot",
        "--json",
        "--stdin",
        "--stdin-name",
        "stream.bin",
    ]);
    cmd.arg(&fx.src);
    let mut packs = fx.packs().len();
    let fed = Fed::spawn(cmd, reader);
    for gate in [open_1, open_2] {
        // The snapshot has written packs that no manifest reaches yet.
        packs = wait_for_packs(&fx, packs);
        let (v, _) = verify_json(&fx.env, &["--read-data"], 0);
        assert_eq!(problems(&v), vec![]);
        assert_eq!(report_u64(&v, "snapshots"), 2);
        assert!(report_u64(&v, "packs_read") >= packs as u64, "{v:#}");
        gate.send(()).unwrap();
    }
    let fed = fed.wait();
    no_panic(&fed.out);
    fed.out.ok();
    assert!(fed.feed_error.is_none(), "{:?}", fed.feed_error);
    let snap = fed.out.json();
    let id = id_of(&snap);

    let (v, _) = verify_json(&fx.env, &["--read-data"], 0);
    assert_eq!(report_u64(&v, "snapshots"), 3);
    let target = fx.env.path("t");
    fx.env.restore(&id, &target, Vec::<&str>::new()).ok();
    assert_eq!(
        file_digest(&target.join("stream.bin")),
        (fed.fed_digest, fed.fed_bytes)
    );
    assert_same_tree(
        &fx.src,
        &Env::restored(&target, &fx.src),
        Compare::default(),
    );
}

#[test]
fn verify_that_cannot_run_exits_1() {
    let fx = Fixture::new();
    let config = fx.env.repo.join("config");
    writable(&config);
    let mut data = fs::read(&config).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x01;
    fs::write(&config, &data).unwrap();
    for args in [vec!["verify"], vec!["verify", "--json", "--read-data"]] {
        let out = run_vault(&fx.env, &args, 1);
        out.stderr_has("vault: ").stderr_has("config");
        assert!(out.stdout.is_empty(), "{}", out.stdout_str());
    }

    let empty = Env::new();
    fs::create_dir(&empty.repo).unwrap();
    let out = run_vault(&empty, &["verify"], 1);
    out.stderr_has(empty.repo.to_str().unwrap());
}
