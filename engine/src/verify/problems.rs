//! The problems of one verify run, keyed by kind and damaged object, each with the snapshots
//! and paths it affects.

use std::collections::BTreeMap;

use super::report::{Problem, ProblemKind, MAX_PATHS};
use crate::id::{BlobId, PackId, SnapshotId};

/// Key of a problem in the report: kind and the damaged object (a hex id, or for missing blobs
/// their kind).
pub(super) type ProblemKey = (ProblemKind, String);

#[derive(Default)]
pub(super) struct Problems {
    pub(super) map: BTreeMap<ProblemKey, Problem>,
}

impl Problems {
    pub(super) fn add(
        &mut self,
        kind: ProblemKind,
        object: String,
        pack: Option<PackId>,
        blob: Option<BlobId>,
        detail: String,
    ) -> ProblemKey {
        let key = (kind, object);
        self.map.entry(key.clone()).or_insert_with(|| Problem {
            kind,
            pack,
            blob,
            detail,
            count: 1,
            affected: BTreeMap::new(),
        });
        key
    }

    /// Counts one more missing blob of `kind` (grouped into one problem per kind).
    pub(super) fn missing(&mut self, kind: &str, id: BlobId) -> ProblemKey {
        let key = (ProblemKind::BlobMissing, kind.to_string());
        match self.map.get_mut(&key) {
            Some(problem) => problem.count += 1,
            None => {
                self.add(
                    ProblemKind::BlobMissing,
                    kind.to_string(),
                    None,
                    Some(id),
                    String::new(),
                );
            }
        }
        key
    }

    /// Final wording of grouped problems.
    pub(super) fn finish(mut self) -> Vec<Problem> {
        for ((kind, object), problem) in self.map.iter_mut() {
            if *kind == ProblemKind::BlobMissing {
                let first = problem.blob.map_or_else(|| "?".to_string(), |b| b.to_hex());
                problem.detail = format!(
                    "{} {object} blob(s) referenced by snapshots are in no pack (first: {first})",
                    problem.count,
                );
            }
        }
        self.map.into_values().collect()
    }

    pub(super) fn affect(&mut self, key: &ProblemKey, snapshot: SnapshotId, path: &str) {
        let problem = self
            .map
            .get_mut(key)
            .expect("problem added before it affects anything");
        let affected = problem.affected.entry(snapshot).or_default();
        if affected.paths.last().map(String::as_str) == Some(path) {
            return;
        }
        if affected.paths.len() < MAX_PATHS {
            affected.paths.push(path.to_string());
        } else {
            affected.more += 1;
        }
    }
}
