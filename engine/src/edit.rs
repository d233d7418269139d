//! `vault label` and `vault tag`: changing a snapshot's labels and tags after it was taken.
//!
//! Manifests are immutable and named by their digest, so an edit writes a **new manifest**: the
//! old one with other `tags`/`labels`, `replaces` = the old snapshot's id, `edited` = now, and
//! `origin` = the old one's origin (or, if it has none, this repository's id and its id), so
//! that `vault copy` still knows where the content was first taken. Everything else — time,
//! host, paths, tree, parent, summary — is unchanged: retention sees the same snapshot (the
//! same time, the same group unless the policy groups by a label the edit changed) and no blob
//! is written. Then the old snapshot is forgotten ([`Repository::replace_snapshot`], steps
//! E1–E4 of format-spec/09-rotation.md §9.9); the next prune deletes its manifest.
//!
//! Input: a snapshot (not forgotten) and [`EditOptions`]. Output: an [`EditReport`]. An edit
//! that would change nothing writes nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::manifest::{label_key_problem, Manifest};
use crate::id::SnapshotId;
use crate::repo::{Repository, SnapshotInfo};

/// What to change. Removals apply before additions; a tag or label key may not be both added
/// and removed. Adding a label whose key exists replaces its value.
#[derive(Debug, Clone, Default)]
pub struct EditOptions {
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub add_labels: Vec<(String, String)>,
    pub remove_labels: Vec<String>,
}

/// What an edit did.
#[derive(Debug, Clone, Serialize)]
pub struct EditReport {
    /// The snapshot that was edited.
    pub snapshot: SnapshotId,
    /// The snapshot that replaces it; `None` when nothing changed (nothing was written).
    pub replaced_by: Option<SnapshotId>,
    /// The tags and labels the snapshot has now.
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl EditOptions {
    /// Checks the edit on its own: label keys as `vault snapshot --label` accepts them, and
    /// nothing both added and removed.
    pub fn validate(&self) -> Result<()> {
        let keys = self
            .add_labels
            .iter()
            .map(|(k, _)| k)
            .chain(&self.remove_labels);
        for key in keys {
            if let Some(problem) = label_key_problem(key) {
                return Err(Error::invalid(format!("label {key:?}"), problem));
            }
        }
        if let Some(key) = self
            .add_labels
            .iter()
            .find(|(k, _)| self.remove_labels.contains(k))
        {
            return Err(Error::invalid(
                format!("label {:?}", key.0),
                "both added and removed; give one of --add and --remove",
            ));
        }
        if let Some(tag) = self.add_tags.iter().find(|t| self.remove_tags.contains(t)) {
            return Err(Error::invalid(
                format!("tag {tag:?}"),
                "both added and removed; give one of --add and --remove",
            ));
        }
        if self.add_tags.is_empty()
            && self.remove_tags.is_empty()
            && self.add_labels.is_empty()
            && self.remove_labels.is_empty()
        {
            return Err(Error::invalid(
                "edit",
                "nothing to change: give --add or --remove",
            ));
        }
        Ok(())
    }

    /// The tags and labels of `manifest` after the edit.
    pub fn apply(&self, manifest: &Manifest) -> (Vec<String>, BTreeMap<String, String>) {
        let mut tags: Vec<String> = manifest
            .tags
            .iter()
            .filter(|t| !self.remove_tags.contains(t))
            .cloned()
            .collect();
        for tag in &self.add_tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        let mut labels = manifest.labels.clone();
        for key in &self.remove_labels {
            labels.remove(key);
        }
        for (key, value) in &self.add_labels {
            labels.insert(key.clone(), value.clone());
        }
        (tags, labels)
    }
}

/// Edits the tags and labels of `snapshot` (found among the snapshots that are not forgotten).
/// A forgotten or replaced snapshot is refused: its edit would bring it back.
pub fn run(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    options: &EditOptions,
) -> Result<EditReport> {
    options.validate()?;
    if snapshot.forgotten {
        let reason = match snapshot.replaced_by {
            Some(by) => format!(
                "replaced by snapshot {} (an earlier edit); edit that one",
                by.short()
            ),
            None => "it is forgotten; `vault undelete` it first".to_string(),
        };
        return Err(Error::invalid(
            format!("snapshot {}", snapshot.id.short()),
            reason,
        ));
    }
    let (tags, labels) = options.apply(&snapshot.manifest);
    let mut report = EditReport {
        snapshot: snapshot.id,
        replaced_by: None,
        tags,
        labels,
    };
    if report.tags == snapshot.manifest.tags && report.labels == snapshot.manifest.labels {
        return Ok(report);
    }
    let manifest = Manifest {
        tags: report.tags.clone(),
        labels: report.labels.clone(),
        origin: Some(repo.origin_of(snapshot)),
        replaces: Some(snapshot.id.to_hex()),
        edited: Some(edit_time(&snapshot.manifest).to_string()),
        ..snapshot.manifest.clone()
    };
    report.replaced_by = Some(repo.replace_snapshot(snapshot.id, &manifest, snapshot.protected)?);
    Ok(report)
}

/// Now, or just after the previous edit if the clock says otherwise: edits of one snapshot
/// have increasing times, which is what `vault copy` orders them by.
fn edit_time(previous: &Manifest) -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    match previous
        .edited
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    {
        Some(before) if before >= now => before + jiff::SignedDuration::from_millis(1),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_value(serde_json::json!({
            "version": 4, "time": "2026-01-01T00:00:00Z", "host": "h", "paths": ["/a"],
            "sources": [], "tags": ["daily", "db"], "labels": {"app": "web", "env": "test"},
            "tree": "00".repeat(32), "complete": true, "program_version": "0",
            "summary": {"files": 0, "dirs": 0, "files_unchanged": 0, "bytes_total": 0,
                "bytes_read": 0, "bytes_added": 0, "chunks_total": 0, "chunks_new": 0,
                "trees_new": 0, "duration_secs": 0.0, "errors": []}
        }))
        .unwrap()
    }

