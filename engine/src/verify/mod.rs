//! `vault verify`: prove that snapshots can be restored, and say precisely what cannot.
//!
//! Structural mode reads pack trailers, snapshot manifests, trees and chunk lists, and checks
//! that every blob a snapshot reaches is indexed in an existing pack. `--read-data` also reads
//! every selected pack whole and checks every blob's digest. Every problem is reported with the
//! snapshots and paths it affects ([`report`]). Verify only reads the repository (the index cache
//! is brought up to date as on every open), so it runs safely beside a snapshot.

pub mod read_data;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use rayon::prelude::*;

use crate::error::Result;
use crate::format::tree::{Content, EntryKind};
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::index::rebuild::read_trailer;
use crate::index::IndexReader;
use crate::limits::MAX_TREE_DEPTH;
use crate::progress::Progress;
use crate::repo::{Repository, SnapshotInfo};
use crate::storage::ObjectKind;
pub use report::{AffectedPaths, Problem, ProblemKind, VerifyReport};

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// The `n`-th (1-based) of `m` slices: packs whose id, read as a little-endian number from
    /// its first 8 bytes, is `n - 1` modulo `m`. Stable as packs are added, so `m` runs with
    /// `n = 1..=m` read every pack exactly once.
    Slice {
        n: u64,
        m: u64,
    },
    /// A random sample of about this percentage of packs.
    Percent(f64),
    /// The packs verified longest ago first (never-verified ones before all), until this many
    /// bytes are read or this much time has passed, whichever limit is given. Always reads at
    /// least one pack.
    Budget {
        bytes: Option<u64>,
        time: Option<std::time::Duration>,
    },
}

pub struct VerifyOptions {
    pub read_data: ReadData,
    /// Check only what this snapshot reaches.
    pub snapshot: Option<SnapshotInfo>,
}

/// Key of a problem in the report: kind and the damaged object (a hex id, or for missing blobs
/// their kind).
type ProblemKey = (ProblemKind, String);

#[derive(Default)]
struct Problems {
    map: BTreeMap<ProblemKey, Problem>,
}

impl Problems {
    fn add(
        &mut self,
        kind: ProblemKind,
        object: String,
        pack: Option<PackId>,
        blob: Option<BlobId>,
        detail: String,
    ) -> ProblemKey {
        let key = (kind, object);
        self.map.entry(key.clone()).or_insert_with(|| Problem {
            kind,
            pack,
            blob,
            detail,
            count: 1,
            affected: BTreeMap::new(),
        });
        key
    }

    /// Counts one more missing blob of `kind` (grouped into one problem per kind).
    fn missing(&mut self, kind: &str, id: BlobId) -> ProblemKey {
        let key = (ProblemKind::BlobMissing, kind.to_string());
        match self.map.get_mut(&key) {
            Some(problem) => problem.count += 1,
            None => {
                self.add(
                    ProblemKind::BlobMissing,
                    kind.to_string(),
                    None,
                    Some(id),
                    String::new(),
                );
            }
        }
        key
    }

    /// Final wording of grouped problems.
    fn finish(mut self) -> Vec<Problem> {
        for ((kind, object), problem) in self.map.iter_mut() {
            if *kind == ProblemKind::BlobMissing {
                let first = problem.blob.map_or_else(|| "?".to_string(), |b| b.to_hex());
                problem.detail = format!(
                    "{} {object} blob(s) referenced by snapshots are in no pack (first: {first})",
                    problem.count,
                );
            }
        }
        self.map.into_values().collect()
    }

    fn affect(&mut self, key: &ProblemKey, snapshot: SnapshotId, path: &str) {
        let problem = self
            .map
            .get_mut(key)
            .expect("problem added before it affects anything");
        let affected = problem.affected.entry(snapshot).or_default();
        if affected.paths.last().map(String::as_str) == Some(path) {
            return;
        }
        if affected.paths.len() < report::MAX_PATHS {
            affected.paths.push(path.to_string());
        } else {
            affected.more += 1;
        }
    }
}

/// Walks snapshot trees, attributing bad blobs to the paths that reach them.
struct Walker<'a> {
    repo: &'a Repository,
    reader: IndexReader<'a>,
    /// Blobs known to be bad -> the problem they belong to.
    bad: HashMap<BlobId, ProblemKey>,
    /// Trees whose whole subtree was checked and found clean.
    clean: HashSet<TreeId>,
    problems: Problems,
    trees: u64,
    /// Blobs once damaged that have a good copy again.
    healed: HashSet<BlobId>,
    /// Chunk lists (with the size and count their reference claims) already found whole.
    clean_lists: HashSet<(crate::id::ListId, u64, u32)>,
}

