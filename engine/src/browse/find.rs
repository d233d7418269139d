//! `vault find PATTERN`: which snapshots hold entries whose name matches, and in which version.
//!
//! Each snapshot's trees are searched depth first. What was found below a tree id is kept (as
//! paths relative to that tree) and reused, prefixed with the path, wherever the same tree id
//! comes up again, in this snapshot or another: a directory unchanged over thirty daily
//! snapshots is read once. Filters that depend on the entry alone (name, size, mtime) are applied
//! inside that memo; the `path` glob, which depends on where the tree sits, is applied to the
//! final paths.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::Serialize;

use super::{check_depth, EntryInfo, TreeWalk};
use crate::error::{Error, Result};
use crate::format::tree::{Entry, EntryKind};
use crate::id::{SnapshotId, TreeId};
use crate::repo::{Repository, SnapshotInfo};
use crate::report::JsonReport;

/// `--size`: larger than, smaller than, or exactly (regular files only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeFilter {
    Larger(u64),
    Smaller(u64),
    Exactly(u64),
}

#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// Glob matched against each entry's name (`*.sql`, `report-202?-*`).
    pub pattern: String,
    /// Glob matched against the whole path in the snapshot (`/srv/cms/**`).
    pub path: Option<String>,
    /// Only entries modified after / before this time.
    pub newer: Option<jiff::Timestamp>,
    pub older: Option<jiff::Timestamp>,
    pub size: Option<SizeFilter>,
}

/// One matching entry in one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct FindMatch {
    pub snapshot: SnapshotId,
    pub short_id: String,
    /// When the snapshot was taken.
    pub snapshot_time: String,
    pub entry: EntryInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindReport {
    pub snapshots_searched: u64,
    /// By path, then by snapshot (oldest first).
    pub matches: Vec<FindMatch>,
    /// Trees read; every other tree of the snapshots was already searched.
    pub trees_read: u64,
    /// Subtrees whose results were reused instead of read again.
    pub trees_reused: u64,
}

impl JsonReport for FindReport {}

/// The compiled filters.
struct Filters {
    name: GlobMatcher,
    path: Option<GlobMatcher>,
    newer: Option<jiff::Timestamp>,
    older: Option<jiff::Timestamp>,
    size: Option<SizeFilter>,
}

fn glob(what: &str, text: &str, literal_separator: bool) -> Result<GlobMatcher> {
    let glob: std::result::Result<Glob, _> = GlobBuilder::new(text)
        .literal_separator(literal_separator)
        .build();
    glob.map(|g| g.compile_matcher()).map_err(|e| {
        Error::invalid(
            format!("{what} {text:?}"),
            format!("{}; use a glob such as '*.sql' or '/srv/**'", e.kind()),
        )
    })
}

impl Filters {
    fn new(options: &FindOptions) -> Result<Self> {
        Ok(Filters {
            name: glob("pattern", &options.pattern, true)?,
            path: options
                .path
                .as_deref()
                .map(|p| glob("--path", p, true))
                .transpose()?,
            newer: options.newer,
            older: options.older,
            size: options.size,
        })
    }

    /// Whether an entry matches on its own (name, mtime, size).
    fn entry(&self, entry: &Entry) -> bool {
        if !self
            .name
            .is_match(Path::new(OsStr::from_bytes(&entry.name)))
        {
            return false;
        }
        let mtime = jiff::Timestamp::new(entry.meta.mtime_sec, entry.meta.mtime_nsec as i32).ok();
        if self.newer.is_some_and(|t| mtime.is_none_or(|m| m <= t))
            || self.older.is_some_and(|t| mtime.is_none_or(|m| m >= t))
        {
            return false;
        }
        match (self.size, &entry.kind) {
            (None, _) => true,
            (Some(filter), EntryKind::File(f)) => match filter {
                SizeFilter::Larger(n) => f.size > n,
                SizeFilter::Smaller(n) => f.size < n,
                SizeFilter::Exactly(n) => f.size == n,
            },
            (Some(_), _) => false,
        }
    }
}

/// Matches below one tree, with paths relative to it (`a/b`).
type Found = Rc<Vec<EntryInfo>>;

struct Finder<'a> {
    walk: TreeWalk<'a>,
    filters: Filters,
    memo: HashMap<TreeId, Found>,
    reused: u64,
}

impl Finder<'_> {
    fn search(&mut self, id: TreeId, depth: usize) -> Result<Found> {
        if let Some(found) = self.memo.get(&id) {
            self.reused += 1;
            return Ok(found.clone());
        }
        check_depth(id, depth)?;
        let tree = self.walk.tree(id)?;
        let mut found = Vec::new();
        for entry in &tree.entries {
            let name = String::from_utf8_lossy(&entry.name).into_owned();
            if self.filters.entry(entry) {
                found.push(EntryInfo::new(name.clone(), entry));
            }
            if let EntryKind::Dir(sub) = entry.kind {
                for below in self.search(sub, depth + 1)?.iter() {
                    let mut below = below.clone();
                    below.path = format!("{name}/{}", below.path);
                    found.push(below);
                }
            }
        }
        let found = Rc::new(found);
        self.memo.insert(id, found.clone());
        Ok(found)
    }
}

/// Searches `snapshots` (oldest first) for entries matching `options`.
pub fn find(
    repo: &Repository,
    snapshots: &[SnapshotInfo],
    options: &FindOptions,
) -> Result<FindReport> {
    let mut finder = Finder {
        walk: TreeWalk::new(repo)?,
        filters: Filters::new(options)?,
        memo: HashMap::new(),
        reused: 0,
    };
    let mut matches = Vec::new();
    for snapshot in snapshots {
        let root = snapshot.manifest.root().ok_or_else(|| Error::Corrupt {
            object: format!("snapshot {}", snapshot.id.to_hex()),
            reason: "root tree id is not 64 hex characters".into(),
        })?;
        for found in finder.search(root, 0)?.iter() {
            let mut entry = found.clone();
            entry.path = format!("/{}", entry.path);
            if finder
                .filters
                .path
                .as_ref()
                .is_some_and(|p| !p.is_match(&entry.path))
            {
                continue;
            }
            matches.push(FindMatch {
                snapshot: snapshot.id,
                short_id: snapshot.id.short(),
                snapshot_time: snapshot.manifest.time.clone(),
                entry,
            });
        }
    }
    // Stable: within a path the snapshots stay oldest first.
    matches.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    Ok(FindReport {
        snapshots_searched: snapshots.len() as u64,
        matches,
        trees_read: finder.walk.trees_read(),
        trees_reused: finder.reused,
    })
}
