//! `vault verify`: prove that snapshots can be restored, and say precisely what cannot.
//!
//! Structural mode reads pack trailers, snapshot manifests, trees and chunk lists, and checks
//! that every blob a snapshot reaches is indexed in an existing pack. `--read-data` also reads
//! every selected pack whole and checks every blob's digest. Every problem is reported with the
//! snapshots and paths it affects ([`report`]). Verify only reads the repository (the index cache
//! is brought up to date as on every open), so it runs safely beside a snapshot.

mod packs;
mod problems;
pub mod read_data;
pub mod report;
mod walk;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::error::Result;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::progress::Progress;
use crate::repo::{Repository, SnapshotInfo};
use packs::Packs;
use problems::{ProblemKey, Problems};
pub use report::{AffectedPaths, Problem, ProblemKind, VerifyOutcome, VerifyReport};

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

/// The orchestrator: each phase adds to the problems, and the walk at the end attributes them
/// to the snapshots and paths they affect.
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
    let whole_repository = options.snapshot.is_none();

    let snapshots = select_snapshots(repo, options, &mut problems)?;
    report.snapshots = snapshots.len() as u64;
    if whole_repository {
        // A damaged key file is lost as a way in (its password opens nothing any more).
        for (name, error) in repo.damaged_keys()? {
            problems.add(ProblemKind::KeyDamaged, name, None, None, error.to_string());
        }
    }
    let packs = packs::read_trailers(repo)?;
    report.packs = packs.listed.len() as u64;
    packs::check_trailers(repo, &packs, &mut problems)?;
    if whole_repository {
        packs::check_segments(repo, &packs, &mut problems)?;
    }

    // Packs in which an earlier run found damaged copies are read by every verify, so that a
    // record the repository no longer supports (the pack was put back whole) does not outlive
    // it.
    let recorded: HashSet<PackId> = repo
        .index()
        .damaged()?
        .into_iter()
        .map(|(_, pack)| pack)
        .collect();
    let plan = plan_reads(repo, options.read_data, &packs, &recorded, started)?;
    let mut bad: HashMap<BlobId, ProblemKey> = HashMap::new();
    let read = read_packs(
        repo,
        &plan,
        &recorded,
        progress,
        &mut report,
        &mut problems,
        &mut bad,
    )?;
    settle_damage_records(repo, &packs, &recorded, read, &mut report)?;
    let healed = healed_blobs(repo, &bad)?;
    report.healed_blobs = healed.len() as u64;
    bad_in_unreadable_packs(repo, &problems, &mut bad)?;

    // Every snapshot's trees: attribute every bad or missing blob to the paths reaching it.
    let mut walker = walk::Walker::new(repo, bad, problems)?;
    for snapshot in &snapshots {
        walker.walk_snapshot(snapshot);
    }
    let (problems, trees) = walker.finish();
    report.trees = trees;
    report.problems = problems.finish();
    report.snapshots_whole_again = whole_again(repo, &snapshots, &report)?;
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The snapshots to check: the one asked for, or every readable one (an unreadable one is a
/// problem of its own).
fn select_snapshots(
    repo: &Repository,
    options: &VerifyOptions,
    problems: &mut Problems,
) -> Result<Vec<SnapshotInfo>> {
    if let Some(one) = &options.snapshot {
        return Ok(vec![one.clone()]);
    }
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
    Ok(good)
}

/// Which packs `--read-data` reads, and until when.
struct ReadPlan {
    packs: Vec<PackId>,
    /// Their total size.
    bytes: u64,
    /// A time budget's end: no new pack is started after it (one is always read).
    deadline: Option<Instant>,
}

/// The packs `read_data` selects (for a budget, oldest-verified first), plus every pack with a
/// damage record.
fn plan_reads(
    repo: &Repository,
    read_data: ReadData,
    packs: &Packs,
    recorded: &HashSet<PackId>,
    started: Instant,
) -> Result<ReadPlan> {
    let seed = started.elapsed().as_nanos() as u64 ^ std::process::id() as u64;
    let mut to_read: Vec<PackId> = packs
        .listed
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| selected(id, read_data, seed))
        .collect();
    let deadline = match read_data {
        ReadData::Budget { bytes, time } => {
            // Oldest-verified first; never-verified packs count as verified at time 0.
            let times = repo.index().pack_verified_times()?;
            let mut order: Vec<&(PackId, u64)> = packs.listed.iter().collect();
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
    for (id, _) in &packs.listed {
        if recorded.contains(id) && !to_read.contains(id) {
            to_read.push(*id);
        }
    }
    let bytes = packs
        .listed
        .iter()
        .filter(|(id, _)| to_read.contains(id))
        .map(|(_, s)| s)
        .sum();
    Ok(ReadPlan {
        packs: to_read,
        bytes,
        deadline,
    })
}

/// What reading the packs found beyond problems, for the damage records.
#[derive(Default)]
struct PacksRead {
    /// Packs read (damaged or not): they count as verified now.
    verified: Vec<PackId>,
    /// Packs with a damage record that read whole now.
    whole_again: Vec<PackId>,
    /// Damaged copies the index still uses: (blob, pack).
    damaged_copies: Vec<(BlobId, PackId)>,
}

/// `--read-data`: every planned pack whole, every blob's digest. Damaged blobs the index uses
/// become problems and enter `bad`.
fn read_packs(
    repo: &Repository,
    plan: &ReadPlan,
    recorded: &HashSet<PackId>,
    progress: &dyn Progress,
    report: &mut VerifyReport,
    problems: &mut Problems,
    bad: &mut HashMap<BlobId, ProblemKey>,
) -> Result<PacksRead> {
    let mut read = PacksRead::default();
    if plan.packs.is_empty() {
        return Ok(read);
    }
    progress.total(plan.packs.len() as u64, plan.bytes);
    for batch in plan.packs.chunks(2) {
        if plan.deadline.is_some_and(|d| Instant::now() >= d) && report.packs_read > 0 {
            break;
        }
        let base = read_data::RepositoryBases(repo);
        for check in
            read_data::check_packs(repo.backend().as_ref(), repo.encryption(), &base, batch)
        {
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
            read.verified.push(check.pack);
            if check.damaged.is_empty() && recorded.contains(&check.pack) {
                read.whole_again.push(check.pack);
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
                read.damaged_copies.push((blob, check.pack));
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
    Ok(read)
}

/// Records what the read found in the index: packs verified, damaged copies out of the index
/// (self-healing: the next snapshot that meets the data stores a good copy), and damage
/// records dropped for packs that read whole again or are gone.
fn settle_damage_records(
    repo: &Repository,
    packs: &Packs,
    recorded: &HashSet<PackId>,
    read: PacksRead,
    report: &mut VerifyReport,
) -> Result<()> {
    // Nanoseconds: runs seconds apart (tests, retries) must still order their packs.
    let now = jiff::Timestamp::now().as_nanosecond().max(0) as u64;
    repo.index().record_verified(&read.verified, now)?;
    // The walk still attributes the damaged copies (they are in `bad`).
    report.blobs_unindexed = repo.index().mark_damaged(&read.damaged_copies)?;
    let listed_packs: HashMap<PackId, u64> = packs.listed.iter().copied().collect();
    let trailer_of = packs.readable();
    for pack in recorded {
        let restored = match (listed_packs.get(pack), trailer_of.get(pack)) {
            (Some(size), Some(entries)) if read.whole_again.contains(pack) => {
                Some((*size, (*entries).clone()))
            }
            (None, _) => None,
            _ => continue, // still damaged, or unreadable: the record stays
        };
        report.damage_records_cleared += repo.index().clear_damage_record(*pack, restored)?;
    }
    Ok(())
}

/// Copies found damaged by earlier runs that have a good copy again.
fn healed_blobs(repo: &Repository, bad: &HashMap<BlobId, ProblemKey>) -> Result<HashSet<BlobId>> {
    let reader = repo.index().reader()?;
    let mut healed = HashSet::new();
    for (blob, _) in repo.index().damaged()? {
        if !bad.contains_key(&blob) && reader.contains(&blob)? {
            healed.insert(blob);
        }
    }
    Ok(healed)
}

/// Blobs of unreadable packs are bad wherever the index still places them there.
fn bad_in_unreadable_packs(
    repo: &Repository,
    problems: &Problems,
    bad: &mut HashMap<BlobId, ProblemKey>,
) -> Result<()> {
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
    Ok(())
}

/// Whole *again*: the checked snapshots an earlier verify found damaged that are whole now
/// (the index remembers which were damaged).
fn whole_again(
    repo: &Repository,
    snapshots: &[SnapshotInfo],
    report: &VerifyReport,
) -> Result<Vec<SnapshotId>> {
    let damaged = report.damaged_snapshots();
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
    Ok(whole)
}
