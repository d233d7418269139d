//! Prune, phase 2 of a plan: wait, rescue, sweep. Input: a durable plan (condemned packs,
//! the snapshots it marked). Output: the condemned packs deleted, then the plan, the index and
//! the index segments brought in line (format-spec/09-rotation.md).
//!
//! Wait: until every writer registered when the plan became durable has ended. Rescue: blobs
//! that snapshots committed since reach only through condemned packs are copied into new
//! packs (committed before they are indexed, I1). Sweep: the condemned packs are deleted, then
//! the plan. A crash at any point leaves the plan behind, and the next prune finishes it.

use std::collections::{HashMap, HashSet};

use super::mark::Marker;
use super::repack::copy_packs;
use super::{catch_up, PruneOptions, PruneReport, WAIT_STEP};
use crate::error::{Error, Result};
use crate::format::pack::BlobEntry;
use crate::format::plan::Plan;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::index::BlobLocation;
use crate::progress::Progress;
use crate::repo::{writers, Repository, SnapshotInfo};
use crate::storage::{is_not_found, ObjectKind};
use crate::write::PackWriter;

/// Phase 2 of a plan. Returns false when writers are still running and `wait` is off.
pub(super) fn finish_plan(
    repo: &Repository,
    id: &[u8; 32],
    plan: &Plan,
    options: &PruneOptions,
    progress: &dyn Progress,
    report: &mut PruneReport,
) -> Result<bool> {
    if !wait_for_writers(repo, options, progress, report)? {
        return Ok(false);
    }
    let keep = rescue(repo, plan, report)?;
    sweep(repo, id, plan, &keep, report)?;
    Ok(true)
}

/// Waits until no writer registered now is still running; false when some are and `wait` is
/// off. Registrations of dead processes are removed.
fn wait_for_writers(
    repo: &Repository,
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
            return Ok(true);
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
}

/// Copies into new packs the blobs that snapshots committed after the plan's mark reach only
/// through condemned packs; returns the new packs that are condemned packs reproduced byte for
/// byte (kept).
fn rescue(repo: &Repository, plan: &Plan, report: &mut PruneReport) -> Result<HashSet<PackId>> {
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
    Ok(keep)
}

/// Deletes the condemned packs (but `keep`), then the plan; rewrites the segments that
/// described the deleted packs.
fn sweep(
    repo: &Repository,
    id: &[u8; 32],
    plan: &Plan,
    keep: &HashSet<PackId>,
    report: &mut PruneReport,
) -> Result<()> {
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
    // Resemblance hints at chunks that went with these packs are useless now.
    repo.index().forget_stale_similar()?;
    repo.delete_plan(id)?;
    repo.index().drop_plans(&[*id])?;
    // Segments that describe the deleted packs are rewritten without them.
    let compacted = repo.compact_segments()?;
    report.segments_written += compacted.segments_written;
    report.segments_deleted += compacted.segments_deleted;
    if !keep.is_empty() {
        repo.refresh()?;
    }
    Ok(())
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
