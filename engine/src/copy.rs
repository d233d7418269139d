//! `vault copy`: replicating snapshots into another repository, storing only the blobs it lacks.
//!
//! Two repositories with the same id keys (both unencrypted) name every blob alike: a tree the
//! destination has already is skipped with everything under it, and a chunk it has is never
//! read. With different keys (an encrypted repository, or two encrypted ones with their own
//! keys) every blob has another name in the destination: the copy reads a blob, verifies it,
//! names it under the destination's keys and stores it if new. What it learned (source id ->
//! destination id) goes into the destination's index cache, so the next copy skips the
//! unchanged trees and chunks without reading them; a lost cache costs one full read, nothing
//! else.
//!
//! Blobs are written through the shared write path ([`crate::write`]). Order, as in a snapshot
//! (invariant I3): every pack is durable before the manifest that reaches it is written; a copy interrupted at any point leaves only unreferenced packs (or
//! whole snapshots), and running it again goes on where it stopped, since every blob already
//! stored is found in the destination's index. A snapshot already in the destination (the
//! same origin: see [`Manifest::origin`]) is skipped, unless its tags or labels were edited in
//! the source later than there: then the copy replaces the destination's version, as the edit
//! did in the source ([`Repository::replace_snapshot`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::pack::BlobKind;
use crate::format::tree::{encode_list, encode_tree, ChunkRef, Content, EntryKind, FileData, Tree};
use crate::id::{BlobId, ChunkId, ListId, SnapshotId, TreeId};
use crate::progress::Progress;
use crate::repo::{content, Repository, SnapshotInfo};
use crate::write::{self, BlobWriter};

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// The destination repository's location.
    pub destination: String,
    /// Snapshots written to the destination.
    pub copied: Vec<CopiedSnapshot>,
    /// Source snapshots the destination has already.
    pub skipped: Vec<SnapshotId>,
    /// Blobs stored in the destination, and their bytes before compression.
    pub blobs_stored: u64,
    pub bytes_stored: u64,
    /// Bytes of chunks read from the source.
    pub bytes_read: u64,
    /// Bytes of packs written to the destination.
    pub bytes_written: u64,
}

/// One snapshot copied: its id in the source and in the destination (they differ: the copy
/// records its origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CopiedSnapshot {
    pub source: SnapshotId,
    pub destination: SnapshotId,
    /// The destination's snapshot this copy replaces (an older version of the same content,
    /// whose tags or labels were edited in the source since); it is forgotten there.
    pub replaced: Option<SnapshotId>,
}

/// Where a snapshot was first taken: its origin, or itself.
pub fn origin_of(repo: &Repository, snapshot: &SnapshotInfo) -> String {
    repo.origin_of(snapshot)
}

/// Copies `snapshots` (of `source`) into `dest`, oldest first.
pub fn run(
    source: &Repository,
    dest: &Repository,
    snapshots: &[SnapshotInfo],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    if source.id() == dest.id() {
        return Err(Error::invalid(
            "vault copy",
            "the source and destination are the same repository",
        ));
    }
    let mut report = CopyReport {
        destination: dest.location(),
        ..CopyReport::default()
    };
    // A prune of the source waits for this reader; one of the destination for this writer.
    let _reader = source.register("copy", false)?;
    let _writer = dest.register("copy", true)?;
    let (present, _) = dest.all_snapshots()?;
    let mut there: HashMap<String, Vec<Present>> = HashMap::new();
    for s in &present {
        there
            .entry(origin_of(dest, s))
            .or_default()
            .push(Present::of(s));
    }
    let mut order: Vec<&SnapshotInfo> = snapshots.iter().collect();
    order.sort_by_key(|s| (s.manifest.time.parse::<jiff::Timestamp>().ok(), s.id));
    for snapshot in order {
        let origin = origin_of(source, snapshot);
        let replaces = match decide(there.get(&origin).map(Vec::as_slice), &snapshot.manifest) {
            Decision::Skip => {
                report.skipped.push(snapshot.id);
                continue;
            }
            Decision::Copy => None,
            Decision::Replace(old) => Some(old),
        };
        let id = copy_one(
            source,
            dest,
            snapshot,
            &origin,
            replaces,
            &mut report,
            progress,
        )?;
        let versions = there.entry(origin).or_default();
        for v in versions.iter_mut() {
            if Some(v.id) == replaces.map(|r| r.id) {
                v.hidden = true;
            }
        }
        versions.push(Present {
            id,
            hidden: false,
            protected: snapshot.protected,
            tags: snapshot.manifest.tags.clone(),
            labels: snapshot.manifest.labels.clone(),
            edited: edited(&snapshot.manifest),
        });
        report.copied.push(CopiedSnapshot {
            source: snapshot.id,
            destination: id,
            replaced: replaces.map(|r| r.id),
        });
    }
    Ok(report)
}

