//! Snapshot state kept beside the immutable manifests: soft deletes (`forgotten/`), protection
//! (`protected/`), and the prune plans (`prune/`) that every index cache applies.
//!
//! Markers are empty-payload objects named by the snapshot id; their content (a JSON object
//! with the time they were made) is informational and never trusted.

use std::collections::HashSet;

use super::Repository;
use crate::error::{Error, Result};
use crate::format::plan::{self, Plan};
use crate::id::{PackId, SnapshotId};
use crate::storage::{is_not_found, ObjectKind};

fn marker_body() -> Vec<u8> {
    format!("{{\"time\":\"{}\"}}\n", jiff::Timestamp::now()).into_bytes()
}

impl Repository {
    fn marked(&self, kind: ObjectKind) -> Result<HashSet<SnapshotId>> {
        Ok(self
            .backend
            .list(kind)?
            .iter()
            .filter_map(|o| SnapshotId::from_hex(&o.name))
            .collect())
    }

    /// Snapshots soft-deleted by `vault forget` and not yet pruned.
    pub fn forgotten(&self) -> Result<HashSet<SnapshotId>> {
        self.marked(ObjectKind::Forgotten)
    }

    /// Snapshots no policy may forget.
    pub fn protected(&self) -> Result<HashSet<SnapshotId>> {
        self.marked(ObjectKind::Protected)
    }

    fn put_marker(&self, kind: ObjectKind, id: SnapshotId) -> Result<()> {
        match self.backend.write(kind, &id.to_hex(), &marker_body()) {
            Err(Error::AlreadyExists { .. }) => Ok(()),
            other => other,
        }
    }

    fn remove_marker(&self, kind: ObjectKind, id: SnapshotId) -> Result<bool> {
        match self.backend.delete(kind, &id.to_hex()) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Soft-deletes a snapshot: it disappears from `list` and every command until `undelete`,
    /// and its data stays until a prune. A protected snapshot is refused.
    pub fn forget_snapshot(&self, id: SnapshotId) -> Result<()> {
        if self.protected()?.contains(&id) {
            return Err(Error::Protected { id: id.to_hex() });
        }
        self.put_marker(ObjectKind::Forgotten, id)
    }

    /// Steps E3 and E4 of a label or tag edit (format-spec/09-rotation.md §9.9): forgets `old`,
    /// which a durable manifest now replaces, then removes its protection. Protection does not
    /// stop this: the replacement carries it (E1).
    pub(crate) fn mark_replaced(&self, old: SnapshotId) -> Result<()> {
        self.put_marker(ObjectKind::Forgotten, old)?;
        self.remove_marker(ObjectKind::Protected, old).map(|_| ())
    }

    /// Brings back a forgotten snapshot. Fails with [`Error::NoSuchSnapshot`] when it was never
    /// forgotten or a prune has already deleted it.
    pub fn undelete_snapshot(&self, id: SnapshotId) -> Result<()> {
        let was_forgotten = self.remove_marker(ObjectKind::Forgotten, id)?;
        // Checked after removing the marker: a prune deletes the manifest before the marker.
        let exists = match self.backend.size(ObjectKind::Snapshot, &id.to_hex()) {
            Ok(_) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(e),
        };
        if !was_forgotten || !exists {
            return Err(Error::NoSuchSnapshot {
                wanted: format!(
                    "{} among forgotten snapshots (a prune may have deleted it)",
                    id.to_hex()
                ),
            });
        }
        Ok(())
    }

    /// Protects or unprotects a snapshot.
    pub fn set_protected(&self, id: SnapshotId, protected: bool) -> Result<()> {
        if protected {
            self.put_marker(ObjectKind::Protected, id)
        } else {
            self.remove_marker(ObjectKind::Protected, id).map(|_| ())
        }
    }

    /// Deletes a forgotten snapshot for good: manifest first, then its marker (a marker without
    /// a manifest is ignored). Only prune calls this.
    pub(crate) fn delete_forgotten(&self, id: SnapshotId) -> Result<()> {
        match self.backend.delete(ObjectKind::Snapshot, &id.to_hex()) {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
        self.remove_marker(ObjectKind::Forgotten, id)?;
        self.remove_marker(ObjectKind::Protected, id).map(|_| ())
    }

    /// Every prune plan in the repository, with its id. An unreadable plan is an error: its
    /// packs must not be trusted, and nothing may be pruned until it is resolved.
    pub fn plans(&self) -> Result<Vec<([u8; 32], Plan)>> {
        let (good, bad) = self.read_plans()?;
        match bad.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(good),
        }
    }

    /// Every prune plan: the readable ones, and the names and errors of the others.
    fn read_plans(&self) -> Result<super::Listing<([u8; 32], Plan)>> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for info in self.backend.list(ObjectKind::Plan)? {
            let bytes = match self.backend.read(ObjectKind::Plan, &info.name) {
                Ok(bytes) => bytes,
                Err(e) if is_not_found(&e) => continue, // finished meanwhile
                Err(e) => return Err(e),
            };
            let id = *blake3::hash(&bytes).as_bytes();
            let object = format!("prune plan {}/prune/{}", self.backend.location(), info.name);
            if hex::encode(id) != info.name {
                bad.push((
                    info.name,
                    Error::Corrupt {
                        object,
                        reason: "content does not match its name; no prune can run until it is removed (its packs are then kept)".into(),
                    },
                ));
                continue;
            }
            match plan::decode(&self.encryption, &bytes) {
                Ok(plan) => good.push((id, plan)),
                Err(e) => bad.push((info.name, Error::damaged(object, e))),
            }
        }
        Ok((good, bad))
    }

