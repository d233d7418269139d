//! `vault prune`: mark what the snapshots reach, then delete or repack the packs nobody needs,
//! in two phases so that a snapshot running at the same time is never robbed of a blob it
//! deduplicated against (format-spec/09-rotation.md has the design and its proof sketch).
//!
//! Phase 1 (mark and plan, [`prune`] here): forgotten snapshots are deleted; every blob
//! reachable from the remaining snapshots is live (`mark.rs`); packs without live blobs are
//! condemned, packs with more unused bytes than `max_unused` (`account.rs`) have their live
//! blobs copied into new packs (`repack.rs`, through [`crate::write::PackWriter`]) and are
//! condemned too. New packs are durable, then the plan naming the condemned packs is durable,
//! then this process's index stops finding blobs in condemned packs.
//!
//! Phase 2 (`sweep.rs`): once every writer that was registered when the plan became durable has
//! ended, blobs that snapshots committed after the mark reach only through condemned packs are
//! rescued into new packs; then the condemned packs are deleted, then the plan. A crash at any
//! point leaves the plan behind, and the next prune finishes it first.

mod account;
mod mark;
mod repack;
mod sweep;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::plan::Plan;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::progress::Progress;
use crate::repo::{writers, Repository, SnapshotInfo};
use mark::Marker;
use sweep::{finish_plan, CondemnedBlobs};

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
    pub packs_kept_damaged: Vec<PackId>,
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

/// Every blob `snapshot` reaches (its trees, chunk lists and chunks), marked exactly as prune
/// marks what it keeps, so that `vault stats` ("what forgetting it would free") agrees with what
/// a prune frees. Fails as prune's mark does on a tree or chunk list that cannot be read.
pub fn reachable(repo: &Repository, snapshot: &SnapshotInfo) -> Result<HashSet<BlobId>> {
    let reader = repo.index().reader()?;
    let mut marker = Marker::new(repo, &reader, None);
    marker.snapshot(snapshot)?;
    Ok(marker.into_live())
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

/// Phase 1, mark and plan (phase 2 is [`sweep`]): finishes the plans of interrupted prunes,
/// deletes forgotten snapshots, marks what the others reach, [`account`]s every pack,
/// [`repack`]s the wasteful ones and writes the plan that condemns them.
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
    let kept = drop_forgotten(repo, options, &mut report)?;

    // Mark.
    let reader = repo.index().reader()?;
    let mut marker = Marker::new(repo, &reader, None);
    for s in &kept {
        marker.snapshot(s)?;
    }
    report.blobs_missing = marker.missing;
    let live = marker.into_live();

    // Account: bytes each pack holds for live blobs, and which live blobs live where.
    let mut account = account::account(repo, live, options, &mut report)?;
    let unused_kept = account.unused_kept;
    if options.dry_run {
        account.dry_run(&mut report);
        return Ok(finish_report(repo, report, started, Some(unused_kept)));
    }
    if account.delete.is_empty() && account.repack.is_empty() {
        return Ok(finish_report(repo, report, started, Some(unused_kept)));
    }

    // Repack: live blobs of repacked packs into new packs, checked on the way.
    let (condemned, written) = repack::repack(repo, &mut account, progress, &mut report)?;
    drop(reader);

    // The plan is durable before this index stops finding the condemned packs' blobs, and both
    // before any pack is deleted.
    let plan = Plan {
        version: crate::format::OBJECT_VERSION,
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

/// Reads every snapshot (failing if one is unreadable), catches the index up with their packs
/// and deletes the forgotten ones (without `dry_run`); returns the snapshots that stay.
fn drop_forgotten(
    repo: &Repository,
    options: &PruneOptions,
    report: &mut PruneReport,
) -> Result<Vec<SnapshotInfo>> {
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
        // A replaced snapshot goes even if protected: its replacement carries the protection
        // (09-rotation.md §9.9, E1), and only a crash between E3 and E4 leaves the old marker.
        all.into_iter()
            .partition(|s| s.forgotten && (!s.protected || s.replaced_by.is_some()));
    report.snapshots = kept.len() as u64;
    report.snapshots_deleted = (forgotten.len() + unreadable_forgotten.len()) as u64;
    if !options.dry_run {
        // After this prune they could not be restored anyway; deleted before the mark so that
        // an `undelete` racing with it fails loudly instead of bringing back a broken snapshot.
        for id in forgotten.iter().map(|s| s.id).chain(unreadable_forgotten) {
            repo.delete_forgotten(id)?;
        }
    }
    Ok(kept)
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
