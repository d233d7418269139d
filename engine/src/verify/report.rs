//! The verification report: problems, each with what is damaged and what it affects.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::id::{BlobId, PackId, SnapshotId};

/// Paths listed per snapshot and problem at most; the rest are counted.
pub const MAX_PATHS: usize = 100;

/// What is wrong. Serializes as the snake_case name (`blob_damaged`), which is also its
/// [`Display`](fmt::Display) form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A pack's trailer or bytes could not be read or decoded.
    PackUnreadable,
    /// A pack's bytes do not hash to its name, though every blob in it checks out.
    PackContent,
    /// The index and a pack's trailer disagree on where a blob is.
    TrailerMismatch,
    /// Blobs a snapshot references are in no pack (grouped per blob kind).
    BlobMissing,
    /// A blob's bytes fail their check.
    BlobDamaged,
    /// A tree cannot be read, or nests too deep.
    TreeDamaged,
    /// A snapshot manifest cannot be read.
    SnapshotDamaged,
    /// The index cache cannot be read.
    IndexUnreadable,
    /// A key file cannot be read.
    KeyDamaged,
    /// An index segment cannot be read or decoded.
    IndexSegmentDamaged,
    /// An index segment disagrees with a pack's trailer.
    IndexSegmentMismatch,
}

impl ProblemKind {
    /// The snake_case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::PackUnreadable => "pack_unreadable",
            ProblemKind::PackContent => "pack_content",
            ProblemKind::TrailerMismatch => "trailer_mismatch",
            ProblemKind::BlobMissing => "blob_missing",
            ProblemKind::BlobDamaged => "blob_damaged",
            ProblemKind::TreeDamaged => "tree_damaged",
            ProblemKind::SnapshotDamaged => "snapshot_damaged",
            ProblemKind::IndexUnreadable => "index_unreadable",
            ProblemKind::KeyDamaged => "key_damaged",
            ProblemKind::IndexSegmentDamaged => "index_segment_damaged",
            ProblemKind::IndexSegmentMismatch => "index_segment_mismatch",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One damaged object and everything it affects.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The pack, if the damage is located in a pack.
    pub pack: Option<PackId>,
    /// The blob (chunk, tree, chunk list), if one blob is damaged; for `blob_missing`, the first
    /// missing one.
    pub blob: Option<BlobId>,
    pub detail: String,
    /// How many distinct blobs this problem covers (missing blobs are grouped per kind).
    pub count: u64,
    /// Snapshot -> affected paths inside it (at most [`MAX_PATHS`]).
    pub affected: BTreeMap<SnapshotId, AffectedPaths>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AffectedPaths {
    pub paths: Vec<String>,
    /// Affected paths beyond those listed.
    pub more: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub snapshots: u64,
    pub trees: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub blobs_read: u64,
    pub bytes_read: u64,
    pub duration_secs: f64,
    pub problems: Vec<Problem>,
    /// Damaged copies this run removed from the index (the next snapshot of data that still
    /// exists stores a good copy).
    pub blobs_unindexed: u64,
    /// Damaged copies found in packs whose blob has a good copy in use elsewhere.
    pub damaged_copies_superseded: u64,
    /// Blobs found damaged by an earlier run that have a good copy again.
    pub healed_blobs: u64,
    /// Damaged copies an earlier run recorded whose pack now reads whole (put back from a
    /// copy of the repository, say) or is gone: the record is dropped and, for a whole pack,
    /// its blobs are found in it again.
    pub damage_records_cleared: u64,
    /// Snapshots that reach a healed blob and have no problem left.
    pub snapshots_whole_again: Vec<SnapshotId>,
}

/// What `vault verify --json` prints: the verdict first, then the report.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutcome<'a> {
    /// No problem found.
    pub clean: bool,
    /// [`VerifyReport::damaged_snapshots`].
    pub damaged_snapshots: Vec<SnapshotId>,
    pub report: &'a VerifyReport,
}

impl VerifyReport {
    /// The report with its verdict, as `--json` prints it.
    pub fn outcome(&self) -> VerifyOutcome<'_> {
        VerifyOutcome {
            clean: self.is_clean(),
            damaged_snapshots: self.damaged_snapshots(),
            report: self,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Snapshots with at least one problem, in id order.
    pub fn damaged_snapshots(&self) -> Vec<SnapshotId> {
        let mut out: Vec<SnapshotId> = self
            .problems
            .iter()
            .flat_map(|p| p.affected.keys().copied())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