impl Walker<'_> {
    /// The problem a referenced blob has, if any: known bad, or not in the index.
    fn blob_problem(&mut self, id: BlobId, kind: &str) -> Option<ProblemKey> {
        if let Some(key) = self.bad.get(&id) {
            return Some(key.clone());
        }
        match self.reader.contains(&id) {
            Ok(true) => None,
            Ok(false) => {
                let key = self.problems.missing(kind, id);
                self.bad.insert(id, key.clone());
                Some(key)
            }
            Err(e) => {
                let key = self.problems.add(
                    ProblemKind::IndexUnreadable,
                    "index".into(),
                    None,
                    None,
                    e.to_string(),
                );
                Some(key)
            }
        }
    }

    /// The pack the index reads a blob from, to name it in a problem with that blob's bytes.
    fn pack_of(&self, id: BlobId) -> Option<PackId> {
        self.reader.lookup(&id).ok().flatten().map(|loc| loc.pack)
    }

    fn walk_tree(&mut self, id: TreeId, path: &str, snapshot: SnapshotId, depth: usize) -> bool {
        if self.clean.contains(&id) {
            return true;
        }
        if depth > MAX_TREE_DEPTH {
            let key = self.problems.add(
                ProblemKind::TreeDamaged,
                id.to_hex(),
                None,
                Some(id.into()),
                format!("nested deeper than {MAX_TREE_DEPTH} levels (a cycle?)"),
            );
            self.problems.affect(&key, snapshot, path);
            return false;
        }
        if let Some(key) = self.blob_problem(id.into(), "tree") {
            self.problems
                .affect(&key, snapshot, if path.is_empty() { "/" } else { path });
            return false;
        }
        let tree = match self.repo.read_tree_from_pack(&self.reader, id) {
            Ok(tree) => tree,
            Err(e) => {
                let pack = self.pack_of(id.into());
                let key = self.problems.add(
                    ProblemKind::TreeDamaged,
                    id.to_hex(),
                    pack,
                    Some(id.into()),
                    e.to_string(),
                );
                self.bad.insert(id.into(), key.clone());
                self.problems
                    .affect(&key, snapshot, if path.is_empty() { "/" } else { path });
                return false;
            }
        };
        self.trees += 1;
        let mut clean = true;
        for entry in &tree.entries {
            let child = format!("{path}/{}", String::from_utf8_lossy(&entry.name));
            match &entry.kind {
                EntryKind::Dir(sub) => clean &= self.walk_tree(*sub, &child, snapshot, depth + 1),
                EntryKind::File(data) => {
                    clean &= self.check_content(&data.content, &child, snapshot)
                }
                _ => {}
            }
        }
        if clean {
            self.clean.insert(id);
        }
        clean
    }

    /// Checks one run of chunk references; false if any is bad or missing.
    fn check_refs(
        &mut self,
        refs: &[crate::format::tree::ChunkRef],
        path: &str,
        snapshot: SnapshotId,
    ) -> bool {
        let mut clean = true;
        for r in refs {
            if let Some(key) = self.blob_problem(r.id.into(), "chunk") {
                self.problems.affect(&key, snapshot, path);
                clean = false;
            }
        }
        clean
    }

    fn check_content(&mut self, content: &Content, path: &str, snapshot: SnapshotId) -> bool {
        let lists = match content {
            Content::Inline(refs) => return self.check_refs(refs, path, snapshot),
            Content::Lists(lists) => lists,
        };
        let mut clean = true;
        for list in lists {
            // A big file unchanged across many snapshots shares its lists: check each once.
            let seen = (list.id, list.size, list.chunks);
            if self.clean_lists.contains(&seen) {
                continue;
            }
            if let Some(key) = self.blob_problem(list.id.into(), "chunk list") {
                self.problems.affect(&key, snapshot, path);
                clean = false;
                continue;
            }
            match self.repo.read_list_from_pack(&self.reader, list.id) {
                // The list must cover what its reference says, as restore demands.
                Ok(refs)
                    if refs.len() != list.chunks as usize
                        || refs.iter().map(|r| r.len as u64).sum::<u64>() != list.size =>
                {
                    let pack = self.pack_of(list.id.into());
                    let key = self.problems.add(
                        ProblemKind::BlobDamaged,
                        list.id.to_hex(),
                        pack,
                        Some(list.id.into()),
                        "chunk list does not match the size recorded in its tree".into(),
                    );
                    self.bad.insert(list.id.into(), key.clone());
                    self.problems.affect(&key, snapshot, path);
                    clean = false;
                }
                Ok(refs) => {
                    if self.check_refs(&refs, path, snapshot) {
                        self.clean_lists.insert(seen);
                    } else {
                        clean = false;
                    }
                }
                Err(e) => {
                    let pack = self.pack_of(list.id.into());
                    let key = self.problems.add(
                        ProblemKind::BlobDamaged,
                        list.id.to_hex(),
                        pack,
                        Some(list.id.into()),
                        e.to_string(),
                    );
                    self.bad.insert(list.id.into(), key.clone());
                    self.problems.affect(&key, snapshot, path);
                    clean = false;
                }
            }
        }
        clean
    }
}

