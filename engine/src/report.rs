//! Reports as JSON documents: what `--json` prints, for every command.
//!
//! Every report serializes itself (serde; ids as 64 hex digits) and implements [`JsonReport`],
//! which prints it as one JSON object with a top-level `schema_version` ([`SCHEMA_VERSION`]).
//! The operations' own reports ([`crate::verify::VerifyReport`], [`crate::prune::PruneReport`],
//! ...) live with their operations; this module holds the reports of commands that are not an
//! operation of their own (list, init, keys, index rebuild, protect, unlock) and the envelopes
//! that wrap an operation's report with what the command adds (the snapshot id and target of a
//! restore). The README section "JSON output" documents every field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::format::config::{ChunkerConfig, Compression};
use crate::format::manifest::{Manifest, SnapshotSummary, SourceRecord};
use crate::id::{KeyId, RepositoryId, SnapshotId};
use crate::keys::keyfile::KdfParams;
use crate::restore::RestoreReport;

/// The version of every `--json` document. It changes only when a field changes its meaning or
/// type or goes away; new fields come without a new version.
pub const SCHEMA_VERSION: u32 = 1;

/// A report that `--json` prints.
pub trait JsonReport: Serialize {
    /// The report as a pretty-printed JSON object whose first field is `schema_version`.
    fn to_json(&self) -> String
    where
        Self: Sized,
    {
        let document = Document {
            schema_version: SCHEMA_VERSION,
            report: self,
        };
        serde_json::to_string_pretty(&document).expect("reports serialize")
    }

    /// The same object on one line (JSON lines, as `vault daemon --json` writes them).
    fn to_json_line(&self) -> String
    where
        Self: Sized,
    {
        let document = Document {
            schema_version: SCHEMA_VERSION,
            report: self,
        };
        serde_json::to_string(&document).expect("reports serialize")
    }
}

/// A report with its schema version in front of its own fields.
#[derive(Serialize)]
struct Document<'a, T> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a T,
}

/// One snapshot as `vault list` shows it (and `vault snapshot` after taking it).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotEntry {
    pub protected: bool,
    pub forgotten: bool,
    pub id: SnapshotId,
    /// The first 16 hex digits of `id`, as human output shows it.
    pub short_id: String,
    pub time: String,
    pub host: String,
    pub paths: Vec<String>,
    pub sources: Vec<SourceRecord>,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Hex id of the root tree.
    pub tree: String,
    /// Hex id of the snapshot this one compared its files with; `null` for none.
    pub parent: Option<String>,
    /// `<repository id>/<snapshot id>` where the content was first taken (set by `vault copy`
    /// and by label and tag edits); `null` for a snapshot taken here and never edited.
    pub origin: Option<String>,
    /// Hex id of the snapshot this one replaced (a label or tag edit); `null` for none.
    pub replaces: Option<String>,
    /// When the tags and labels were last edited; `null` if never.
    pub edited: Option<String>,
    /// The snapshot that replaces this one (shown with `list --forgotten`); `null` for none.
    pub replaced_by: Option<SnapshotId>,
    pub complete: bool,
    pub summary: SnapshotSummary,
    pub program_version: String,
}

impl SnapshotEntry {
    pub fn new(id: SnapshotId, manifest: &Manifest, protected: bool, forgotten: bool) -> Self {
        SnapshotEntry {
            protected,
            forgotten,
            id,
            short_id: id.short(),
            time: manifest.time.clone(),
            host: manifest.host.clone(),
            paths: manifest.paths.clone(),
            sources: manifest.sources.clone(),
            tags: manifest.tags.clone(),
            labels: manifest.labels.clone(),
            tree: manifest.tree.clone(),
            parent: manifest.parent.clone(),
            origin: manifest.origin.clone(),
            replaces: manifest.replaces.clone(),
            edited: manifest.edited.clone(),
            replaced_by: None,
            complete: manifest.complete,
            summary: manifest.summary.clone(),
            program_version: manifest.program_version.clone(),
        }
    }
}

/// `vault list`: the snapshots shown, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    pub snapshots: Vec<SnapshotEntry>,
}
impl JsonReport for ListReport {}

/// `vault snapshot`: the new snapshot, and vault's own directories left out of it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotTaken {
    #[serde(flatten)]
    pub snapshot: SnapshotEntry,
    pub excluded: Vec<ExcludedDir>,
}
impl JsonReport for SnapshotTaken {}

/// A directory of vault's own (`cache`, `repository`) found inside a source.
#[derive(Debug, Clone, Serialize)]
pub struct ExcludedDir {
    pub what: String,
    pub path: String,
}

impl SnapshotTaken {
    pub fn new(report: &crate::snapshot::SnapshotReport, protected: bool) -> Self {
        SnapshotTaken {
            snapshot: SnapshotEntry::new(report.id, &report.manifest, protected, false),
            excluded: report
                .excluded
                .iter()
                .map(|dir| ExcludedDir {
                    what: dir.what.to_string(),
                    path: dir.path.to_string_lossy().into_owned(),
                })
                .collect(),
        }
    }
}

/// `vault init`: the repository created.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub id: RepositoryId,
    pub location: String,
    pub chunker: ChunkerConfig,
    pub compression: Compression,
    pub encrypted: bool,
}
impl JsonReport for InitReport {}

