//! `vault prune`: mark what the snapshots reach, then delete or repack the packs nobody needs,
//! in two phases so that a snapshot running at the same time is never robbed of a blob it
//! deduplicated against (format-spec/09-rotation.md has the design and its proof sketch).
//!
//! Phase 1 (mark and plan): forgotten snapshots are deleted; every blob reachable from the
//! remaining snapshots is live; packs without live blobs are condemned, packs with more unused
//! bytes than `max_unused` have their live blobs copied into new packs and are condemned too.
//! New packs are durable, then the plan naming the condemned packs is durable, then this
//! process's index stops finding blobs in condemned packs.
//!
//! Phase 2 (sweep): once every writer that was registered when the plan became durable has
//! ended, blobs that snapshots committed after the mark reach only through condemned packs are
//! rescued into new packs; then the condemned packs are deleted, then the plan. A crash at any
//! point leaves the plan behind, and the next prune finishes it first.

mod mark;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::pack::{self, BlobEntry};
use crate::format::plan::Plan;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::index::BlobLocation;
use crate::progress::Progress;
use crate::repo::{writers, Repository, SnapshotInfo};
use crate::storage::{is_not_found, ObjectKind};
use crate::write::PackWriter;
use mark::Marker;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// A pack whose unused share (unused bytes / pack size) exceeds this is repacked (0..=1).
    pub max_unused: f64,
    /// Compute and report, change nothing.
    pub dry_run: bool,
    /// Wait for running snapshots before deleting packs; without, leave the plan for the next
    /// prune when any is running.
    pub wait: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: 0.10,
            dry_run: false,
            wait: true,
        }
    }
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    /// Snapshots that remain.
    pub snapshots: u64,
    /// Forgotten snapshots whose manifests were deleted.
    pub snapshots_deleted: u64,
    /// Packs in the repository before the prune.
    pub packs_before: u64,
    pub bytes_before: u64,
    /// Packs deleted because no snapshot needs any of their blobs.
    pub packs_deleted: u64,
    /// Packs deleted after their live blobs were copied into new packs.
    pub packs_repacked: u64,
    /// New packs written (repacked and rescued blobs).
    pub packs_written: u64,
    pub bytes_written: u64,
    /// Bytes of pack files deleted minus bytes of pack files written.
    pub bytes_freed: u64,
    /// Bytes in packs that no snapshot needs, after the prune.
    pub bytes_unused_after: u64,
    pub bytes_after: u64,
    /// Live blobs copied into new packs.
    pub blobs_repacked: u64,
    /// Index segments written and deleted when the segments were rewritten without the deleted
    /// packs (format-spec/11-remote.md).
    pub segments_written: u64,
    pub segments_deleted: u64,
    /// Blobs that snapshots committed during the prune reached only through condemned packs.
    pub blobs_rescued: u64,
    /// Blobs a snapshot reaches that are in no pack (damaged or lost; see `vault verify`).
    pub blobs_missing: u64,
    /// Packs kept although condemned by the accounting, because a live blob in them failed its
    /// check (its only copy would be lost; `vault verify --read-data` reports it).
    pub packs_kept_damaged: Vec<String>,
    /// Packs that would be deleted or repacked but did not fit into this prune's plan; the next
    /// prune takes them.
    pub packs_left_for_next_prune: u64,
    /// Plans of earlier, interrupted prunes finished by this one.
    pub plans_finished: u64,
    /// The owner of a prune lock left by a process that no longer runs, taken over.
    pub stale_lock_taken_over: Option<String>,
    /// Running snapshots this prune waited for.
    pub waited_for: Vec<String>,
    /// Temporary files (`.tmp-*`) left by vault processes of this host that no longer run,
    /// removed (with `dry_run`: that would be removed), and their bytes.
    pub temp_files_removed: u64,
    pub temp_bytes_removed: u64,
    /// A plan is left for the next prune (snapshots still running and `wait` off).
    pub pending: bool,
    pub duration_secs: f64,
}

