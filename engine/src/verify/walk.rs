//! The tree walk: every snapshot's trees and chunk lists, every blob they reference checked
//! against the index and the blobs found bad, and every problem attributed to the paths that
//! reach it. A subtree or chunk list found clean is not walked again.

use std::collections::{HashMap, HashSet};

use super::problems::{ProblemKey, Problems};
use super::report::ProblemKind;
use crate::error::Result;
use crate::format::tree::{Content, EntryKind};
use crate::id::{BlobId, ListId, PackId, SnapshotId, TreeId};
use crate::index::IndexReader;
use crate::limits::MAX_TREE_DEPTH;
use crate::repo::{Repository, SnapshotInfo};

/// Walks snapshot trees, attributing bad blobs to the paths that reach them.
pub(super) struct Walker<'a> {
    repo: &'a Repository,
    reader: IndexReader<'a>,
    /// Blobs known to be bad -> the problem they belong to.
    bad: HashMap<BlobId, ProblemKey>,
    /// Trees whose whole subtree was checked and found clean.
    clean: HashSet<TreeId>,
    problems: Problems,
    trees: u64,
    /// Chunk lists (with the size and count their reference claims) already found whole.
    clean_lists: HashSet<(ListId, u64, u32)>,
}

impl<'a> Walker<'a> {
    /// A walk that knows the blobs already found bad, adding to `problems`.
    pub(super) fn new(
        repo: &'a Repository,
        bad: HashMap<BlobId, ProblemKey>,
        problems: Problems,
    ) -> Result<Self> {
        Ok(Walker {
            repo,
            reader: repo.index().reader()?,
            bad,
            clean: HashSet::new(),
            problems,
            trees: 0,
            clean_lists: HashSet::new(),
        })
    }

    /// Walks one snapshot from its root tree.
    pub(super) fn walk_snapshot(&mut self, snapshot: &SnapshotInfo) {
        let root = snapshot.manifest.root().expect("validated at decode");
        self.walk_tree(root, "", snapshot.id, 0);
    }

    /// The problems, with what they affect, and the number of trees read.
    pub(super) fn finish(self) -> (Problems, u64) {
        (self.problems, self.trees)
    }

    /// The problem a referenced blob has, if any: known bad, or not in the index.
    /// A delta chunk has its base's problem too: it cannot be read without its base.
    fn blob_problem(&mut self, id: BlobId, kind: &str) -> Option<ProblemKey> {
        if let Some(key) = self.bad.get(&id) {
            return Some(key.clone());
        }
        match self.reader.lookup(&id) {
            Ok(Some(loc)) => match loc.encoding.base() {
                // Not followed further: a base is never a delta (reading one says so).
                Some(base) => {
                    let key = match self.bad.get(&base) {
                        Some(key) => key.clone(),
                        None if matches!(self.reader.contains(&base), Ok(false)) => {
                            let key = self.problems.missing("chunk", base);
                            self.bad.insert(base, key.clone());
                            key
                        }
                        None => return None,
                    };
                    self.bad.insert(id, key.clone());
                    Some(key)
                }
                _ => None,
            },
            Ok(None) => {
                let key = self.problems.missing(kind, id);
                self.bad.insert(id, key.clone());
                Some(key)
            }
            Err(e) => {
                let key = self.problems.add(
                    ProblemKind::IndexUnreadable,
                    "index".into(),
                    None,
                    None,
                    e.to_string(),
                );
                Some(key)
            }
        }
    }

    /// The pack the index reads a blob from, to name it in a problem with that blob's bytes.
    fn pack_of(&self, id: BlobId) -> Option<PackId> {
        self.reader.lookup(&id).ok().flatten().map(|loc| loc.pack)
    }

