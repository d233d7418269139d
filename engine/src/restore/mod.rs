//! Restore: recreate a snapshot (or one path of it) under a target directory.
//!
//! Directories are restored depth-first, their children in parallel; file content is fetched in
//! parallel batches with every chunk's digest checked before it is written ([`write`]).
//! Metadata is applied after content: files right after writing, directories after all their
//! children. Hard-linked files (equal `(dev, inode)` in one snapshot) are written once and linked
//! afterwards. All paths under the target are made by [`target`] alone.

mod content;
pub mod dump;
pub mod target;
pub mod write;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::format::tree::{Entry, EntryKind, Metadata, Tree};
use crate::limits::MAX_TREE_DEPTH;
use crate::meta;
use crate::progress::Progress;
use crate::repo::{Repository, SnapshotInfo};

pub struct RestoreOptions {
    /// Path inside the snapshot to restore (`/srv/cms/blobs`); `None` restores everything.
    /// A directory's contents land directly in the target; a file lands as `target/<name>`.
    pub subpath: Option<String>,
    pub target: PathBuf,
    /// Restore only entries whose snapshot path (or an ancestor's) matches one of these globs.
    pub includes: Vec<String>,
    /// Restore into a non-empty target, replacing what is in the way.
    pub overwrite: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    pub bytes_written: u64,
    /// Problems that did not stop the restore (ownership not settable, device nodes as non-root).
    pub warnings: Vec<String>,
}

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

/// A hard link to create after the walk, and the directory (with its metadata) it lands in,
/// whose mtime the link creation changes.
struct PendingLink {
    path: PathBuf,
    key: (u64, u64),
    dir: PathBuf,
    dir_meta: Option<Metadata>,
}

struct Restorer<'a> {
    repo: &'a Repository,
    overwrite: bool,
    chown: bool,
    includes: Option<GlobSet>,
    progress: &'a dyn Progress,
    report: Mutex<RestoreReport>,
    bytes: AtomicU64,
    /// (dev, inode) -> path of the first restored link of a hard-linked file.
    links: Mutex<HashMap<(u64, u64), PathBuf>>,
    /// Later links, created once every first link exists.
    pending_links: Mutex<Vec<PendingLink>>,
    /// Directories that will receive a pending link: their metadata (which may make them
    /// read-only) is applied only after the links exist.
    link_dirs: Mutex<std::collections::HashSet<PathBuf>>,
}

impl Restorer<'_> {
    fn warn(&self, message: String) {
        self.progress.warning(&message);
        self.report.lock().unwrap().warnings.push(message);
    }

    fn count(&self, f: impl FnOnce(&mut RestoreReport)) {
        f(&mut self.report.lock().unwrap());
    }

    fn included(&self, snapshot_path: &Path) -> bool {
        match &self.includes {
            None => true,
            Some(set) => snapshot_path.ancestors().any(|p| set.is_match(p)),
        }
    }

    fn apply_meta(&self, path: &Path, meta: &Metadata, is_symlink: bool) {
        if let Err(e) = meta::apply(path, meta, is_symlink, self.chown) {
            self.warn(format!("{}: cannot restore metadata: {e}", path.display()));
        }
    }

    /// Restores the entries of `tree` into the existing directory `dir`. Returns whether anything
    /// was restored (for `--include`, empty directories are removed again).
    fn restore_tree(
        &self,
        tree: &Tree,
        dir: &Path,
        dir_meta: Option<&Metadata>,
        snapshot_dir: &Path,
        depth: usize,
    ) -> Result<bool> {
        if depth > MAX_TREE_DEPTH {
            return Err(Error::Corrupt {
                object: "snapshot tree".into(),
                reason: format!("nested deeper than {MAX_TREE_DEPTH} levels (a cycle?)"),
            });
        }
        let results: Vec<bool> = tree
            .entries
            .par_iter()
            .map(|entry| self.restore_entry(entry, dir, dir_meta, snapshot_dir, depth))
            .collect::<Result<_>>()?;
        Ok(results.into_iter().any(|r| r))
    }

    fn restore_entry(
        &self,
        entry: &Entry,
        dir: &Path,
        dir_meta: Option<&Metadata>,
        snapshot_dir: &Path,
        depth: usize,
    ) -> Result<bool> {
        let path = target::child(dir, &entry.name)?;
        let snapshot_path = snapshot_dir.join(OsStr::from_bytes(&entry.name));
        let wanted = self.included(&snapshot_path);
        match &entry.kind {
            EntryKind::Dir(id) => {
                target::create_dir(&path, self.overwrite)?;
                let reader = self.repo.index().reader()?;
                let tree = self.repo.read_tree(&reader, *id)?;
                drop(reader);
                let any =
                    self.restore_tree(&tree, &path, Some(&entry.meta), &snapshot_path, depth + 1)?;
                if !wanted && !any {
                    std::fs::remove_dir(&path).at(&path)?;
                    return Ok(false);
                }
                // Children are all restored; links into this directory come later, and then
                // its metadata is applied by `finish_links`.
                if !self.link_dirs.lock().unwrap().contains(&path) {
                    self.apply_meta(&path, &entry.meta, false);
                }
                self.count(|r| r.dirs += 1);
                Ok(true)
            }
            _ if !wanted => Ok(false),
            EntryKind::File(data) => {
                if data.hardlinked {
                    let key = (entry.meta.dev, entry.meta.inode);
                    let mut links = self.links.lock().unwrap();
                    if links.contains_key(&key) {
                        self.link_dirs.lock().unwrap().insert(dir.to_path_buf());
                        self.pending_links.lock().unwrap().push(PendingLink {
                            path,
                            key,
                            dir: dir.to_path_buf(),
                            dir_meta: dir_meta.cloned(),
                        });
                        return Ok(true);
                    }
                    links.insert(key, path.clone());
                }
                let file = target::create_file(&path, self.overwrite)?;
                // Not fsynced, like cp, tar and restic: the repository keeps the durable copy,
                // and an fsync per file would make a restore wait for the disk file by file.
                let written = write::write_content(self.repo, &file, &path, data, self.progress)?;
                drop(file);
                self.apply_meta(&path, &entry.meta, false);
                self.bytes.fetch_add(written, Ordering::Relaxed);
                self.count(|r| r.files += 1);
                self.progress.file_done();
                Ok(true)
            }
            EntryKind::Symlink(target_bytes) => {
                target::prepare_name(&path, self.overwrite)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(target_bytes), &path).at(&path)?;
                self.apply_meta(&path, &entry.meta, true);
                self.count(|r| r.symlinks += 1);
                Ok(true)
            }
            EntryKind::Fifo | EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. } => {
                let (kind, rdev) = match entry.kind {
                    EntryKind::Fifo => (libc::S_IFIFO, 0),
                    EntryKind::CharDevice { rdev } => (libc::S_IFCHR, rdev),
                    EntryKind::BlockDevice { rdev } => (libc::S_IFBLK, rdev),
                    _ => unreachable!(),
                };
                if kind != libc::S_IFIFO && !self.chown {
                    self.warn(format!(
                        "{}: {} not restored (needs root)",
                        path.display(),
                        entry.kind.name()
                    ));
                    return Ok(false);
                }
                target::prepare_name(&path, self.overwrite)?;
                meta::make_node(&path, kind, rdev, entry.meta.mode).at(&path)?;
                self.apply_meta(&path, &entry.meta, false);
                self.count(|r| r.special += 1);
                Ok(true)
            }
        }
    }

    /// Creates the hard links recorded during the walk, then applies the metadata of their
    /// directories, which was held back (creating a link changes a directory's mtime, and a
    /// read-only directory would refuse the link).
    fn finish_links(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending_links.lock().unwrap());
        let links = self.links.lock().unwrap();
        let mut dirs: HashMap<PathBuf, Metadata> = HashMap::new();
        for link in pending {
            let first = links
                .get(&link.key)
                .expect("first link recorded before later ones");
            target::prepare_name(&link.path, self.overwrite)?;
            std::fs::hard_link(first, &link.path).at(&link.path)?;
            self.count(|r| r.hardlinks += 1);
            if let Some(meta) = link.dir_meta {
                dirs.insert(link.dir, meta);
            }
        }
        for (dir, meta) in &dirs {
            self.apply_meta(dir, meta, false);
        }
        Ok(())
    }
}

