//! Prune, phase 2 of the mark and plan: account. Input: the live blobs (what the snapshots
//! reach). Output: an [`Account`]: the bytes each pack holds for live blobs, the packs to delete
//! (no live blob) and to repack (more unused bytes than `max_unused`), and the live blobs of the
//! packs to repack. Reads the index only; changes nothing.

use std::collections::{HashMap, HashSet};

use super::{PruneOptions, PruneReport, MAX_CONDEMNED};
use crate::error::Result;
use crate::format::pack;
use crate::id::{BlobId, PackId};
use crate::index::BlobLocation;
use crate::repo::Repository;

/// What the packs hold for the snapshots, and what to do with them.
pub(super) struct Account {
    /// Size of each pack (not condemned by an earlier plan).
    pub packs: HashMap<PackId, u64>,
    /// Bytes each pack holds for live blobs.
    pub used: HashMap<PackId, u64>,
    /// Packs without live blobs.
    pub delete: Vec<PackId>,
    /// Packs whose live blobs are copied into new packs.
    pub repack: Vec<PackId>,
    /// The live blobs of the packs to repack, by pack.
    pub live_in: HashMap<PackId, Vec<(BlobId, BlobLocation)>>,
    /// Unused bytes in the packs that stay.
    pub unused_kept: u64,
}

/// Accounts every pack against `live`; records the counts in `report`.
pub(super) fn account(
    repo: &Repository,
    live: HashSet<BlobId>,
    options: &PruneOptions,
    report: &mut PruneReport,
) -> Result<Account> {
    let condemned_before = repo.index().condemned()?;
    let records: HashMap<PackId, crate::index::PackRecord> = repo
        .index()
        .packs()?
        .into_iter()
        .filter(|(id, _)| !condemned_before.contains(id))
        .collect();
    let packs: HashMap<PackId, u64> = records.iter().map(|(id, p)| (*id, p.size)).collect();
    let mut used: HashMap<PackId, u64> = HashMap::new();
    // Delta entries of each pack: their base ids are trailer bytes, not reclaimable either.
    let mut deltas: HashMap<PackId, u64> = HashMap::new();
    repo.index().for_each_blob(|id, loc| {
        if live.contains(&id) {
            *used.entry(loc.pack).or_default() += loc.stored_len as u64;
        }
        if loc.encoding.base().is_some() {
            *deltas.entry(loc.pack).or_default() += 1;
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
            .saturating_sub(pack::overhead(
                repo.encryption(),
                records[id].blobs as u64,
                deltas.get(id).copied().unwrap_or(0),
            ))
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
    Ok(Account {
        packs,
        used,
        delete,
        repack,
        live_in,
        unused_kept,
    })
}

impl Account {
    /// What a dry run reports: the bytes the repack would copy and the prune would free.
    pub(super) fn dry_run(&self, report: &mut PruneReport) {
        let Account {
            packs,
            used,
            delete,
            repack,
            unused_kept,
            ..
        } = self;
        let freed: u64 = delete.iter().chain(repack).map(|p| packs[p]).sum();
        let copied: u64 = repack
            .iter()
            .map(|p| used.get(p).copied().unwrap_or(0))
            .sum();
        report.bytes_written = copied;
        report.bytes_freed = freed.saturating_sub(copied);
        report.bytes_unused_after = *unused_kept;
        report.bytes_after = report.bytes_before - report.bytes_freed;
    }
}