    fn walk_tree(&mut self, id: TreeId, path: &str, snapshot: SnapshotId, depth: usize) -> bool {
        if self.clean.contains(&id) {
            return true;
        }
        if depth > MAX_TREE_DEPTH {
            let key = self.problems.add(
                ProblemKind::TreeDamaged,
                id.to_hex(),
                None,
                Some(id.into()),
                format!("nested deeper than {MAX_TREE_DEPTH} levels (a cycle?)"),
            );
            self.problems.affect(&key, snapshot, path);
            return false;
        }
        if let Some(key) = self.blob_problem(id.into(), "tree") {
            self.problems
                .affect(&key, snapshot, if path.is_empty() { "/" } else { path });
            return false;
        }
        let tree = match self.repo.read_tree_from_pack(&self.reader, id) {
            Ok(tree) => tree,
            Err(e) => {
                let pack = self.pack_of(id.into());
                let key = self.problems.add(
                    ProblemKind::TreeDamaged,
                    id.to_hex(),
                    pack,
                    Some(id.into()),
                    e.to_string(),
                );
                self.bad.insert(id.into(), key.clone());
                self.problems
                    .affect(&key, snapshot, if path.is_empty() { "/" } else { path });
                return false;
            }
        };
        self.trees += 1;
        let mut clean = true;
        for entry in &tree.entries {
            let child = format!("{path}/{}", String::from_utf8_lossy(&entry.name));
            match &entry.kind {
                EntryKind::Dir(sub) => clean &= self.walk_tree(*sub, &child, snapshot, depth + 1),
                EntryKind::File(data) => {
                    clean &= self.check_content(&data.content, &child, snapshot)
                }
                _ => {}
            }
        }
        if clean {
            self.clean.insert(id);
        }
        clean
    }

    /// Checks one run of chunk references; false if any is bad or missing.
    fn check_refs(
        &mut self,
        refs: &[crate::format::tree::ChunkRef],
        path: &str,
        snapshot: SnapshotId,
    ) -> bool {
        let mut clean = true;
        for r in refs {
            if let Some(key) = self.blob_problem(r.id.into(), "chunk") {
                self.problems.affect(&key, snapshot, path);
                clean = false;
            }
        }
        clean
    }

    fn check_content(&mut self, content: &Content, path: &str, snapshot: SnapshotId) -> bool {
        let lists = match content {
            Content::Inline(refs) => return self.check_refs(refs, path, snapshot),
            Content::Lists(lists) => lists,
        };
        let mut clean = true;
        for list in lists {
            // A big file unchanged across many snapshots shares its lists: check each once.
            let seen = (list.id, list.size, list.chunks);
            if self.clean_lists.contains(&seen) {
                continue;
            }
            if let Some(key) = self.blob_problem(list.id.into(), "chunk list") {
                self.problems.affect(&key, snapshot, path);
                clean = false;
                continue;
            }
            match self.repo.read_list_from_pack(&self.reader, list.id) {
                // The list must cover what its reference says, as restore demands.
                Ok(refs)
                    if refs.len() != list.chunks as usize
                        || refs.iter().map(|r| r.len as u64).sum::<u64>() != list.size =>
                {
                    let reason = "chunk list does not match the size recorded in its tree";
                    self.list_damaged(list.id, reason.into(), snapshot, path);
                    clean = false;
                }
                Ok(refs) => {
                    if self.check_refs(&refs, path, snapshot) {
                        self.clean_lists.insert(seen);
                    } else {
                        clean = false;
                    }
                }
                Err(e) => {
                    self.list_damaged(list.id, e.to_string(), snapshot, path);
                    clean = false;
                }
            }
        }
        clean
    }

    /// Records a chunk list that cannot be used, and that `path` of `snapshot` needs it.
    fn list_damaged(&mut self, id: ListId, reason: String, snapshot: SnapshotId, path: &str) {
        let pack = self.pack_of(id.into());
        let key = self.problems.add(
            ProblemKind::BlobDamaged,
            id.to_hex(),
            pack,
            Some(id.into()),
            reason,
        );
        self.bad.insert(id.into(), key.clone());
        self.problems.affect(&key, snapshot, path);
    }
}