    /// Writes a plan durably; returns its id.
    pub(crate) fn write_plan(&self, plan: &Plan) -> Result<[u8; 32]> {
        let (id, bytes) = plan::encode(&self.encryption, plan);
        match self
            .backend
            .write(ObjectKind::Plan, &hex::encode(id), &bytes)
        {
            Err(Error::AlreadyExists { .. }) => Ok(id),
            other => other.map(|()| id),
        }
    }

    pub(crate) fn delete_plan(&self, id: &[u8; 32]) -> Result<()> {
        match self.backend.delete(ObjectKind::Plan, &hex::encode(id)) {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other,
        }
    }

    /// Applies every prune plan this cache has not applied yet: blobs in condemned packs are
    /// no longer found, so nothing new is deduplicated against them. Returns whether the index
    /// must be synced fully (another host's plan), and the plans that could not be read. An
    /// unreadable plan is skipped here: prune refuses to run while it exists, so none of its
    /// packs is deleted, and reading or deduplicating against them stays safe.
    pub(crate) fn apply_plans(&self) -> Result<(bool, Vec<(String, Error)>)> {
        let mut full = false;
        let (plans, bad) = self.read_plans()?;
        for (id, plan) in &plans {
            if !self.index.plan_applied(id)? {
                let condemned: HashSet<PackId> = plan.condemned_packs().into_iter().collect();
                self.index.apply_plan(id, &condemned, None)?;
                full = true;
            }
        }
        // A pack is condemned only while a plan says so. One that outlived its plan (a prune
        // kept it because a copy reproduced it byte for byte) is forgotten by the cache, so that
        // the sync reads its trailer again like any new pack. The plans are listed again *after*
        // reading the condemned set: a plan applied by a concurrent prune after the listing
        // above is then seen, and its packs are not mistaken for leftovers.
        let condemned = self.index.condemned()?;
        if !condemned.is_empty() {
            let (plans, bad) = self.read_plans()?;
            if bad.is_empty() {
                let current: HashSet<PackId> = plans
                    .iter()
                    .flat_map(|(_, p)| p.condemned_packs())
                    .collect();
                let stale: Vec<PackId> = condemned
                    .into_iter()
                    .filter(|p| !current.contains(p))
                    .collect();
                self.index.drop_packs(&stale)?;
            }
        }
        Ok((full, bad))
    }

    /// Re-reads the prune plans and brings the index up to date with the packs. A snapshot
    /// calls this right after registering as a writer (format-spec/09-rotation.md, W1).
    pub fn refresh(&self) -> Result<()> {
        self.apply_plans()?;
        self.sync_index(false).map(|_| ())
    }

    /// Registers this process as using the repository's packs (W1), then refreshes the index
    /// (W2): from here on no prune deletes a pack this process may read. A reader (restore,
    /// dump) passes `required = false`: on a repository it may not write to, it reads without
    /// the guarantee rather than not at all.
    pub fn register(
        &self,
        what: &str,
        required: bool,
    ) -> Result<Option<super::writers::Registration>> {
        let registration = match super::writers::register_writer(&self.backend, what) {
            Ok(r) => Some(r),
            Err(e) if required => return Err(e),
            Err(_) => None,
        };
        self.refresh()?;
        Ok(registration)
    }
}
