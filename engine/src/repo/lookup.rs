//! Finding an entry of a snapshot by its path, through the snapshot's trees.
//!
//! Input: a snapshot and a path in it. Output: the entry at that path (a directory's entry
//! names its tree; a file's carries its content, read with [`super::content`]). Reads one tree
//! per path component, each checked against its id; nothing is written.

use crate::error::{Error, Result};
use crate::format::tree::{Entry, EntryKind, Metadata};
use crate::repo::{Repository, SnapshotInfo};

/// The entry at `path` (absolute, `/`-separated, leading slash optional) of a snapshot. The
/// root itself is returned as a directory entry with an empty name.
pub fn lookup_path(repo: &Repository, snapshot: &SnapshotInfo, path: &str) -> Result<Entry> {
    let root = snapshot.manifest.root().expect("validated at decode");
    let mut entry = Entry {
        name: Vec::new(),
        meta: Metadata::default(),
        kind: EntryKind::Dir(root),
    };
    let reader = repo.index().reader()?;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let EntryKind::Dir(id) = entry.kind else {
            return Err(Error::NoSuchPath {
                snapshot: snapshot.id.short(),
                path: path.into(),
            });
        };
        let tree = repo.read_tree(&reader, id)?;
        entry = tree
            .find(part.as_bytes())
            .cloned()
            .ok_or_else(|| Error::NoSuchPath {
                snapshot: snapshot.id.short(),
                path: path.into(),
            })?;
    }
    Ok(entry)
}