    #[test]
    fn removals_then_additions_keeping_tag_order() {
        let options = EditOptions {
            add_tags: vec!["keep".into(), "db".into()],
            remove_tags: vec!["daily".into(), "absent".into()],
            add_labels: vec![("env".into(), "prod".into()), ("new".into(), "".into())],
            remove_labels: vec!["app".into()],
        };
        options.validate().unwrap();
        let (tags, labels) = options.apply(&manifest());
        assert_eq!(tags, ["db", "keep"]);
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            [("env".into(), "prod".into()), ("new".into(), String::new())]
        );
    }

    #[test]
    fn an_edit_that_changes_nothing_applies_to_the_same_values() {
        let m = manifest();
        let options = EditOptions {
            add_tags: vec!["db".into()],
            remove_labels: vec!["absent".into()],
            add_labels: vec![("app".into(), "web".into())],
            ..EditOptions::default()
        };
        assert_eq!(options.apply(&m), (m.tags.clone(), m.labels.clone()));
    }

    #[test]
    fn label_keys_are_checked_like_snapshot_labels_and_conflicts_refused() {
        let bad = |options: EditOptions| options.validate().unwrap_err().to_string();
        assert!(bad(EditOptions {
            add_labels: vec![(String::new(), "x".into())],
            ..EditOptions::default()
        })
        .contains("cannot be empty"));
        assert!(bad(EditOptions {
            remove_labels: vec!["a=b".into()],
            ..EditOptions::default()
        })
        .contains("cannot contain `=`"));
        assert!(bad(EditOptions {
            add_labels: vec![("a".into(), "1".into())],
            remove_labels: vec!["a".into()],
            ..EditOptions::default()
        })
        .contains("both added and removed"));
        assert!(bad(EditOptions {
            add_tags: vec!["t".into()],
            remove_tags: vec!["t".into()],
            ..EditOptions::default()
        })
        .contains("both added and removed"));
        assert!(bad(EditOptions::default()).contains("nothing to change"));
    }

    #[test]
    fn edit_times_increase_even_when_the_clock_goes_back() {
        let mut m = manifest();
        m.edited = Some("2999-01-01T00:00:00Z".into());
        let next = edit_time(&m);
        assert!(next > "2999-01-01T00:00:00Z".parse().unwrap());
        m.edited = None;
        assert!(edit_time(&m) <= jiff::Timestamp::now());
    }
}