/// Restores `snapshot` as `options` say.
pub fn run(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    repo.io_scope(|| restore(repo, snapshot, options, progress))
}

fn restore(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    // Prune waits for registered readers before deleting packs (format-spec/09-rotation.md).
    let _reader = repo.register("restore", false)?;
    let includes = if options.includes.is_empty() {
        None
    } else {
        let mut set = GlobSetBuilder::new();
        for p in &options.includes {
            set.add(
                GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::invalid(format!("--include {p:?}"), e.to_string()))?,
            );
        }
        Some(
            set.build()
                .map_err(|e| Error::invalid("--include", e.to_string()))?,
        )
    };
    let subpath = options.subpath.clone().unwrap_or_else(|| "/".into());
    let entry = lookup_path(repo, snapshot, &subpath)?;
    if !target::is_empty_or_missing(&options.target)? && !options.overwrite {
        return Err(Error::TargetNotEmpty {
            path: options.target.clone(),
        });
    }
    std::fs::create_dir_all(&options.target).at(&options.target)?;
    let restorer = Restorer {
        repo,
        overwrite: options.overwrite,
        chown: meta::can_chown(),
        includes,
        progress,
        report: Mutex::new(RestoreReport::default()),
        bytes: AtomicU64::new(0),
        links: Mutex::new(HashMap::new()),
        pending_links: Mutex::new(Vec::new()),
        link_dirs: Mutex::new(Default::default()),
    };
    if options.subpath.is_none() && options.includes.is_empty() {
        let summary = &snapshot.manifest.summary;
        progress.total(summary.files, summary.bytes_total);
    }
    let snapshot_base = PathBuf::from(format!("/{}", subpath.trim_matches('/')));
    match &entry.kind {
        EntryKind::Dir(id) => {
            let reader = repo.index().reader()?;
            let tree = repo.read_tree(&reader, *id)?;
            drop(reader);
            // The snapshot root has no metadata of its own; a restored directory's goes on the target.
            let target_meta = (!entry.name.is_empty()).then_some(&entry.meta);
            restorer.restore_tree(&tree, &options.target, target_meta, &snapshot_base, 0)?;
            restorer.finish_links()?;
            if let Some(meta) = target_meta {
                restorer.apply_meta(&options.target, meta, false);
            }
        }
        _ => {
            let parent = snapshot_base
                .parent()
                .unwrap_or(Path::new("/"))
                .to_path_buf();
            restorer.restore_entry(&entry, &options.target, None, &parent, 0)?;
            restorer.finish_links()?;
        }
    }
    let mut report = restorer.report.into_inner().unwrap();
    report.bytes_written = restorer.bytes.into_inner();
    Ok(report)
}
