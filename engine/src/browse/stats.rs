//! `vault stats [SNAPSHOT...]`: what the snapshots hold and what they cost.
//!
//! Per snapshot: its logical size and file count and the bytes it added when it was taken (all
//! three recorded in its manifest), and the bytes only it holds now: the stored bytes of the
//! blobs it reaches and no other snapshot that is not forgotten reaches, plus the rest of each
//! pack holding only such blobs (deleted whole): what forgetting it and pruning would free
//! (packs that prune leaves partly used under `--max-unused` free less). Blobs are marked per snapshot by prune's own
//! marker ([`crate::prune::reachable`]), each blob remembering the one snapshot that reaches it
//! or that several do. For the repository: stored bytes (pack files), logical bytes over all
//! snapshots, the deduplication and compression ratios of what the snapshots reach, packs, and
//! the bytes added per day over the last `days` days.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::{BlobId, BlobKind, PackId, SnapshotId};
use crate::prune::reachable;
use crate::repo::Repository;
use crate::report::JsonReport;

#[derive(Debug, Clone)]
pub struct StatsOptions {
    /// The snapshots to report on (full ids); empty for every snapshot that is not forgotten.
    pub snapshots: Vec<SnapshotId>,
    /// Days of growth to report, ending today (UTC).
    pub days: u32,
    /// "Today": the end of the growth window.
    pub now: jiff::Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotStats {
    pub id: SnapshotId,
    pub short_id: String,
    pub time: String,
    /// Files and streams (recorded in the manifest).
    pub files: u64,
    /// Logical size: all files and streams (recorded in the manifest).
    pub bytes_total: u64,
    /// Stored bytes of the blobs this snapshot wrote when it was taken (recorded in the
    /// manifest; a copy records the original's).
    pub bytes_added: u64,
    /// What forgetting this snapshot and pruning would free now: the stored bytes of the blobs
    /// only it reaches, plus the rest of every pack that holds nothing else a snapshot needs
    /// (header, trailer, unused blobs), as such a pack is deleted whole.
    pub bytes_exclusive: u64,
    /// Blobs (chunks, trees, chunk lists) it reaches.
    pub blobs: u64,
}

/// One day of growth.
#[derive(Debug, Clone, Serialize)]
pub struct DayGrowth {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub snapshots: u64,
    /// Sum of the `bytes_added` of the snapshots taken that day.
    pub bytes_added: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryStats {
    /// Snapshots that are not forgotten.
    pub snapshots: u64,
    pub packs: u64,
    /// Size of all pack files.
    pub bytes_stored: u64,
    /// Sum of the logical sizes of all snapshots.
    pub bytes_logical: u64,
    /// Bytes of the distinct chunks the snapshots reach, uncompressed.
    pub bytes_unique: u64,
    /// Stored bytes of the blobs the snapshots reach (the rest of `bytes_stored` is pack
    /// overhead and data `vault prune` can delete).
    pub bytes_live: u64,
    /// `bytes_logical / bytes_unique`.
    pub dedup_ratio: f64,
    /// Uncompressed over stored bytes of the chunks the snapshots reach.
    pub compression_ratio: f64,
    pub growth_days: u32,
    /// Oldest day first.
    pub growth: Vec<DayGrowth>,
    /// Bytes added over the window divided by its days.
    pub bytes_added_per_day: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    pub snapshots: Vec<SnapshotStats>,
    pub repository: RepositoryStats,
}

impl JsonReport for StatsReport {}

/// Which snapshots reach a blob.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    One(usize),
    Many,
}

pub fn stats(repo: &Repository, options: &StatsOptions) -> Result<StatsReport> {
    let (all, unreadable) = repo.snapshots()?;
    if let Some((name, error)) = unreadable.first() {
        return Err(Error::Corrupt {
            object: format!("snapshot {name}"),
            reason: format!(
                "{error}; what it shares with others is unknown (if it is beyond repair, `vault forget {name}` it)"
            ),
        });
    }
    let mut owners: HashMap<BlobId, Owner> = HashMap::new();
    let mut blobs = vec![0u64; all.len()];
    for (i, snapshot) in all.iter().enumerate() {
        for id in reachable(repo, snapshot)? {
            blobs[i] += 1;
            owners
                .entry(id)
                .and_modify(|o| {
                    if *o != Owner::One(i) {
                        *o = Owner::Many
                    }
                })
                .or_insert(Owner::One(i));
        }
    }
    let mut exclusive = vec![0u64; all.len()];
    let (mut unique, mut live, mut chunks_stored) = (0u64, 0u64, 0u64);
    // Per pack: who its live blobs belong to, and their stored bytes.
    let mut pack_owner: HashMap<PackId, (Owner, u64)> = HashMap::new();
    repo.index().for_each_blob(|id, loc| {
        let Some(&owner) = owners.get(&id) else {
            return;
        };
        live += loc.stored_len as u64;
        if loc.kind == BlobKind::Chunk {
            unique += loc.raw_len as u64;
            chunks_stored += loc.stored_len as u64;
        }
        if let Owner::One(i) = owner {
            exclusive[i] += loc.stored_len as u64;
        }
        let (o, bytes) = pack_owner.entry(loc.pack).or_insert((owner, 0));
        if *o != owner {
            *o = Owner::Many;
        }
        *bytes += loc.stored_len as u64;
    })?;
    let packs = repo.index().packs()?;
    // A pack whose live blobs all belong to one snapshot is deleted whole when it goes: its
    // header, trailer and unused blobs are freed with it.
    for (pack, (owner, bytes)) in &pack_owner {
        if let (Owner::One(i), Some(record)) = (owner, packs.get(pack)) {
            exclusive[*i] += record.size.saturating_sub(*bytes);
        }
    }
    let logical: u64 = all.iter().map(|s| s.manifest.summary.bytes_total).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (growth, added) = growth(&all, options)?;
    let selected: Vec<usize> = if options.snapshots.is_empty() {
        (0..all.len()).collect()
    } else {
        options
            .snapshots
            .iter()
            .filter_map(|id| all.iter().position(|s| s.id == *id))
            .collect()
    };
    let snapshots = selected
        .into_iter()
        .map(|i| {
            let s = &all[i];
            SnapshotStats {
                id: s.id,
                short_id: s.id.short(),
                time: s.manifest.time.clone(),
                files: s.manifest.summary.files,
                bytes_total: s.manifest.summary.bytes_total,
                bytes_added: s.manifest.summary.bytes_added,
                bytes_exclusive: exclusive[i],
                blobs: blobs[i],
            }
        })
        .collect();
    Ok(StatsReport {
        snapshots,
        repository: RepositoryStats {
            snapshots: all.len() as u64,
            packs: packs.len() as u64,
            bytes_stored: packs.values().map(|p| p.size).sum(),
            bytes_logical: logical,
            bytes_unique: unique,
            bytes_live: live,
            dedup_ratio: ratio(logical, unique),
            compression_ratio: ratio(unique, chunks_stored),
            growth_days: options.days,
            bytes_added_per_day: added as f64 / options.days.max(1) as f64,
            growth,
        },
    })
}

/// Bytes added per day over the window, and their total.
fn growth(
    all: &[crate::repo::SnapshotInfo],
    options: &StatsOptions,
) -> Result<(Vec<DayGrowth>, u64)> {
    let utc = jiff::tz::TimeZone::UTC;
    let today = options.now.to_zoned(utc.clone()).date();
    let mut days: BTreeMap<jiff::civil::Date, DayGrowth> = BTreeMap::new();
    for back in 0..options.days {
        let day = today
            .checked_sub(jiff::Span::new().days(back as i64))
            .map_err(|e| Error::invalid("--days", e.to_string()))?;
        days.insert(
            day,
            DayGrowth {
                day: day.to_string(),
                snapshots: 0,
                bytes_added: 0,
            },
        );
    }
    let mut total = 0;
    for s in all {
        let Ok(time) = s.manifest.time.parse::<jiff::Timestamp>() else {
            continue;
        };
        if let Some(d) = days.get_mut(&time.to_zoned(utc.clone()).date()) {
            d.snapshots += 1;
            d.bytes_added += s.manifest.summary.bytes_added;
            total += s.manifest.summary.bytes_added;
        }
    }
    Ok((days.into_values().collect(), total))
}
