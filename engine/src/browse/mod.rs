//! Looking inside backups without restoring them: `vault ls`, `find`, `diff` and `stats`.
//!
//! Input: snapshots (resolved by the caller) and what to look for. Output: typed reports for the
//! CLI. Everything here reads trees (and, for `diff`'s byte counts, chunk lists) through the
//! repository's tree reading ([`crate::repo::Repository::read_tree`], with its local tree cache);
//! no file content is ever read, and nothing is written.
//!
//! Trees are content-addressed and shared between snapshots, so each command avoids reading a
//! tree twice: `diff` skips every subtree whose id is equal on both sides, `find` remembers what
//! it found below each tree id and reuses it in every other snapshot that holds the same tree.

pub mod diff;
pub mod find;
pub mod ls;
pub mod stats;

use std::cell::Cell;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::tree::{Content, Entry, EntryKind, Metadata, Tree};
use crate::id::TreeId;
use crate::index::IndexReader;
use crate::limits::MAX_TREE_DEPTH;
use crate::repo::Repository;

pub use diff::{diff, Change, ChangeKind, DiffOptions, DiffReport, DiffSummary, DirectoryTotals};
pub use find::{find, FindMatch, FindOptions, FindReport, SizeFilter};
pub use ls::{ls, LsOptions, LsReport};
pub use stats::{stats, RepositoryStats, SnapshotStats, StatsOptions, StatsReport};

/// One entry of a snapshot as the browse commands show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    /// Absolute path in the snapshot, `/`-separated (names that are not UTF-8 are shown with
    /// U+FFFD in place of the bytes that are not).
    pub path: String,
    /// `file`, `dir`, `symlink`, `fifo`, `chardev` or `blockdev`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    /// A regular file's size; 0 for everything else.
    pub size: u64,
    /// RFC 3339 in UTC, with nanoseconds.
    pub mtime: String,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A regular file's content id: the BLAKE3 of its chunk references, equal for equal content
    /// stored the same way (see [`content_id`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// The short type name of an entry kind.
pub fn kind_name(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::File(_) => "file",
        EntryKind::Dir(_) => "dir",
        EntryKind::Symlink(_) => "symlink",
        EntryKind::Fifo => "fifo",
        EntryKind::CharDevice { .. } => "chardev",
        EntryKind::BlockDevice { .. } => "blockdev",
    }
}

/// A recorded mtime as RFC 3339 (UTC, nanoseconds); out-of-range times as seconds.
pub fn format_mtime(meta: &Metadata) -> String {
    match jiff::Timestamp::new(meta.mtime_sec, meta.mtime_nsec as i32) {
        Ok(t) => t.to_string(),
        Err(_) => format!("@{}.{:09}", meta.mtime_sec, meta.mtime_nsec),
    }
}

/// A file's content id: BLAKE3 over its chunk references as stored (chunk ids and lengths, or
/// chunk-list ids and sizes). Equal for two files whose content is stored the same way; a
/// changed byte changes it. Not the digest of the bytes themselves (that would need reading
/// them).
pub fn content_id(content: &Content) -> String {
    let mut hasher = blake3::Hasher::new();
    match content {
        Content::Inline(refs) => {
            hasher.update(b"i");
            for r in refs {
                hasher.update(&r.id.0);
                hasher.update(&r.len.to_le_bytes());
            }
        }
        Content::Lists(lists) => {
            hasher.update(b"l");
            for l in lists {
                hasher.update(&l.id.0);
                hasher.update(&l.size.to_le_bytes());
            }
        }
    }
    hasher.finalize().to_hex().to_string()
}

/// `parent` joined with one name (`/` for the root itself).
pub fn join_path(parent: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if parent.ends_with('/') {
        format!("{parent}{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// `path` made absolute and without `.`, empty components or a trailing slash.
pub fn normalize_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

impl EntryInfo {
    pub fn new(path: String, entry: &Entry) -> Self {
        let m = &entry.meta;
        let (size, target, content) = match &entry.kind {
            EntryKind::File(f) => (f.size, None, Some(content_id(&f.content))),
            EntryKind::Symlink(t) => (0, Some(String::from_utf8_lossy(t).into_owned()), None),
            _ => (0, None, None),
        };
        EntryInfo {
            path,
            kind: kind_name(&entry.kind),
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            user: m.user.clone(),
            group: m.group.clone(),
            size,
            mtime: format_mtime(m),
            target,
            content,
        }
    }
}

/// Trees nest at most [`MAX_TREE_DEPTH`] levels (what a snapshot can write); a deeper tree is
/// damage, reported instead of walked (the walks recurse).
pub fn check_depth(id: TreeId, depth: usize) -> Result<()> {
    if depth >= MAX_TREE_DEPTH {
        return Err(Error::Corrupt {
            object: format!("tree {}", id.to_hex()),
            reason: format!("nested deeper than {MAX_TREE_DEPTH} levels"),
        });
    }
    Ok(())
}

/// Reads trees for one command, counting them (the count is in every report: it shows what
/// the sharing of trees saved).
pub struct TreeWalk<'a> {
    pub repo: &'a Repository,
    pub reader: IndexReader<'a>,
    read: Cell<u64>,
}

impl<'a> TreeWalk<'a> {
    pub fn new(repo: &'a Repository) -> Result<Self> {
        Ok(TreeWalk {
            repo,
            reader: repo.index().reader()?,
            read: Cell::new(0),
        })
    }

    /// Tree `id`, checked against its id.
    pub fn tree(&self, id: TreeId) -> Result<Tree> {
        self.read.set(self.read.get() + 1);
        self.repo.read_tree(&self.reader, id)
    }

    /// How many trees were read so far.
    pub fn trees_read(&self) -> u64 {
        self.read.get()
    }
}
