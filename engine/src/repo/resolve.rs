//! Which snapshot a command means: `latest` (with filters), a full id or a unique prefix,
//! resolved among readable manifests and those that cannot be read, which are never skipped.

use super::{Repository, SnapshotFilter, SnapshotInfo};
use crate::error::{Error, Result};
use crate::id::{resolve_prefix, PrefixMatch, SnapshotId};

/// What a snapshot argument names.
#[derive(Debug)]
pub enum Resolved {
    Snapshot(Box<SnapshotInfo>),
    /// A snapshot whose manifest cannot be read (damaged, or an I/O error), with the error.
    Unreadable(SnapshotId, Error),
}

/// Why a manifest cannot be read, without the object name the error already starts with.
fn unreadable_reason(error: &Error) -> String {
    match error {
        Error::Corrupt { reason, .. } => reason.clone(),
        Error::Damaged { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

impl Repository {
    /// Resolves `latest` (newest matching `filter`), a full id or a unique prefix to a readable
    /// snapshot. A snapshot whose manifest cannot be read is an error
    /// ([`Error::DamagedSnapshot`]), never skipped: `latest` is not resolved at all while any
    /// manifest is unreadable, since it might be the newest.
    pub fn find_snapshot(&self, wanted: &str, filter: &SnapshotFilter) -> Result<SnapshotInfo> {
        match self.resolve_snapshot(wanted, filter)? {
            Resolved::Snapshot(s) => Ok(*s),
            Resolved::Unreadable(id, error) => Err(Error::DamagedSnapshot {
                name: id.to_hex(),
                reason: unreadable_reason(&error),
                latest: false,
            }),
        }
    }

    /// Like [`Self::find_snapshot`], but an id that names an unreadable manifest resolves to
    /// that id and its error (for `forget`, which needs no more than the id).
    pub fn resolve_snapshot(&self, wanted: &str, filter: &SnapshotFilter) -> Result<Resolved> {
        if wanted == "latest" {
            return self
                .snapshots_for_latest()?
                .into_iter()
                .rev()
                .find(|s| filter.matches(&s.manifest))
                .map(|s| Resolved::Snapshot(Box::new(s)))
                .ok_or_else(|| Error::NoSuchSnapshot {
                    wanted: wanted.into(),
                });
        }
        let (all, unreadable) = self.snapshots()?;
        Self::pick(all, unreadable, wanted)
    }

    /// Every snapshot that is not forgotten, oldest first, to choose the newest (of a group)
    /// from. Fails with [`Error::DamagedSnapshot`] when a manifest cannot be read: its time and
    /// labels are unknown, so choosing past it could silently pick an older snapshot.
    pub fn snapshots_for_latest(&self) -> Result<Vec<SnapshotInfo>> {
        let (all, unreadable) = self.snapshots()?;
        match unreadable.into_iter().next() {
            None => Ok(all),
            Some((name, error)) => Err(Error::DamagedSnapshot {
                name,
                reason: unreadable_reason(&error),
                latest: true,
            }),
        }
    }

    /// Like [`Self::find_snapshot`] with an id, among forgotten snapshots only (for
    /// `undelete`).
    pub fn find_forgotten(&self, wanted: &str) -> Result<SnapshotInfo> {
        let (mut all, _) = self.all_snapshots()?;
        all.retain(|s| s.forgotten);
        let found = match Self::pick(all, Vec::new(), wanted)? {
            Resolved::Snapshot(s) => *s,
            Resolved::Unreadable(..) => unreachable!("no unreadable candidates"),
        };
        // A replaced snapshot stays hidden with or without its marker (09-rotation.md §9.9):
        // bringing it back would show the same data twice, once with stale labels.
        if let Some(by) = found.replaced_by {
            return Err(Error::invalid(
                format!("snapshot {}", found.id.short()),
                format!(
                    "a label or tag edit replaced it with snapshot {} (same data, new labels or tags); use that one, or edit it back",
                    by.short()
                ),
            ));
        }
        Ok(found)
    }

    /// Resolves a full id or unique prefix among readable and unreadable snapshots.
    fn pick(
        all: Vec<SnapshotInfo>,
        unreadable: Vec<(String, Error)>,
        wanted: &str,
    ) -> Result<Resolved> {
        let mut unreadable: Vec<(SnapshotId, Error)> = unreadable
            .into_iter()
            .filter_map(|(name, e)| Some((SnapshotId::from_hex(&name)?, e)))
            .collect();
        let candidates = all
            .iter()
            .map(|s| s.id)
            .chain(unreadable.iter().map(|(id, _)| *id));
        match resolve_prefix(wanted, candidates, |id| id.to_hex()) {
            PrefixMatch::One(id) => Ok(match all.into_iter().find(|s| s.id == id) {
                Some(s) => Resolved::Snapshot(Box::new(s)),
                None => {
                    let i = unreadable
                        .iter()
                        .position(|(u, _)| *u == id)
                        .expect("resolved");
                    let (id, error) = unreadable.swap_remove(i);
                    Resolved::Unreadable(id, error)
                }
            }),
            PrefixMatch::Ambiguous => Err(Error::AmbiguousSnapshot {
                wanted: wanted.into(),
            }),
            PrefixMatch::None => Err(Error::NoSuchSnapshot {
                wanted: wanted.into(),
            }),
            PrefixMatch::Invalid => Err(Error::invalid(
                format!("snapshot {wanted:?}"),
                if !wanted.is_empty() && wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "an id prefix needs at least 4 hex digits; `vault list` shows the ids"
                } else {
                    "not a snapshot id: give `latest`, an id or at least its first 4 hex digits (`vault list` shows them)"
                },
            )),
        }
    }
}
