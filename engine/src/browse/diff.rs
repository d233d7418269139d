//! `vault diff A B [PATH]`: what changed between two snapshots, entry by entry.
//!
//! Both trees are walked side by side in name order; a subtree whose tree id is equal on both
//! sides is skipped without being read (content addressing makes equal ids equal contents). An
//! entry is `added`, `removed`, `modified` (content: a file's chunks or size, a symlink's target,
//! a device number), `metadata` (only mode, owner, or mtime) or `type_changed` (file to
//! directory, to symlink, ...; the entries below a directory on either side are then added or
//! removed as well). Byte counts come from sizes and chunk lists; no content is read.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::{check_depth, join_path, kind_name, normalize_path, TreeWalk};
use crate::error::{Error, Result};
use crate::format::tree::{ChunkRef, Content, Entry, EntryKind, FileData, Metadata};
use crate::id::{ChunkId, SnapshotId, TreeId};
use crate::repo::{lookup_path, Repository, SnapshotInfo};
use crate::report::JsonReport;

#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Compare only this path of both snapshots (absolute; empty or `/` for everything).
    pub path: String,
    /// Also total the changes per directory ([`DiffReport::directories`]).
    pub stat: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
    Metadata,
    TypeChanged,
}

impl ChangeKind {
    /// One character for human output, as in `git status --short`.
    pub fn symbol(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::Metadata => 'U',
            ChangeKind::TypeChanged => 'T',
        }
    }
}

/// One changed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    pub change: ChangeKind,
    /// The entry's type in A and in B (`null` where it does not exist).
    pub type_before: Option<&'static str>,
    pub type_after: Option<&'static str>,
    /// File sizes in A and in B (`null` where it is not a regular file).
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
    /// Bytes that differ: an added file's size, a removed file's size, for a modified file the
    /// bytes of its chunks in B that A's version lacks, for a type change the files' sizes on
    /// both sides; 0 for metadata changes and for entries that are not files.
    pub bytes: u64,
}

/// Totals over all changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffSummary {
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub metadata: u64,
    pub type_changed: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
    pub bytes_modified: u64,
}

/// The changes below one directory (its own and its entries', not its subdirectories').
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectoryTotals {
    pub path: String,
    pub changes: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
    pub bytes_modified: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub a: SnapshotId,
    pub b: SnapshotId,
    pub path: String,
    /// In path order.
    pub changes: Vec<Change>,
    pub summary: DiffSummary,
    /// With `stat`: per directory that holds a change, in path order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directories: Option<Vec<DirectoryTotals>>,
    /// Trees read (pairs with equal ids are skipped unread).
    pub trees_read: u64,
}

impl JsonReport for DiffReport {}

pub fn diff(
    repo: &Repository,
    a: &SnapshotInfo,
    b: &SnapshotInfo,
    options: &DiffOptions,
) -> Result<DiffReport> {
    let path = normalize_path(&options.path);
    let before = optional(lookup_path(repo, a, &path))?;
    let after = optional(lookup_path(repo, b, &path))?;
    if before.is_none() && after.is_none() {
        return Err(Error::NoSuchPath {
            snapshot: format!("{} nor {}", a.id.short(), b.id.short()),
            path,
        });
    }
    let mut differ = Differ {
        walk: TreeWalk::new(repo)?,
        changes: Vec::new(),
    };
    differ.entry(&path, before.as_ref(), after.as_ref(), 0)?;
    let Differ { walk, mut changes } = differ;
    changes.sort_by(|x, y| x.path.cmp(&y.path));
    let summary = summarize(&changes);
    let directories = options.stat.then(|| per_directory(&changes));
    Ok(DiffReport {
        a: a.id,
        b: b.id,
        path,
        changes,
        summary,
        directories,
        trees_read: walk.trees_read(),
    })
}

