//! A whole repository with the input as its only pack.
//!
//! Once per process a repository is made with `Repository::init` on a `LocalBackend` in
//! `$TMPDIR/vault-fuzz-repository/<pid>/`. Each run writes the input (trailer checksum fixed, so
//! that the entries behind it are reached) as a pack named by its digest, drops the index cache
//! so that every run starts from the same state, reopens the repository (which indexes the pack
//! from its trailer), reads every indexed blob with `Repository::read_blob`, decodes trees and
//! chunk lists and follows their references a little, then deletes the pack again.
//!
//! Oracles: a damaged pack never makes the repository fail to open; every entry of a trailer that
//! decodes is indexed where the trailer says; `read_blob` succeeds exactly when `open_blob` on the
//! same bytes does, and returns the same bytes.
#![no_main]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use vault_engine::format::pack::{self, BlobEntry, BlobKind};
use vault_engine::format::tree::{Content, EntryKind, Tree};
use vault_engine::id::{BlobId, ListId, PackId, TreeId};
use vault_engine::index::rebuild;
use vault_engine::index::IndexReader;
use vault_engine::storage::{Backend, LocalBackend, ObjectKind};
use vault_engine::{Error, Repository};

/// Most blobs one run reads through references found in trees and chunk lists.
const FOLLOW_BUDGET: usize = 64;

struct Fixture {
    backend: Arc<LocalBackend>,
    cache: PathBuf,
    index: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let base = std::env::temp_dir().join("vault-fuzz-repository");
        remove_stale(&base);
        let root = base.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&root);
        let backend = Arc::new(LocalBackend::new(root.join("repo")));
        let cache = root.join("cache");
        let repo = Repository::init(backend.clone(), &cache, &Default::default())
            .expect("init a fresh repository");
        let index = repo.index().path().to_path_buf();
        Fixture {
            backend,
            cache,
            index,
        }
    })
}

/// Removes the directories of fuzzing processes that are gone (libFuzzer exits without running
/// destructors, so nobody else does). Only where /proc tells which processes exist.
fn remove_stale(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(dir) = std::fs::read_dir(base) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The blobs a tree refers to: subtrees, inline chunks, chunk lists.
fn references(tree: &Tree) -> Vec<(BlobId, BlobKind)> {
    let mut out = Vec::new();
    for entry in &tree.entries {
        match &entry.kind {
            EntryKind::Dir(sub) => out.push((BlobId::from(*sub), BlobKind::Tree)),
            EntryKind::File(f) => match &f.content {
                Content::Inline(chunks) => {
                    out.extend(chunks.iter().map(|c| (BlobId::from(c.id), BlobKind::Chunk)))
                }
                Content::Lists(lists) => {
                    out.extend(lists.iter().map(|l| (BlobId::from(l.id), BlobKind::List)))
                }
            },
            _ => {}
        }
    }
    out
}

/// Reads a blob that a tree or list refers to, as `restore` or `verify` would; any outcome but a
/// panic is fine. Lists are followed to their first chunks.
fn follow(
    repo: &Repository,
    reader: &IndexReader<'_>,
    id: BlobId,
    kind: BlobKind,
    budget: &mut usize,
) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    match kind {
        BlobKind::Tree => {
            let _ = repo.read_tree(reader, TreeId(id.0));
        }
        BlobKind::List => {
            if let Ok(chunks) = repo.read_list(reader, ListId(id.0)) {
                for c in chunks.iter().take(4) {
                    follow(repo, reader, BlobId::from(c.id), BlobKind::Chunk, budget);
                }
            }
        }
        BlobKind::Chunk => {
            let _ = repo.read_blob(reader, id, BlobKind::Chunk);
        }
    }
}

/// Checks one indexed entry of the pack `data` (named `pack_id`) and follows what it refers to.
fn check_entry(
    repo: &Repository,
    reader: &IndexReader<'_>,
    pack_id: PackId,
    data: &[u8],
    e: &BlobEntry,
    budget: &mut usize,
) {
    let loc = reader
        .lookup(&e.id)
        .expect("index lookup")
        .unwrap_or_else(|| panic!("entry {e:?} was not indexed"));
    let indexed = (loc.pack, loc.offset, loc.stored_len, loc.raw_len);
    assert_eq!(indexed, (pack_id, e.offset, e.stored_len, e.raw_len));
    assert_eq!((loc.kind, loc.encoding), (e.kind, e.encoding));

    let got = repo.read_blob(reader, e.id, e.kind);
    let stored = vault_fuzz::stored_bytes(data, e);
    let want = pack::open_blob(
        &vault_engine::keys::Encryption::none(),
        e.id,
        e.kind,
        e.encoding,
        e.raw_len,
        stored,
    );
    match (&got, &want) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => return,
        _ => panic!(
            "read_blob and open_blob disagree on {e:?}: {:?} vs {:?}",
            got.as_ref().map(|v| v.len()),
            want.as_ref().map(|v| v.len())
        ),
    }
    match e.kind {
        BlobKind::Tree => {
            if let Ok(tree) = repo.read_tree(reader, TreeId(e.id.0)) {
                for (id, kind) in references(&tree) {
                    follow(repo, reader, id, kind, budget);
                }
            }
        }
        BlobKind::List => {
            if let Ok(chunks) = repo.read_list(reader, ListId(e.id.0)) {
                for c in chunks.iter().take(4) {
                    follow(repo, reader, BlobId::from(c.id), BlobKind::Chunk, budget);
                }
            }
        }
        BlobKind::Chunk => {}
    }
}

fn run(data: &[u8]) {
    let fx = fixture();
    let data = vault_fuzz::fix_pack_trailer(data).unwrap_or_else(|| data.to_vec());
    let pack_id = PackId::digest(&data);
    let name = pack_id.to_hex();
    match fx.backend.write(ObjectKind::Pack, &name, &data) {
        Ok(()) | Err(Error::AlreadyExists { .. }) => {}
        Err(e) => panic!("writing the pack failed: {e}"),
    }
    // A fresh index each run: the outcome depends on the input alone.
    match std::fs::remove_file(&fx.index) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("removing the index cache failed: {e}"),
    }

    {
        let repo = Repository::open(fx.backend.clone(), &fx.cache)
            .unwrap_or_else(|e| panic!("a damaged pack made the repository unopenable: {e}"));
        let reader = repo.index().reader().expect("index reader");
        match rebuild::read_trailer(
            fx.backend.as_ref(),
            &vault_engine::keys::Encryption::none(),
            &pack_id,
            data.len() as u64,
        ) {
            Err(_) => {
                assert_eq!(repo.index().blob_count().unwrap(), 0);
                let reported = !repo.notices().is_empty();
                assert!(reported, "an unreadable pack went unreported");
            }
            Ok(entries) => {
                let mut seen = HashSet::new();
                let mut budget = FOLLOW_BUDGET;
                for e in &entries {
                    // The index keeps the first location of a blob stored twice.
                    if seen.insert(e.id) {
                        check_entry(&repo, &reader, pack_id, &data, e, &mut budget);
                    }
                }
            }
        }
    }

    fx.backend
        .delete(ObjectKind::Pack, &name)
        .expect("deleting the pack");
}

fuzz_target!(|data: &[u8]| run(data));