/// Packs one plan condemns at most: 64 hex characters and quotes each, so with up to ~100 000
/// snapshot ids a plan stays under half of `MAX_SEALED_FILE_SIZE`.
const MAX_CONDEMNED: usize = 50_000;

/// Polling interval while waiting for writers.
const WAIT_STEP: Duration = Duration::from_millis(250);

pub fn run(
    repo: &Repository,
    options: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    repo.io_scope(|| prune(repo, options, progress))
}

fn prune(
    repo: &Repository,
    options: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let started = Instant::now();
    let mut report = PruneReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let _lock = if options.dry_run {
        None
    } else {
        let (lock, broken) = writers::lock(repo.backend(), "prune", "prune")?;
        if let Some(dead) = broken {
            progress.warning(&format!(
                "took over the prune lock of a process that no longer runs: {}",
                dead.describe()
            ));
            report.stale_lock_taken_over = Some(dead.describe());
        }
        Some(lock)
    };
    sweep_temporary(repo, options.dry_run, &mut report)?;
    let before = repo.index().packs()?;
    report.packs_before = before.len() as u64;
    report.bytes_before = before.values().map(|p| p.size).sum();

    // Finish what an interrupted prune left, before deciding anything new.
    if !options.dry_run {
        for (id, plan) in repo.plans()? {
            if !finish_plan(repo, &id, &plan, options, progress, &mut report)? {
                report.pending = true;
                return Ok(finish_report(repo, report, started, None));
            }
            report.plans_finished += 1;
        }
    }

    let (all, unreadable) = repo.all_snapshots()?;
    if let Some((name, error)) = unreadable.first() {
        return Err(Error::Corrupt {
            object: format!("snapshot {name}"),
            reason: format!(
                "{error}; prune cannot know what it needs and changes nothing (if it is beyond repair, `vault forget {name}` it)"
            ),
        });
    }
    // A manifest is written only after every pack it reaches is durable (I3), so the packs of
    // every snapshot listed above exist now; this cache may not know those that other hosts
    // (other caches) wrote since it was opened.
    catch_up(repo)?;
    // Forgotten snapshots whose manifests cannot be read (`vault forget` takes an id whose
    // manifest is damaged) are listed by their markers.
    let readable: HashSet<SnapshotId> = all.iter().map(|s| s.id).collect();
    let protected = repo.protected()?;
    let unreadable_forgotten: Vec<SnapshotId> = repo
        .forgotten()?
        .into_iter()
        .filter(|id| !readable.contains(id) && !protected.contains(id))
        .collect();
    let (forgotten, kept): (Vec<SnapshotInfo>, Vec<SnapshotInfo>) =
        all.into_iter().partition(|s| s.forgotten && !s.protected);
    report.snapshots = kept.len() as u64;
    report.snapshots_deleted = (forgotten.len() + unreadable_forgotten.len()) as u64;
    if !options.dry_run {
        // After this prune they could not be restored anyway; deleted before the mark so that
        // an `undelete` racing with it fails loudly instead of bringing back a broken snapshot.
        for id in forgotten.iter().map(|s| s.id).chain(unreadable_forgotten) {
            repo.delete_forgotten(id)?;
        }
    }

    // Mark.
    let reader = repo.index().reader()?;
    let mut marker = Marker::new(repo, &reader, None);
    for s in &kept {
        marker.snapshot(s)?;
    }
    report.blobs_missing = marker.missing;
    let live = marker.into_live();

    // Account: bytes each pack holds for live blobs, and which live blobs live where.
    let condemned_before = repo.index().condemned()?;
    let records: HashMap<PackId, crate::index::PackRecord> = repo
        .index()
        .packs()?
        .into_iter()
        .filter(|(id, _)| !condemned_before.contains(id))
        .collect();
    let packs: HashMap<PackId, u64> = records.iter().map(|(id, p)| (*id, p.size)).collect();
    let mut used: HashMap<PackId, u64> = HashMap::new();
    repo.index().for_each_blob(|id, loc| {
        if live.contains(&id) {
            *used.entry(loc.pack).or_default() += loc.stored_len as u64;
        }
    })?;
    let mut delete = Vec::new();
    let mut repack = Vec::new();
    let mut unused_kept = 0u64;
    let mut ids: Vec<&PackId> = packs.keys().collect();
    ids.sort();
    for id in ids {
        let size = packs[id];
        let used = used.get(id).copied().unwrap_or(0);
        // Header, trailer and footer are not reclaimable: a pack of live blobs only is never
        // repacked, however small.
        let unused = size
            .saturating_sub(pack::overhead(repo.encryption(), records[id].blobs as u64))
            .saturating_sub(used);
        if used == 0 {
            delete.push(*id);
        } else if unused as f64 > options.max_unused * size as f64 {
            repack.push(*id);
        } else {
            unused_kept += unused;
        }
    }
    // A plan must stay well inside the sealed-file limit; what does not fit waits for the next
    // prune (deleting whole packs first, as they free the most for the least work).
    if delete.len() + repack.len() > MAX_CONDEMNED {
        let room = MAX_CONDEMNED.saturating_sub(delete.len());
        report.packs_left_for_next_prune =
            (delete.len().saturating_sub(MAX_CONDEMNED) + repack.len().saturating_sub(room)) as u64;
        delete.truncate(MAX_CONDEMNED);
        repack.truncate(room);
    }
    // The live blobs of the packs to repack only: memory follows what is copied, not the
    // repository.
    let repack_set: HashSet<PackId> = repack.iter().copied().collect();
    let mut live_in: HashMap<PackId, Vec<(BlobId, BlobLocation)>> = HashMap::new();
    if !repack_set.is_empty() {
        repo.index().for_each_blob(|id, loc| {
            if repack_set.contains(&loc.pack) && live.contains(&id) {
                live_in.entry(loc.pack).or_default().push((id, loc));
            }
        })?;
    }
    drop(live);
    report.packs_deleted = delete.len() as u64;
    report.packs_repacked = repack.len() as u64;
    report.blobs_repacked = repack
        .iter()
        .map(|p| live_in.get(p).map_or(0, |v| v.len() as u64))
        .sum();
    if options.dry_run {
        let freed: u64 = delete.iter().chain(&repack).map(|p| packs[p]).sum();
        let copied: u64 = repack
            .iter()
            .map(|p| used.get(p).copied().unwrap_or(0))
            .sum();
        report.bytes_written = copied;
        report.bytes_freed = freed.saturating_sub(copied);
        report.bytes_unused_after = unused_kept;
        report.bytes_after = report.bytes_before - report.bytes_freed;
        return Ok(finish_report(repo, report, started, Some(unused_kept)));
    }
    if delete.is_empty() && repack.is_empty() {
        return Ok(finish_report(repo, report, started, Some(unused_kept)));
    }

    // Repack: live blobs of repacked packs into new packs, checked on the way.
    let mut writer = PackWriter::new(&repo.write_destination());
    let mut condemned: Vec<PackId> = delete;
    progress.total(repack.len() as u64, repack.iter().map(|p| packs[p]).sum());
    copy_packs(repo, &repack, &mut live_in, &mut writer, |pack, copied| {
        progress.bytes(packs[&pack]);
        match copied {
            true => condemned.push(pack),
            false => report.packs_kept_damaged.push(pack.to_hex()),
        }
    })?;
    report.packs_repacked -= report.packs_kept_damaged.len() as u64;
    let written = writer.finish()?;
    // Copying can reproduce a pack byte for byte (same blobs, same order): then it is the same
    // object, and must not be deleted.
    let written_ids: HashSet<PackId> = written.iter().map(|(p, _, _)| *p).collect();
    condemned.retain(|p| !written_ids.contains(p));
    drop(reader);

    // The plan is durable before this index stops finding the condemned packs' blobs, and both
    // before any pack is deleted.
    let plan = Plan {
        version: crate::format::FORMAT_VERSION,
        time: jiff::Timestamp::now().to_string(),
        host: crate::host::hostname(),
        condemned: condemned.iter().map(|p| p.to_hex()).collect(),
        written: written.iter().map(|(p, _, _)| p.to_hex()).collect(),
        snapshots: kept.iter().map(|s| s.id.to_hex()).collect(),
    };
    let plan_id = repo.write_plan(&plan)?;
    let condemned_set: HashSet<PackId> = condemned.iter().copied().collect();
    repo.index()
        .apply_plan(&plan_id, &condemned_set, Some(&written))?;
    report.packs_written += written.len() as u64;
    report.bytes_written += written.iter().map(|(_, s, _)| s).sum::<u64>();
    if !finish_plan(repo, &plan_id, &plan, options, progress, &mut report)? {
        report.pending = true;
    }
    Ok(finish_report(repo, report, started, Some(unused_kept)))
}