/// A path missing from one snapshot is no error for diff: its entries are added or removed.
fn optional(found: Result<Entry>) -> Result<Option<Entry>> {
    match found {
        Ok(e) => Ok(Some(e)),
        Err(Error::NoSuchPath { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

struct Differ<'a> {
    walk: TreeWalk<'a>,
    changes: Vec<Change>,
}

/// What a restore reproduces of an entry's metadata (ctime, device and inode are not).
fn same_metadata(a: &Metadata, b: &Metadata) -> bool {
    (
        a.mode,
        a.uid,
        a.gid,
        &a.user,
        &a.group,
        a.mtime_sec,
        a.mtime_nsec,
    ) == (
        b.mode,
        b.uid,
        b.gid,
        &b.user,
        &b.group,
        b.mtime_sec,
        b.mtime_nsec,
    )
}

fn file_size(entry: Option<&Entry>) -> Option<u64> {
    match entry.map(|e| &e.kind) {
        Some(EntryKind::File(f)) => Some(f.size),
        _ => None,
    }
}

impl Differ<'_> {
    fn record(&mut self, path: &str, change: ChangeKind, a: Option<&Entry>, b: Option<&Entry>) {
        let (size_before, size_after) = (file_size(a), file_size(b));
        let bytes = match change {
            ChangeKind::Metadata | ChangeKind::Modified => 0,
            _ => size_before.unwrap_or(0) + size_after.unwrap_or(0),
        };
        self.changes.push(Change {
            path: path.to_string(),
            change,
            type_before: a.map(|e| kind_name(&e.kind)),
            type_after: b.map(|e| kind_name(&e.kind)),
            size_before,
            size_after,
            bytes,
        });
    }

    /// Compares the entry at `path` in A (`a`) and B (`b`).
    fn entry(
        &mut self,
        path: &str,
        a: Option<&Entry>,
        b: Option<&Entry>,
        depth: usize,
    ) -> Result<()> {
        match (a, b) {
            (None, None) => Ok(()),
            (Some(a), None) => self.one_side(path, a, ChangeKind::Removed, depth),
            (None, Some(b)) => self.one_side(path, b, ChangeKind::Added, depth),
            (Some(a), Some(b)) => self.both(path, a, b, depth),
        }
    }

    fn both(&mut self, path: &str, a: &Entry, b: &Entry, depth: usize) -> Result<()> {
        let meta_same = same_metadata(&a.meta, &b.meta);
        let content_same = match (&a.kind, &b.kind) {
            (EntryKind::Dir(x), EntryKind::Dir(y)) => {
                if !meta_same && path != "/" {
                    self.record(path, ChangeKind::Metadata, Some(a), Some(b));
                }
                return self.trees(path, *x, *y, depth);
            }
            (EntryKind::File(x), EntryKind::File(y)) => {
                if x.size != y.size || x.content != y.content {
                    let bytes = self.new_bytes(x, y)?;
                    self.record(path, ChangeKind::Modified, Some(a), Some(b));
                    self.changes.last_mut().expect("recorded").bytes = bytes;
                    return Ok(());
                }
                true
            }
            (x, y) if std::mem::discriminant(x) != std::mem::discriminant(y) => {
                self.record(path, ChangeKind::TypeChanged, Some(a), Some(b));
                for (entry, change) in [(a, ChangeKind::Removed), (b, ChangeKind::Added)] {
                    if let EntryKind::Dir(id) = entry.kind {
                        self.below(path, id, change, depth)?;
                    }
                }
                return Ok(());
            }
            (x, y) => x == y,
        };
        if !content_same {
            self.record(path, ChangeKind::Modified, Some(a), Some(b));
        } else if !meta_same {
            self.record(path, ChangeKind::Metadata, Some(a), Some(b));
        }
        Ok(())
    }

    /// An entry on one side only, and for a directory everything below it.
    fn one_side(
        &mut self,
        path: &str,
        entry: &Entry,
        change: ChangeKind,
        depth: usize,
    ) -> Result<()> {
        match change {
            ChangeKind::Removed => self.record(path, change, Some(entry), None),
            _ => self.record(path, change, None, Some(entry)),
        }
        if let EntryKind::Dir(id) = entry.kind {
            self.below(path, id, change, depth)?;
        }
        Ok(())
    }

    fn below(&mut self, path: &str, id: TreeId, change: ChangeKind, depth: usize) -> Result<()> {
        check_depth(id, depth)?;
        let tree = self.walk.tree(id)?;
        for entry in &tree.entries {
            self.one_side(&join_path(path, &entry.name), entry, change, depth + 1)?;
        }
        Ok(())
    }

    /// Two directories: skipped unread when their trees are the same object.
    fn trees(&mut self, path: &str, a: TreeId, b: TreeId, depth: usize) -> Result<()> {
        if a == b {
            return Ok(());
        }
        check_depth(b, depth)?;
        let (ta, tb) = (self.walk.tree(a)?, self.walk.tree(b)?);
        let mut names: Vec<&[u8]> = ta
            .entries
            .iter()
            .chain(&tb.entries)
            .map(|e| e.name.as_slice())
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            self.entry(
                &join_path(path, name),
                ta.find(name),
                tb.find(name),
                depth + 1,
            )?;
        }
        Ok(())
    }

    /// The bytes of `b`'s chunks that `a`'s content lacks (chunk lists are read; chunks are not).
    fn new_bytes(&self, a: &FileData, b: &FileData) -> Result<u64> {
        let old: HashSet<ChunkId> = self.chunks(&a.content)?.iter().map(|c| c.id).collect();
        Ok(self
            .chunks(&b.content)?
            .iter()
            .filter(|c| !old.contains(&c.id))
            .map(|c| c.len as u64)
            .sum())
    }

    fn chunks(&self, content: &Content) -> Result<Vec<ChunkRef>> {
        match content {
            Content::Inline(refs) => Ok(refs.clone()),
            Content::Lists(lists) => {
                let mut out = Vec::new();
                for list in lists {
                    out.extend(self.walk.repo.read_list(&self.walk.reader, list.id)?);
                }
                Ok(out)
            }
        }
    }
}

fn summarize(changes: &[Change]) -> DiffSummary {
    let mut s = DiffSummary::default();
    for c in changes {
        match c.change {
            ChangeKind::Added => {
                s.added += 1;
                s.bytes_added += c.bytes;
            }
            ChangeKind::Removed => {
                s.removed += 1;
                s.bytes_removed += c.bytes;
            }
            ChangeKind::Modified => {
                s.modified += 1;
                s.bytes_modified += c.bytes;
            }
            ChangeKind::Metadata => s.metadata += 1,
            ChangeKind::TypeChanged => {
                s.type_changed += 1;
                s.bytes_removed += c.size_before.unwrap_or(0);
                s.bytes_added += c.size_after.unwrap_or(0);
            }
        }
    }
    s
}

/// The directory a change is counted in: its parent.
fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn per_directory(changes: &[Change]) -> Vec<DirectoryTotals> {
    let mut dirs: BTreeMap<&str, DirectoryTotals> = BTreeMap::new();
    for c in changes {
        let parent = parent_of(&c.path);
        let t = dirs.entry(parent).or_insert_with(|| DirectoryTotals {
            path: parent.to_string(),
            ..Default::default()
        });
        t.changes += 1;
        let s = summarize(std::slice::from_ref(c));
        t.bytes_added += s.bytes_added;
        t.bytes_removed += s.bytes_removed;
        t.bytes_modified += s.bytes_modified;
    }
    dirs.into_values().collect()
}