/// `vault key list`: the key files of the repository.
#[derive(Debug, Clone, Serialize)]
pub struct KeyListReport {
    pub keys: Vec<KeyEntry>,
}
impl JsonReport for KeyListReport {}

/// One key file.
#[derive(Debug, Clone, Serialize)]
pub struct KeyEntry {
    /// BLAKE3 of the key file (its name in `keys/`).
    pub id: KeyId,
    pub created: String,
    pub host: String,
    /// Whether this key opened the repository in this run.
    pub current: bool,
    pub kdf: KdfEntry,
}

/// A key's password hashing: always Argon2id, with its costs.
#[derive(Debug, Clone, Serialize)]
pub struct KdfEntry {
    pub algorithm: &'static str,
    pub memory_kib: u32,
    pub passes: u32,
    pub parallelism: u32,
}

impl From<&crate::repo::keys::KeyInfo> for KeyEntry {
    fn from(key: &crate::repo::keys::KeyInfo) -> Self {
        let KdfParams {
            memory_kib,
            passes,
            parallelism,
        } = key.kdf;
        KeyEntry {
            id: key.id,
            created: key.created.clone(),
            host: key.host.clone(),
            current: key.current,
            kdf: KdfEntry {
                algorithm: "argon2id",
                memory_kib,
                passes,
                parallelism,
            },
        }
    }
}

/// `vault key add|remove|passwd`: the key file added, removed, or written for the new password.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    pub id: String,
}
impl JsonReport for KeyReport {}

/// `vault index rebuild`.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// Packs whose blobs are in the index now.
    pub packs: u64,
    /// Blobs in the index now.
    pub blobs: u64,
    pub unreadable: Vec<UnreadablePack>,
    pub segments_unreadable: Vec<UnreadableSegment>,
}
impl JsonReport for RebuildReport {}

/// A pack whose trailer could not be read (named as listed: the name may be no pack id).
#[derive(Debug, Clone, Serialize)]
pub struct UnreadablePack {
    pub pack: String,
    pub reason: String,
}

/// An index segment that could not be read (its packs were read from their trailers).
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableSegment {
    pub segment: String,
    pub reason: String,
}

impl RebuildReport {
    pub fn new(sync: &crate::index::rebuild::SyncReport, blobs: u64) -> Self {
        RebuildReport {
            packs: sync.packs_added,
            blobs,
            unreadable: sync
                .unreadable
                .iter()
                .map(|(pack, reason)| UnreadablePack {
                    pack: pack.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            segments_unreadable: sync
                .segments_unreadable
                .iter()
                .map(|(segment, reason)| UnreadableSegment {
                    segment: segment.clone(),
                    reason: reason.clone(),
                })
                .collect(),
        }
    }
}

/// `vault protect`, `unprotect`, `undelete`: the snapshots changed, under the verb's name
/// (`{"protected": [...]}`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkReport {
    Protected(Vec<SnapshotId>),
    Unprotected(Vec<SnapshotId>),
    Undeleted(Vec<SnapshotId>),
}
impl JsonReport for MarkReport {}

/// `vault unlock`: the locks and registrations removed and kept, each described.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnlockReport {
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}
impl JsonReport for UnlockReport {}

impl From<crate::repo::writers::UnlockReport> for UnlockReport {
    /// Each holder as its one-line description.
    fn from(done: crate::repo::writers::UnlockReport) -> Self {
        let describe = |holders: Vec<crate::repo::writers::Holder>| {
            holders.iter().map(|h| h.describe()).collect()
        };
        UnlockReport {
            removed: describe(done.removed),
            kept: describe(done.kept),
        }
    }
}

/// One restore of `vault restore`: the snapshot, the target, and its report or its error.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreRun {
    pub snapshot: SnapshotId,
    pub target: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<RestoreReport>,
    /// Why a restore of a bulk run failed (the others go on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
impl JsonReport for RestoreRun {}

/// `vault restore` of several snapshots (or `--latest-per`): one run per restore.
#[derive(Debug, Clone, Serialize)]
pub struct BulkRestoreReport {
    pub restores: Vec<RestoreRun>,
}
impl JsonReport for BulkRestoreReport {}

impl JsonReport for crate::verify::VerifyOutcome<'_> {}
impl JsonReport for crate::forget::ForgetReport {}
impl JsonReport for crate::prune::PruneReport {}
impl JsonReport for crate::copy::CopyReport {}
impl JsonReport for crate::edit::EditReport {}
impl JsonReport for crate::ops::check::ConfigCheckReport {}
impl JsonReport for crate::ops::RunReport {}
impl JsonReport for crate::ops::StatusReport {}
impl JsonReport for crate::ops::schedule::ScheduleReport {}
impl JsonReport for crate::ops::report::AppRunReport {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_comes_first() {
        let report = UnlockReport {
            removed: vec!["a".into()],
            kept: Vec::new(),
        };
        let json = report.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["schema_version"], SCHEMA_VERSION);
        assert_eq!(value["removed"][0], "a");
        assert!(json
            .trim_start_matches(['{', '\n', ' '])
            .starts_with("\"schema_version\""));
    }

    #[test]
    fn marks_are_named_by_their_verb() {
        let id = SnapshotId([7; 32]);
        let value: serde_json::Value =
            serde_json::from_str(&MarkReport::Undeleted(vec![id]).to_json()).unwrap();
        assert_eq!(value["undeleted"][0], id.to_hex());
        assert_eq!(value["schema_version"], 1);
    }
}