/// Removes the temporary files that killed vault processes left (a pack being filled, objects
/// waiting for their fsync). Only those whose process certainly no longer runs: made on this
/// host, by a process id that is gone or another process now, or before the last boot. A
/// running process's files, and every file made on another host, are kept (that host's next
/// prune removes its own).
fn sweep_temporary(repo: &Repository, dry_run: bool, report: &mut PruneReport) -> Result<()> {
    for object in repo.backend().list_temporary()? {
        if !object.is_abandoned() {
            continue;
        }
        if !dry_run {
            repo.backend().delete_temporary(&object)?;
        }
        report.temp_files_removed += 1;
        report.temp_bytes_removed += object.size;
    }
    Ok(())
}

/// Takes into the index the packs (and index segments) written since it was last synced, so
/// that a blob is looked for in the condemned packs only when no other pack holds it. Packs
/// whose trailers cannot be read stay out (verify reports them).
fn catch_up(repo: &Repository) -> Result<()> {
    repo.sync_index(false).map(|_| ())
}

fn finish_report(
    repo: &Repository,
    mut report: PruneReport,
    started: Instant,
    unused_kept: Option<u64>,
) -> PruneReport {
    if !report.dry_run {
        let after: u64 = repo
            .index()
            .packs()
            .map(|p| p.values().map(|p| p.size).sum())
            .unwrap_or(0);
        report.bytes_after = after;
        report.bytes_freed = report.bytes_before.saturating_sub(after);
    }
    if let Some(unused) = unused_kept {
        report.bytes_unused_after = unused;
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    report
}

/// Phase 2 of a plan. Returns false when writers are still running and `wait` is off.
fn finish_plan(
    repo: &Repository,
    id: &[u8; 32],
    plan: &Plan,
    options: &PruneOptions,
    progress: &dyn Progress,
    report: &mut PruneReport,
) -> Result<bool> {
    // The writers registered now include every one registered before the plan was durable
    // that is still running; later ones read the plan and avoid its packs.
    let mut waiting: Option<HashSet<String>> = None;
    loop {
        let mut running = HashSet::new();
        for (name, owner) in writers::writers(repo.backend().as_ref())? {
            match owner {
                Some(o) if o.is_dead() => {
                    progress.warning(&format!(
                        "removing the registration of a snapshot that is no longer running: {}",
                        o.describe()
                    ));
                    writers::remove(repo.backend().as_ref(), ObjectKind::Writer, &name)?;
                }
                owner => {
                    if waiting.is_none() {
                        report.waited_for.push(
                            owner
                                .map(|o| o.describe())
                                .unwrap_or_else(|| format!("writer {name}")),
                        );
                    }
                    running.insert(name);
                }
            }
        }
        let still: HashSet<String> = match &waiting {
            None => running,
            Some(w) => w.intersection(&running).cloned().collect(),
        };
        if still.is_empty() {
            break;
        }
        if !options.wait {
            return Ok(false);
        }
        if waiting.is_none() {
            progress.warning(&format!(
                "waiting for {} running snapshot(s) to finish before deleting packs",
                still.len()
            ));
        }
        waiting = Some(still);
        std::thread::sleep(WAIT_STEP);
    }

    // Rescue: snapshots committed after the mark may reach blobs only condemned packs hold.
    let condemned: HashSet<PackId> = plan.condemned_packs().into_iter().collect();
    let marked: HashSet<SnapshotId> = plan
        .snapshots
        .iter()
        .filter_map(|h| SnapshotId::from_hex(h))
        .collect();
    let (all, unreadable) = repo.all_snapshots()?;
    if let Some((name, error)) = unreadable.first() {
        return Err(Error::Corrupt {
            object: format!("snapshot {name}"),
            reason: format!("{error}; prune deletes nothing while a snapshot is unreadable"),
        });
    }
    let later: Vec<&SnapshotInfo> = all.iter().filter(|s| !marked.contains(&s.id)).collect();
    // The snapshots that committed while this prune waited wrote packs this cache has never
    // seen when they ran from another host: take them in before deciding what needs rescue.
    catch_up(repo)?;
    let mut keep: HashSet<PackId> = HashSet::new();
    if !later.is_empty() {
        let locator = CondemnedBlobs::read(repo, &condemned)?;
        let reader = repo.index().reader()?;
        let mut marker = Marker::new(repo, &reader, Some(&locator));
        for s in &later {
            marker.snapshot(s)?;
        }
        let rescue = marker.into_rescued();
        if !rescue.is_empty() {
            let mut by_pack: HashMap<PackId, Vec<(BlobId, BlobLocation)>> = HashMap::new();
            for id in &rescue {
                if let Some(loc) = locator.blobs.get(id) {
                    by_pack.entry(loc.pack).or_default().push((*id, *loc));
                }
            }
            let mut writer = PackWriter::new(&repo.write_destination());
            let sources: Vec<PackId> = by_pack.keys().copied().collect();
            let mut damaged = None;
            copy_packs(repo, &sources, &mut by_pack, &mut writer, |pack, copied| {
                if !copied {
                    damaged.get_or_insert(pack);
                }
            })?;
            if let Some(pack) = damaged {
                return Err(Error::Corrupt {
                    object: format!("pack {}", pack.to_hex()),
                    reason: "a blob a new snapshot needs failed its check; prune deletes nothing (run `vault verify --read-data`)".into(),
                });
            }
            let written = writer.finish()?;
            drop(reader);
            repo.index().add_copies(&written)?;
            // A copy that reproduced a condemned pack byte for byte is that pack: keep it. It is
            // indexed again once the plan is gone (Repository::refresh below).
            keep.extend(written.iter().map(|(p, _, _)| *p));
            report.blobs_rescued += rescue.len() as u64;
            report.packs_written += written.len() as u64;
            report.bytes_written += written.iter().map(|(_, s, _)| s).sum::<u64>();
        }
    }

    // Sweep.
    let mut gone = Vec::new();
    for pack in plan.condemned_packs() {
        if keep.contains(&pack) {
            continue;
        }
        match repo.backend().delete(ObjectKind::Pack, &pack.to_hex()) {
            Ok(()) => gone.push(pack),
            Err(e) if is_not_found(&e) => gone.push(pack),
            Err(e) => return Err(e),
        }
    }
    repo.index().drop_packs(&gone)?;
    repo.delete_plan(id)?;
    repo.index().drop_plans(&[*id])?;
    // Segments that describe the deleted packs are rewritten without them.
    let compacted = repo.compact_segments()?;
    report.segments_written += compacted.segments_written;
    report.segments_deleted += compacted.segments_deleted;
    if !keep.is_empty() {
        repo.refresh()?;
    }
    Ok(true)
}

/// Where the blobs of condemned packs are, read from their trailers (the index no longer
/// finds them).
pub(crate) struct CondemnedBlobs {
    blobs: HashMap<BlobId, BlobLocation>,
}

impl CondemnedBlobs {
    fn read(repo: &Repository, packs: &HashSet<PackId>) -> Result<CondemnedBlobs> {
        let mut blobs = HashMap::new();
        for pack in packs {
            let size = match repo.backend().size(ObjectKind::Pack, &pack.to_hex()) {
                Ok(size) => size,
                Err(e) if is_not_found(&e) => continue, // deleted by an interrupted sweep
                Err(e) => return Err(e),
            };
            for e in crate::index::rebuild::read_trailer(
                repo.backend().as_ref(),
                repo.encryption(),
                pack,
                size,
            )? {
                blobs.entry(e.id).or_insert(location(*pack, &e));
            }
        }
        Ok(CondemnedBlobs { blobs })
    }

    pub(crate) fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.blobs.get(id).copied()
    }
}

