//! `vault ls SNAPSHOT[:PATH]`: the entries of one directory of a snapshot (or of the whole
//! subtree, `recursive`), read from the trees on the way and nothing else.

use serde::Serialize;

use super::{check_depth, join_path, normalize_path, EntryInfo, TreeWalk};
use crate::error::Result;
use crate::format::tree::EntryKind;
use crate::id::{SnapshotId, TreeId};
use crate::repo::{lookup_path, Repository, SnapshotInfo};
use crate::report::JsonReport;

#[derive(Debug, Clone, Default)]
pub struct LsOptions {
    /// Path in the snapshot (absolute; `/` or empty for the root).
    pub path: String,
    /// Every entry below `path`, not only its direct children.
    pub recursive: bool,
}

/// What `vault ls` lists.
#[derive(Debug, Clone, Serialize)]
pub struct LsReport {
    pub snapshot: SnapshotId,
    pub short_id: String,
    /// The path listed, normalized.
    pub path: String,
    /// A directory's entries in name order (with `recursive`, each directory followed by its
    /// contents); a path that is not a directory lists that entry alone.
    pub entries: Vec<EntryInfo>,
    pub trees_read: u64,
}

impl JsonReport for LsReport {}

pub fn ls(repo: &Repository, snapshot: &SnapshotInfo, options: &LsOptions) -> Result<LsReport> {
    let path = normalize_path(&options.path);
    let entry = lookup_path(repo, snapshot, &path)?;
    let walk = TreeWalk::new(repo)?;
    let mut entries = Vec::new();
    match entry.kind {
        EntryKind::Dir(id) => list(&walk, id, &path, options.recursive, 0, &mut entries)?,
        _ => entries.push(EntryInfo::new(path.clone(), &entry)),
    }
    Ok(LsReport {
        snapshot: snapshot.id,
        short_id: snapshot.id.short(),
        path,
        entries,
        trees_read: walk.trees_read(),
    })
}

fn list(
    walk: &TreeWalk<'_>,
    id: TreeId,
    path: &str,
    recursive: bool,
    depth: usize,
    out: &mut Vec<EntryInfo>,
) -> Result<()> {
    check_depth(id, depth)?;
    let tree = walk.tree(id)?;
    for entry in &tree.entries {
        let child = join_path(path, &entry.name);
        out.push(EntryInfo::new(child.clone(), entry));
        if let (true, EntryKind::Dir(sub)) = (recursive, &entry.kind) {
            list(walk, *sub, &child, recursive, depth + 1, out)?;
        }
    }
    Ok(())
}