fn selected(id: &PackId, read_data: ReadData, seed: u64) -> bool {
    let number = u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"));
    match read_data {
        ReadData::None | ReadData::Budget { .. } => false,
        ReadData::All => true,
        ReadData::Slice { n, m } => number % m == n - 1,
        ReadData::Percent(p) => {
            let mixed = (number ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (mixed >> 11) as f64 / (1u64 << 53) as f64 * 100.0 < p
        }
    }
}

/// Verifies the repository as `options` say.
pub fn run(
    repo: &Repository,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    repo.io_scope(|| verify(repo, options, progress))
}

fn verify(
    repo: &Repository,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let started = Instant::now();
    // A concurrent prune waits for registered readers before deleting packs.
    let _reader = repo.register("verify", false)?;
    let mut report = VerifyReport::default();
    let mut problems = Problems::default();
    let mut bad: HashMap<BlobId, ProblemKey> = HashMap::new();

    // Snapshots.
    let snapshots: Vec<SnapshotInfo> = match &options.snapshot {
        Some(one) => vec![one.clone()],
        None => {
            let (good, unreadable) = repo.snapshots()?;
            for (name, error) in unreadable {
                let key = problems.add(
                    ProblemKind::SnapshotDamaged,
                    name.clone(),
                    None,
                    None,
                    error.to_string(),
                );
                // Listed snapshots are named by their id.
                if let Some(id) = SnapshotId::from_hex(&name) {
                    problems.affect(&key, id, "/");
                }
            }
            good
        }
    };
    report.snapshots = snapshots.len() as u64;
    if options.snapshot.is_none() {
        // A damaged key file is lost as a way in (its password opens nothing any more).
        for (name, error) in repo.damaged_keys()? {
            problems.add(ProblemKind::KeyDamaged, name, None, None, error.to_string());
        }
    }

    // Packs: every trailer must decode and agree with the index.
    let listed = repo.backend().list(ObjectKind::Pack)?;
    let packs: Vec<(PackId, u64)> = listed
        .iter()
        .filter_map(|o| PackId::from_hex(&o.name).map(|id| (id, o.size)))
        .collect();
    report.packs = packs.len() as u64;
    let trailers: Vec<(PackId, Result<Vec<crate::format::pack::BlobEntry>>)> = packs
        .par_iter()
        .map(|(id, size)| {
            (
                *id,
                read_trailer(repo.backend().as_ref(), repo.encryption(), id, *size),
            )
        })
        .collect();
    {
        let reader = repo.index().reader()?;
        for (pack, trailer) in &trailers {
            match trailer {
                Err(e) => {
                    problems.add(
                        ProblemKind::PackUnreadable,
                        pack.to_hex(),
                        Some(*pack),
                        None,
                        e.to_string(),
                    );
                }
                Ok(entries) => {
                    for e in entries {
                        if let Some(loc) = reader.lookup(&e.id)? {
                            if loc.pack == *pack
                                && (loc.offset, loc.stored_len, loc.raw_len)
                                    != (e.offset, e.stored_len, e.raw_len)
                            {
                                problems.add(ProblemKind::TrailerMismatch, pack.to_hex(), Some(*pack), None, format!("index and trailer disagree on blob {}; run `vault index rebuild`", e.id.to_hex()));
                            }
                        }
                    }
                }
            }
        }
    }

    // Index segments: each must decode and agree with the trailers of the packs it describes
    // that are still listed (format-spec/11-remote.md 11.4).
    if options.snapshot.is_none() {
        let by_pack: HashMap<PackId, (u64, &Vec<crate::format::pack::BlobEntry>)> = trailers
            .iter()
            .zip(&packs)
            .filter_map(|((id, t), (_, size))| t.as_ref().ok().map(|e| (*id, (*size, e))))
            .collect();
        let segments: Vec<String> = repo
            .backend()
            .list(ObjectKind::Index)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        let decoded: Vec<(String, Result<Vec<crate::format::segment::SegmentPack>>)> = segments
            .par_iter()
            .map(|name| {
                let mut id = [0u8; 32];
                let result = match hex::decode_to_slice(name, &mut id) {
                    Ok(()) => crate::index::rebuild::read_segment(
                        repo.backend().as_ref(),
                        repo.encryption(),
                        &id,
                    ),
                    Err(_) => Err(crate::Error::invalid(
                        "index segment",
                        "name is not a segment id",
                    )),
                };
                (name.clone(), result)
            })
            .collect();
        for (name, result) in decoded {
            match result {
                Err(e) => {
                    problems.add(
                        ProblemKind::IndexSegmentDamaged,
                        name,
                        None,
                        None,
                        e.to_string(),
                    );
                }
                Ok(described) => {
                    for pack in described {
                        match by_pack.get(&pack.id) {
                            Some((size, entries))
                                if *size != pack.size || **entries != pack.entries =>
                            {
                                problems.add(
                                    ProblemKind::IndexSegmentMismatch,
                                    name.clone(),
                                    Some(pack.id),
                                    None,
                                    format!("it disagrees with the trailer of pack {}; the trailer is used, and the next prune rewrites the segment", pack.id.to_hex()),
                                );
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    // --read-data: every selected pack whole, every blob's digest.
    let seed = started.elapsed().as_nanos() as u64 ^ std::process::id() as u64;
    let mut to_read: Vec<PackId> = packs
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| selected(id, options.read_data, seed))
        .collect();
    let deadline = match options.read_data {
        ReadData::Budget { bytes, time } => {
            // Oldest-verified first; never-verified packs count as verified at time 0.
            let times = repo.index().pack_verified_times()?;
            let mut order: Vec<&(PackId, u64)> = packs.iter().collect();
            order.sort_by_key(|(id, _)| (times.get(id).copied().unwrap_or(0), *id));
            let mut total = 0u64;
            for (id, size) in order {
                if !to_read.is_empty() && bytes.is_some_and(|b| total + size > b) {
                    break;
                }
                total += size;
                to_read.push(*id);
            }
            time.map(|t| started + t)
        }
        _ => None,
    };
    // Packs in which an earlier run found damaged copies are read by every verify, so that a
    // record the repository no longer supports (the pack was put back whole) does not outlive
    // it.
    let recorded: HashSet<PackId> = repo
        .index()
        .damaged()?
        .into_iter()
        .map(|(_, pack)| pack)
        .collect();
    for (id, _) in &packs {
        if recorded.contains(id) && !to_read.contains(id) {
            to_read.push(*id);
        }
    }
    let mut whole_again = Vec::new();
    let mut verified = Vec::new();
    let mut damaged_copies = Vec::new();
    if !to_read.is_empty() {
        let total: u64 = packs
            .iter()
            .filter(|(id, _)| to_read.contains(id))
            .map(|(_, s)| s)
            .sum();
        progress.total(to_read.len() as u64, total);
        for batch in to_read.chunks(2) {
            if deadline.is_some_and(|d| Instant::now() >= d) && report.packs_read > 0 {
                break;
            }
            for check in read_data::check_packs(repo.backend().as_ref(), repo.encryption(), batch) {
                progress.bytes(check.bytes);
                progress.file_done();
                report.packs_read += 1;
                report.bytes_read += check.bytes;
                report.blobs_read += check.blobs;
                if let Some(reason) = check.unreadable {
                    problems.add(
                        ProblemKind::PackUnreadable,
                        check.pack.to_hex(),
                        Some(check.pack),
                        None,
                        reason,
                    );
                    continue;
                }
                // Every pack read counts as verified now, damaged or not (damage is remembered
                // per blob), so a budgeted run moves on through the repository.
                verified.push(check.pack);
                if check.damaged.is_empty() && recorded.contains(&check.pack) {
                    whole_again.push(check.pack);
                }
                if check.content_mismatch && check.damaged.is_empty() {
                    problems.add(
                        ProblemKind::PackContent,
                        check.pack.to_hex(),
                        Some(check.pack),
                        None,
                        "pack bytes do not match its name, though every blob checks out".into(),
                    );
                }
                let reader = repo.index().reader()?;
                for (blob, reason) in check.damaged {
                    // A damaged copy the index no longer uses (a good copy was stored since)
                    // harms no snapshot; prune removes it with its pack.
                    if reader
                        .lookup(&blob)?
                        .is_some_and(|loc| loc.pack != check.pack)
                    {
                        report.damaged_copies_superseded += 1;
                        continue;
                    }
                    damaged_copies.push((blob, check.pack));
                    let key = problems.add(
                        ProblemKind::BlobDamaged,
                        blob.to_hex(),
                        Some(check.pack),
                        Some(blob),
                        reason,
                    );
                    bad.insert(blob, key);
                }
            }
        }
    }

    // Nanoseconds: runs seconds apart (tests, retries) must still order their packs.
    let now = jiff::Timestamp::now().as_nanosecond().max(0) as u64;
    repo.index().record_verified(&verified, now)?;
    // Self-healing: damaged copies leave the index, so the next snapshot that meets the data
    // stores a good copy. The walk below still attributes them (they are in `bad`).
    report.blobs_unindexed = repo.index().mark_damaged(&damaged_copies)?;
    let listed_packs: HashMap<PackId, u64> = packs.iter().copied().collect();
    let trailer_of: HashMap<PackId, &Vec<crate::format::pack::BlobEntry>> = trailers
        .iter()
        .filter_map(|(id, t)| t.as_ref().ok().map(|e| (*id, e)))
        .collect();
    for pack in &recorded {
        let restored = match (listed_packs.get(pack), trailer_of.get(pack)) {
            (Some(size), Some(entries)) if whole_again.contains(pack) => {
                Some((*size, (*entries).clone()))
            }
            (None, _) => None,
            _ => continue, // still damaged, or unreadable: the record stays
        };
        report.damage_records_cleared += repo.index().clear_damage_record(*pack, restored)?;
    }
    // Copies found damaged by earlier runs that have a good copy again.
    let healed: HashSet<BlobId> = {
        let reader = repo.index().reader()?;
        let mut healed = HashSet::new();
        for (blob, _) in repo.index().damaged()? {
            if !bad.contains_key(&blob) && reader.contains(&blob)? {
                healed.insert(blob);
            }
        }
        healed
    };

    // Blobs of unreadable packs are bad wherever the index still places them there.
    let unreadable: HashSet<PackId> = problems
        .map
        .values()
        .filter(|p| p.kind == ProblemKind::PackUnreadable)
        .filter_map(|p| p.pack)
        .collect();
    if !unreadable.is_empty() {
        for (blob, pack) in repo.index().blobs_in_packs(&unreadable)? {
            let key = (ProblemKind::PackUnreadable, pack.to_hex());
            bad.entry(blob).or_insert(key);
        }
    }

    // Every snapshot's trees: attribute every bad or missing blob to the paths reaching it.
    let mut walker = Walker {
        repo,
        reader: repo.index().reader()?,
        bad,
        clean: HashSet::new(),
        problems,
        trees: 0,
        healed,
        clean_lists: HashSet::new(),
    };
    for snapshot in &snapshots {
        let root = snapshot.manifest.root().expect("validated at decode");
        walker.walk_tree(root, "", snapshot.id, 0);
    }
    report.trees = walker.trees;
    report.healed_blobs = walker.healed.len() as u64;
    report.problems = walker.problems.finish();
    let damaged = report.damaged_snapshots();
    // Whole *again*: snapshots an earlier verify found damaged that are whole now.
    let checked: Vec<[u8; 32]> = snapshots.iter().map(|s| s.id.0).collect();
    let damaged_ids: HashSet<[u8; 32]> = snapshots
        .iter()
        .filter(|s| damaged.contains(&s.id))
        .map(|s| s.id.0)
        .collect();
    let mut whole: Vec<SnapshotId> = repo
        .index()
        .update_damaged_snapshots(&checked, &damaged_ids)?
        .into_iter()
        .map(SnapshotId)
        .collect();
    whole.sort();
    report.snapshots_whole_again = whole;
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}