fn location(pack: PackId, e: &BlobEntry) -> BlobLocation {
    BlobLocation {
        pack,
        offset: e.offset,
        stored_len: e.stored_len,
        raw_len: e.raw_len,
        kind: e.kind,
        encoding: e.encoding,
    }
}

/// A pack read whole to copy blobs out of it.
struct ReadPack {
    data: Vec<u8>,
    /// Its bytes hash to its name: every stored byte is as written.
    intact: bool,
}

/// Reads a pack whole into `buf` and checks it against its name (one BLAKE3 pass). `None` for
/// no pack.
fn read_pack(
    repo: &Repository,
    pack: Option<&PackId>,
    mut buf: Vec<u8>,
) -> Option<Result<ReadPack>> {
    let pack = pack?;
    Some(
        repo.backend()
            .read_into(ObjectKind::Pack, &pack.to_hex(), &mut buf)
            .map(|()| ReadPack {
                intact: PackId::digest(&buf) == *pack,
                data: buf,
            }),
    )
}

/// Copies blobs of one pack into new packs. A pack that matches its name is copied from as it
/// is (the writer checked each blob against its id when it made the pack, and no byte has
/// changed since); otherwise each blob is checked (decompressed, its digest compared) and the
/// copy stops at the first that fails, returning false. In an encrypted repository every blob
/// is sealed again by the writer (authenticated, not decompressed).
fn copy_blobs(
    pack: &ReadPack,
    blobs: &[(BlobId, BlobLocation)],
    writer: &mut PackWriter<'_>,
) -> Result<bool> {
    for (id, loc) in blobs {
        let start = loc.offset as usize;
        let Some(stored) = pack.data.get(start..start + loc.stored_len as usize) else {
            return Ok(false);
        };
        if !pack.intact
            && pack::check_blob(
                writer.encryption(),
                *id,
                loc.kind,
                loc.encoding,
                loc.raw_len,
                stored,
            )
            .is_err()
        {
            return Ok(false);
        }
        if !writer.add_stored(*id, loc.kind, loc.encoding, loc.raw_len, stored)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Copies the live blobs of `packs`, in order, reading the next pack while the current one's
/// blobs are written. Calls `done(pack, copied)` for each (false: a blob failed its check).
fn copy_packs(
    repo: &Repository,
    packs: &[PackId],
    blobs: &mut HashMap<PackId, Vec<(BlobId, BlobLocation)>>,
    writer: &mut PackWriter<'_>,
    mut done: impl FnMut(PackId, bool),
) -> Result<()> {
    // Two buffers, reused: the pack being copied and the one being read.
    let mut spare = Vec::new();
    let mut next = read_pack(repo, packs.first(), Vec::new());
    for (i, pack) in packs.iter().enumerate() {
        let current = next.take().expect("read ahead")?;
        let live = blobs.remove(pack).unwrap_or_default();
        let buffer = std::mem::take(&mut spare);
        let (ahead, copied) = rayon::join(
            || read_pack(repo, packs.get(i + 1), buffer),
            || copy_blobs(&current, &live, writer),
        );
        next = ahead;
        spare = current.data;
        done(*pack, copied?);
    }
    Ok(())
}
