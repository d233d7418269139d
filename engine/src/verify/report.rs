//! The verification report: problems, each with what is damaged and what it affects.

use std::collections::BTreeMap;

use serde::Serialize;

/// Paths listed per snapshot and problem at most; the rest are counted.
pub const MAX_PATHS: usize = 100;

/// One damaged object and everything it affects.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    /// `pack_unreadable`, `pack_content`, `trailer_mismatch`, `blob_missing`, `blob_damaged`,
    /// `tree_damaged`, `snapshot_damaged`, `index_unreadable`, `key_damaged`,
    /// `index_segment_damaged`, `index_segment_mismatch`.
    pub kind: String,
    /// Pack id hex, if the damage is located in a pack.
    pub pack: Option<String>,
    /// Blob (chunk, tree, chunk list) id hex, if one blob is damaged.
    pub blob: Option<String>,
    pub detail: String,
    /// How many distinct blobs this problem covers (missing blobs are grouped per kind).
    pub count: u64,
    /// Snapshot id -> affected paths inside it (at most [`MAX_PATHS`]).
    pub affected: BTreeMap<String, AffectedPaths>,
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
    pub snapshots_whole_again: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Snapshot ids with at least one problem.
    pub fn damaged_snapshots(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .problems
            .iter()
            .flat_map(|p| p.affected.keys().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