/// A snapshot of the destination with the same origin as one being copied: a version of the
/// same content, perhaps with other tags and labels.
struct Present {
    id: SnapshotId,
    /// Forgotten or replaced.
    hidden: bool,
    protected: bool,
    tags: Vec<String>,
    labels: std::collections::BTreeMap<String, String>,
    edited: Option<jiff::Timestamp>,
}

impl Present {
    fn of(s: &SnapshotInfo) -> Present {
        Present {
            id: s.id,
            hidden: s.forgotten,
            protected: s.protected,
            tags: s.manifest.tags.clone(),
            labels: s.manifest.labels.clone(),
            edited: edited(&s.manifest),
        }
    }
}

/// When a snapshot's tags and labels were last edited; `None` (earlier than any edit) if never.
fn edited(m: &Manifest) -> Option<jiff::Timestamp> {
    m.edited.as_deref().and_then(|t| t.parse().ok())
}

/// The destination snapshot a copy replaces.
#[derive(Clone, Copy)]
struct Replaced {
    id: SnapshotId,
    protected: bool,
}

enum Decision {
    Skip,
    Copy,
    Replace(Replaced),
}

/// What to do with a source snapshot given the destination's versions of the same content
/// (format-spec/11-remote.md §11.6): nothing there: copy. A visible version with the same tags
/// and labels, or a later edit: skip. A visible version edited earlier (or never): copy,
/// replacing it. Only forgotten versions: skip (the destination's retention forgot it).
fn decide(versions: Option<&[Present]>, m: &Manifest) -> Decision {
    let Some(versions) = versions.filter(|v| !v.is_empty()) else {
        return Decision::Copy;
    };
    let Some(current) = versions
        .iter()
        .filter(|v| !v.hidden)
        .max_by_key(|v| (v.edited, v.id))
    else {
        return Decision::Skip;
    };
    let same = current.tags == m.tags && current.labels == m.labels;
    if same || current.edited >= edited(m) {
        Decision::Skip
    } else {
        Decision::Replace(Replaced {
            id: current.id,
            protected: current.protected,
        })
    }
}

fn copy_one(
    source: &Repository,
    dest: &Repository,
    snapshot: &SnapshotInfo,
    origin: &str,
    replaces: Option<Replaced>,
    report: &mut CopyReport,
    progress: &dyn Progress,
) -> Result<SnapshotId> {
    let root = snapshot.manifest.root().ok_or_else(|| Error::Corrupt {
        object: format!("snapshot {}", snapshot.id.to_hex()),
        reason: "its root tree id is not a valid id".into(),
    })?;
    let (copied, packed) = write::session(&dest.write_destination(), |writer| {
        let copier = Copier {
            source,
            dest,
            writer,
            same_ids: source.encryption().same_ids(dest.encryption()),
            source_prefix: source.id().to_hex(),
            learned: Mutex::new(Vec::new()),
            blobs_stored: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            progress,
        };
        let copied = dest.io_scope(|| source.io_scope(|| copier.tree(root)));
        let learned = copier.learned.into_inner().unwrap();
        report.blobs_stored += copier.blobs_stored.into_inner();
        report.bytes_stored += copier.bytes_stored.into_inner();
        report.bytes_read += copier.bytes_read.into_inner();
        copied.map(|root| (root, learned))
    });
    let packed = packed?;
    let (root, learned) = copied?;
    report.bytes_written += packed.bytes;
    // Every pack is durable and indexed: what was learned can be trusted (and is checked
    // against the index before use anyway).
    dest.index().record_copied(&learned)?;
    let m = &snapshot.manifest;
    let manifest = Manifest {
        version: crate::format::OBJECT_VERSION,
        tree: root.to_hex(),
        parent: None,
        origin: Some(origin.to_string()),
        // A source id means nothing in the destination: the replaced version there, or none.
        replaces: replaces.map(|r| r.id.to_hex()),
        ..m.clone()
    };
    // I3: the manifest last, after every pack it reaches.
    match replaces {
        None => dest.write_snapshot(&manifest, snapshot.protected),
        // A protected version stays protected when an edit replaces it.
        Some(old) => dest.replace_snapshot(old.id, &manifest, snapshot.protected || old.protected),
    }
}

