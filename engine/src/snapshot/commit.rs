//! Last phase of a snapshot, commit: what the run stored -> the manifest. Input: [`Stored`]
//! (the root tree and the run's counters, returned only once every pack is durable and
//! indexed) and the snapshot's [`Description`]. Output: the manifest, written to the
//! repository, and the [`SnapshotReport`].
//!
//! Invariant I3 (format-spec/01-repository.md): the manifest is written last, after every pack
//! it reaches is durable; [`Stored`] exists only after [`crate::write::session`] said so.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Counters, OwnDir, SnapshotReport};
use crate::error::Result;
use crate::format::manifest::{Manifest, SnapshotSummary, SourceProblem, SourceRecord};
use crate::format::OBJECT_VERSION;
use crate::id::{SnapshotId, TreeId};
use crate::repo::Repository;
use crate::write::PackerStats;

/// What the pipeline stored, every pack of it durable and indexed.
pub(super) struct Stored {
    pub root: TreeId,
    pub counters: Counters,
    pub problems: Vec<SourceProblem>,
    pub excluded: Vec<OwnDir>,
    pub packed: PackerStats,
}

/// How the snapshot is labelled: everything in its manifest but what the run stored.
pub(super) struct Description {
    pub time: jiff::Timestamp,
    pub host: String,
    pub records: Vec<SourceRecord>,
    pub tags: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub parent: Option<SnapshotId>,
    pub protect: bool,
}

/// Writes the manifest of a run that `started` then; returns the committed snapshot.
pub(super) fn commit(
    repo: &Repository,
    stored: Stored,
    description: Description,
    started: Instant,
) -> Result<SnapshotReport> {
    let Stored {
        root,
        counters,
        mut problems,
        excluded,
        packed,
    } = stored;
    let Description {
        time,
        host,
        records,
        tags,
        labels,
        parent,
        protect,
    } = description;
    let unrecorded = counters.problems_unrecorded.load(Ordering::Relaxed);
    if unrecorded > 0 {
        problems.push(SourceProblem {
            path: String::new(),
            reason: format!("{unrecorded} more problems were not recorded"),
        });
    }

    let summary = SnapshotSummary {
        files: counters.files.into_inner(),
        dirs: counters.dirs.into_inner(),
        files_unchanged: counters.files_unchanged.into_inner(),
        bytes_total: counters.bytes_total.into_inner(),
        bytes_read: counters.bytes_read.into_inner(),
        bytes_added: packed.bytes,
        chunks_total: counters.chunks_total.into_inner(),
        chunks_new: counters.chunks_new.into_inner(),
        trees_new: counters.trees_new.into_inner(),
        duration_secs: started.elapsed().as_secs_f64(),
        errors: problems,
    };
    let manifest = Manifest {
        version: OBJECT_VERSION,
        time: time.to_string(),
        host,
        paths: records.iter().map(|r| r.path.clone()).collect(),
        sources: records,
        tags,
        labels: labels.into_iter().collect(),
        tree: root.to_hex(),
        parent: parent.map(|p| p.to_hex()),
        complete: summary.errors.is_empty(),
        origin: None,
        replaces: None,
        edited: None,
        summary,
        program_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    // I3: the manifest is written last, after every pack it reaches is durable.
    let id = repo.write_snapshot(&manifest, protect)?;
    Ok(SnapshotReport {
        id,
        manifest,
        excluded,
    })
}