struct Copier<'a> {
    source: &'a Repository,
    dest: &'a Repository,
    writer: &'a BlobWriter<'a>,
    /// Both repositories name blobs alike.
    same_ids: bool,
    source_prefix: String,
    /// (key, destination id) pairs for the COPIED table, written once the packs are durable.
    learned: Mutex<Vec<([u8; 32], BlobId)>>,
    blobs_stored: AtomicU64,
    bytes_stored: AtomicU64,
    bytes_read: AtomicU64,
    progress: &'a dyn Progress,
}

/// Chunks gathered before they are encoded in parallel.
const ENCODE_BATCH_BYTES: usize = 8 << 20;

impl Copier<'_> {
    fn key(&self, id: &BlobId) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.source_prefix.as_bytes());
        hasher.update(&id.0);
        *hasher.finalize().as_bytes()
    }

    /// The destination's id of a source blob when it is known to be stored there already.
    fn known(&self, id: BlobId) -> Result<Option<BlobId>> {
        let target = if self.same_ids {
            Some(id)
        } else {
            self.dest.index().copied(&[self.key(&id)])?[0]
        };
        match target {
            Some(t) if self.writer.all_stored(&[t])? => Ok(Some(t)),
            _ => Ok(None),
        }
    }

    fn learn(&self, source: BlobId, dest: BlobId) {
        if !self.same_ids {
            let key = self.key(&source);
            self.learned.lock().unwrap().push((key, dest));
        }
    }

    /// Stores a blob of raw bytes unless the destination has it; returns its destination id.
    fn store(&self, kind: BlobKind, raw: &[u8]) -> Result<BlobId> {
        let (id, new) = self.writer.store(kind, raw)?;
        if new {
            self.blobs_stored.fetch_add(1, Ordering::Relaxed);
            self.bytes_stored
                .fetch_add(raw.len() as u64, Ordering::Relaxed);
        }
        Ok(id)
    }

    /// Copies a tree and everything under it; returns its destination id.
    fn tree(&self, id: TreeId) -> Result<TreeId> {
        if let Some(known) = self.known(BlobId(id.0))? {
            return Ok(TreeId(known.0));
        }
        let reader = self.source.index().reader()?;
        let tree = self.source.read_tree(&reader, id)?;
        drop(reader);
        let entries = tree
            .entries
            .into_par_iter()
            .map(|mut entry| {
                entry.kind = match entry.kind {
                    EntryKind::Dir(child) => EntryKind::Dir(self.tree(child)?),
                    EntryKind::File(data) => EntryKind::File(self.file(data)?),
                    other => other,
                };
                Ok(entry)
            })
            .collect::<Result<Vec<_>>>()?;
        let copied = Tree { entries };
        let dest = self.store(BlobKind::Tree, &encode_tree(&copied))?;
        self.learn(BlobId(id.0), dest);
        Ok(TreeId(dest.0))
    }

    fn file(&self, data: FileData) -> Result<FileData> {
        let content = match &data.content {
            Content::Inline(refs) => Content::Inline(self.chunks(refs)?),
            Content::Lists(lists) => {
                let mut out = Vec::with_capacity(lists.len());
                for list in lists {
                    if let Some(known) = self.known(BlobId(list.id.0))? {
                        out.push(crate::format::tree::ListRef {
                            id: ListId(known.0),
                            ..*list
                        });
                        continue;
                    }
                    let reader = self.source.index().reader()?;
                    let refs = self.source.read_list(&reader, list.id)?;
                    drop(reader);
                    let copied = self.chunks(&refs)?;
                    let dest = self.store(BlobKind::List, &encode_list(&copied))?;
                    self.learn(BlobId(list.id.0), dest);
                    out.push(crate::format::tree::ListRef {
                        id: ListId(dest.0),
                        ..*list
                    });
                }
                Content::Lists(out)
            }
        };
        Ok(FileData { content, ..data })
    }

    /// Copies the chunks the destination lacks (read through the repository's content reader:
    /// coalesced range reads, every chunk verified); returns the references in the destination.
    fn chunks(&self, refs: &[ChunkRef]) -> Result<Vec<ChunkRef>> {
        let mut out: Vec<Option<ChunkRef>> = Vec::with_capacity(refs.len());
        let mut missing: Vec<(usize, ChunkRef)> = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            match self.known(BlobId(r.id.0))? {
                Some(known) => out.push(Some(ChunkRef {
                    id: ChunkId(known.0),
                    len: r.len,
                })),
                None => {
                    out.push(None);
                    missing.push((i, *r));
                }
            }
        }
        if !missing.is_empty() {
            let wanted: Vec<ChunkRef> = missing.iter().map(|(_, r)| *r).collect();
            // The content of the missing chunks, in order, cut back into chunks.
            let mut pending: Vec<u8> = Vec::new();
            let mut batch: Vec<(usize, ChunkRef, Vec<u8>)> = Vec::new();
            let mut batch_bytes = 0usize;
            let mut next = 0usize;
            let mut flush = |batch: &mut Vec<(usize, ChunkRef, Vec<u8>)>| -> Result<()> {
                let stored = batch
                    .par_iter()
                    .map(|(i, r, raw)| Ok((*i, *r, self.store(BlobKind::Chunk, raw)?)))
                    .collect::<Result<Vec<_>>>()?;
                for (i, r, dest) in stored {
                    self.learn(BlobId(r.id.0), dest);
                    out[i] = Some(ChunkRef {
                        id: ChunkId(dest.0),
                        len: r.len,
                    });
                }
                batch.clear();
                Ok(())
            };
            content::read_chunks(self.source, &wanted, |piece| {
                self.bytes_read
                    .fetch_add(piece.len() as u64, Ordering::Relaxed);
                self.progress.bytes(piece.len() as u64);
                pending.extend_from_slice(piece);
                let mut start = 0usize;
                while next < missing.len() && pending.len() - start >= missing[next].1.len as usize
                {
                    let (i, r) = missing[next];
                    let raw = pending[start..start + r.len as usize].to_vec();
                    start += r.len as usize;
                    batch_bytes += raw.len();
                    batch.push((i, r, raw));
                    next += 1;
                    if batch_bytes >= ENCODE_BATCH_BYTES {
                        flush(&mut batch)?;
                        batch_bytes = 0;
                    }
                }
                pending.drain(..start);
                Ok(())
            })?;
            flush(&mut batch)?;
        }
        Ok(out
            .into_iter()
            .map(|r| r.expect("every chunk copied or known"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SnapshotId {
        SnapshotId([n; 32])
    }

    fn present(n: u8, hidden: bool, tag: &str, edited: Option<&str>) -> Present {
        Present {
            id: id(n),
            hidden,
            protected: n == 1,
            tags: vec![tag.into()],
            labels: Default::default(),
            edited: edited.map(|t| t.parse().unwrap()),
        }
    }

    fn source(tag: &str, edited: Option<&str>) -> Manifest {
        let mut m: Manifest = serde_json::from_value(serde_json::json!({
            "version": 4, "time": "2026-01-01T00:00:00Z", "host": "h", "paths": [],
            "sources": [], "tags": [tag], "labels": {}, "tree": "00".repeat(32),
            "complete": true, "program_version": "0",
            "summary": {"files": 0, "dirs": 0, "files_unchanged": 0, "bytes_total": 0,
                "bytes_read": 0, "bytes_added": 0, "chunks_total": 0, "chunks_new": 0,
                "trees_new": 0, "duration_secs": 0.0, "errors": []}
        }))
        .unwrap();
        m.edited = edited.map(String::from);
        m
    }

    fn replaced(d: Decision) -> Option<SnapshotId> {
        match d {
            Decision::Replace(r) => Some(r.id),
            _ => None,
        }
    }

    const T1: &str = "2026-02-01T00:00:00Z";
    const T2: &str = "2026-03-01T00:00:00Z";

    #[test]
    fn nothing_there_is_copied() {
        assert!(matches!(decide(None, &source("a", None)), Decision::Copy));
        assert!(matches!(
            decide(Some(&[]), &source("a", None)),
            Decision::Copy
        ));
    }

    #[test]
    fn the_same_tags_and_labels_are_already_there() {
        let there = [present(1, false, "a", None)];
        assert!(matches!(
            decide(Some(&there), &source("a", Some(T1))),
            Decision::Skip
        ));
    }

    #[test]
    fn a_later_edit_replaces_the_visible_version() {
        let there = [
            present(1, true, "old", None),
            present(2, false, "a", Some(T1)),
        ];
        assert_eq!(
            replaced(decide(Some(&there), &source("b", Some(T2)))),
            Some(id(2))
        );
        let never_edited = [present(3, false, "a", None)];
        assert_eq!(
            replaced(decide(Some(&never_edited), &source("b", Some(T1)))),
            Some(id(3))
        );
    }

    #[test]
    fn an_earlier_edit_never_undoes_the_destination_s() {
        let there = [present(2, false, "mine", Some(T2))];
        assert!(matches!(
            decide(Some(&there), &source("b", Some(T1))),
            Decision::Skip
        ));
        assert!(matches!(
            decide(Some(&there), &source("b", None)),
            Decision::Skip
        ));
    }

    #[test]
    fn only_forgotten_versions_mean_the_destination_forgot_it() {
        let there = [present(1, true, "a", None)];
        assert!(matches!(
            decide(Some(&there), &source("b", Some(T1))),
            Decision::Skip
        ));
    }
}
