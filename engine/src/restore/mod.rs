//! Restore: recreate a snapshot (or one path of it) under a target directory.
//!
//! Input: a snapshot, [`RestoreOptions`] (turned once into a [`RestorePlan`]: what to do with
//! what the target holds, whether the disk changes, what damage does) and a target directory.
//! Output: the entries on disk and a [`RestoreReport`].
//!
//! Directories are restored depth-first, their children in parallel; file content is read
//! through the repository's content reader ([`crate::repo::content`]: coalesced range reads,
//! every chunk checked before it is written) and written at its offsets by [`write`].
//! Invariants: metadata is applied after content: files right after writing, directories after
//! all their children. Hard-linked files (equal `(dev, inode)` in one snapshot) are written once
//! and linked afterwards. Everything under the target is reached through directory descriptors
//! made by [`target`] alone (one checked name at a time: no path length limit, no symlink
//! followed).

pub mod bulk;
mod delta;
pub mod dump;
mod existing;
mod overlap;
mod plan;
pub mod target;
pub mod write;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

pub use self::plan::{
    Changes, Compare, ContentCheck, Delta, Extra, OnDamage, RestorePlan, TargetMode,
};
use self::target::Dir;
use self::write::{RestoredChunks, Reuse, WriteStats};
use crate::error::{Error, IoContext, Result};
use crate::format::tree::{Entry, EntryKind, FileData, Metadata, Tree};
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
    /// Restore into an existing tree, rewriting only what differs (implies `overwrite`).
    pub delta: bool,
    /// With `delta`: compare the content of files whose size and mtime match too.
    pub verify_existing: bool,
    /// With `delta`: remove entries the snapshot does not have.
    pub delete: bool,
    /// Change nothing on disk; report what a restore would do.
    pub dry_run: bool,
    /// With `dry_run`: read and check every chunk the restore would write.
    pub verify: bool,
    /// Restore what can be restored when the repository is damaged: a file or directory that
    /// cannot be read whole is left out and listed in [`RestoreReport::damaged`].
    pub keep_going: bool,
}

impl RestoreOptions {
    /// A plain restore of everything into `target`.
    pub fn new(target: PathBuf) -> Self {
        RestoreOptions {
            subpath: None,
            target,
            includes: Vec::new(),
            overwrite: false,
            delta: false,
            verify_existing: false,
            delete: false,
            dry_run: false,
            verify: false,
            keep_going: false,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    /// Content bytes written to disk (holes and chunks already in place excluded).
    pub bytes_written: u64,
    /// Content bytes read from the repository.
    pub bytes_fetched: u64,
    /// Delta: files whose content was left alone, and their bytes.
    pub files_unchanged: u64,
    pub bytes_unchanged: u64,
    /// Delta: files of which only the changed chunks were written or fetched.
    pub files_patched: u64,
    /// Content bytes taken from disk instead of the repository (delta: chunks already in place
    /// or moved within the existing file; bulk: chunks another target already holds).
    pub bytes_reused: u64,
    /// Files written whole (new, or nothing of them reusable).
    pub files_written: u64,
    /// Entries removed that the snapshot does not have (`--delete`; a directory counts once).
    pub deleted: u64,
    /// Entries whose mode, owner or mtime had to be fixed.
    pub metadata_updated: u64,
    /// Dry run with verify: content bytes read and checked.
    pub bytes_verified: u64,
    pub dry_run: bool,
    /// Dry run: what would fail.
    pub problems: Vec<String>,
    /// Problems that did not stop the restore (ownership not settable, device nodes as non-root).
    pub warnings: Vec<String>,
    /// `keep_going`: target paths of files and directories left out because the repository's
    /// copy is damaged (`<path>: <what is damaged>`).
    pub damaged: Vec<String>,
    /// Worth knowing, not a problem: a target inside a source of the snapshot or inside the
    /// repository.
    pub notices: Vec<String>,
}

/// Kept here for callers of `restore::lookup_path`; path lookup is the repository's read side.
pub use crate::repo::lookup_path;

/// A hard link to create after the walk, and the directory (with its metadata) it lands in,
/// whose mtime the link creation changes.
struct PendingLink {
    path: PathBuf,
    key: (u64, u64),
    dir: PathBuf,
    dir_meta: Option<Metadata>,
}

/// Names of the temporary files a delta restore rebuilds files in; one left by an interrupted
/// run is removed by the next delta restore of that directory.
const TEMP_PREFIX: &str = ".vault-restore-";

/// Where an entry goes: its name in its directory, and its path for messages.
struct At<'d> {
    dir: &'d Dir,
    name: &'d OsStr,
    path: PathBuf,
}

struct Restorer<'a> {
    repo: &'a Repository,
    plan: RestorePlan,
    /// Chunks written so far, for a bulk restore's later targets.
    restored: Option<&'a RestoredChunks>,
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
    /// Hard-link groups whose first link was left out as damaged (`keep_going`).
    damaged_links: Mutex<std::collections::HashSet<(u64, u64)>>,
}

fn same_mtime(stat: &fs::Metadata, meta: &Metadata) -> bool {
    stat.mtime() == meta.mtime_sec && stat.mtime_nsec() == meta.mtime_nsec as i64
}

/// Whether a node at the target is already what the snapshot entry is (type and device).
fn same_node(stat: &fs::Metadata, kind: &EntryKind) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let t = stat.file_type();
    match kind {
        EntryKind::Fifo => t.is_fifo(),
        EntryKind::CharDevice { rdev } => t.is_char_device() && stat.rdev() == *rdev,
        EntryKind::BlockDevice { rdev } => t.is_block_device() && stat.rdev() == *rdev,
        _ => false,
    }
}

impl Restorer<'_> {
    fn warn(&self, message: String) {
        self.progress.warning(&message);
        self.report.lock().unwrap().warnings.push(message);
    }

    fn problem(&self, path: &Path, error: &Error) {
        let message = format!("{}: {error}", path.display());
        self.progress.warning(&message);
        self.report.lock().unwrap().problems.push(message);
    }

    fn count(&self, f: impl FnOnce(&mut RestoreReport)) {
        f(&mut self.report.lock().unwrap());
    }

    fn count_write(&self, stats: WriteStats) {
        self.bytes.fetch_add(stats.written, Ordering::Relaxed);
        self.count(|r| {
            r.bytes_fetched += stats.fetched;
            r.bytes_reused += stats.reused;
        });
    }

    fn included(&self, snapshot_path: &Path) -> bool {
        match &self.includes {
            None => true,
            Some(set) => snapshot_path.ancestors().any(|p| set.is_match(p)),
        }
    }

    fn meta_result(&self, path: &Path, result: io::Result<()>) {
        if let Err(e) = result {
            self.warn(format!("{}: cannot restore metadata: {e}", path.display()));
        }
    }

    /// A regular file's metadata, through the descriptor it was written or checked through.
    fn apply_file_meta(&self, path: &Path, file: &fs::File, meta: &Metadata) {
        self.meta_result(path, meta::apply_fd(file, meta, self.chown));
    }

    /// A directory's metadata, through its descriptor.
    fn apply_dir_meta(&self, dir: &Dir, meta: &Metadata) {
        let result = dir.fd().and_then(|fd| meta::apply_fd(fd, meta, self.chown));
        self.meta_result(dir.path(), result);
    }

    /// The metadata of the symlink, FIFO or device node (`kind`) `name` in `dir`.
    fn apply_other_meta(&self, dir: &Dir, name: &OsStr, meta: &Metadata, kind: &EntryKind) {
        let Ok(fd) = dir.fd() else {
            return;
        };
        let result = match kind {
            EntryKind::Symlink(_) => meta::apply_symlink(fd, name, meta, self.chown),
            _ => meta::apply_node(fd, name, meta, self.chown, |stat| {
                let format = stat.st_mode & libc::S_IFMT;
                match kind {
                    EntryKind::Fifo => format == libc::S_IFIFO,
                    EntryKind::CharDevice { rdev } => {
                        format == libc::S_IFCHR && stat.st_rdev == *rdev
                    }
                    EntryKind::BlockDevice { rdev } => {
                        format == libc::S_IFBLK && stat.st_rdev == *rdev
                    }
                    _ => false,
                }
            }),
        };
        self.meta_result(&dir.display(name), result);
    }

    /// Whether the metadata of an entry left in place (`stat`) differs from the snapshot's.
    fn meta_differs(&self, stat: &fs::Metadata, meta: &Metadata, is_symlink: bool) -> bool {
        (!is_symlink && stat.mode() & 0o7777 != meta.mode)
            || !same_mtime(stat, meta)
            || (self.chown && (stat.uid(), stat.gid()) != (meta.uid, meta.gid))
    }

    /// Delta: applies the metadata of a symlink or node left in place if it differs, counting
    /// the fix.
    fn fix_meta(
        &self,
        dir: &Dir,
        name: &OsStr,
        meta: &Metadata,
        stat: &fs::Metadata,
        kind: &EntryKind,
    ) {
        if self.meta_differs(stat, meta, matches!(kind, EntryKind::Symlink(_))) {
            if self.plan.makes_changes() {
                self.apply_other_meta(dir, name, meta, kind);
            }
            self.count(|r| r.metadata_updated += 1);
        }
    }

    /// `keep_going`: records `path` as left out when `error` is damage in the repository (and
    /// then returns `Ok`); any other error, or any error without `keep_going`, is returned.
    fn damage(&self, path: &Path, error: Error) -> Result<()> {
        let leave_out = self.plan.on_damage == OnDamage::LeaveOut;
        if !leave_out || error.kind() != crate::error::ErrorKind::Repository {
            return Err(error);
        }
        let message = format!("{}: {error}", path.display());
        self.report.lock().unwrap().damaged.push(message);
        Ok(())
    }

    /// Restores the entries of `tree` into the existing directory `dir`. Returns whether anything
    /// was restored (for `--include`, empty directories are removed again).
    fn restore_tree(
        &self,
        tree: &Tree,
        dir: &Dir,
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
        if let Some(delta) = self.plan.delta() {
            self.sweep(tree, dir, snapshot_dir, delta.extra)?;
        }
        Ok(results.into_iter().any(|r| r))
    }

    /// Delta: removes what `dir` holds that `tree` does not — with `--delete` (within the
    /// `--include` patterns), and always the temporary files of an interrupted delta restore.
    fn sweep(&self, tree: &Tree, dir: &Dir, snapshot_dir: &Path, extra: Extra) -> Result<()> {
        let names = dir.names().at(dir.path())?;
        for name in names {
            if tree.find(name.as_bytes()).is_some() {
                continue;
            }
            let temp = name.as_bytes().starts_with(TEMP_PREFIX.as_bytes());
            let wanted = extra == Extra::Delete && self.included(&snapshot_dir.join(&name));
            if !temp && !wanted {
                continue;
            }
            if self.plan.makes_changes() {
                dir.prepare_name(&name, true)?;
            }
            if !temp {
                self.count(|r| r.deleted += 1);
            }
        }
        Ok(())
    }

    fn restore_entry(
        &self,
        entry: &Entry,
        dir: &Dir,
        dir_meta: Option<&Metadata>,
        snapshot_dir: &Path,
        depth: usize,
    ) -> Result<bool> {
        let name = target::child(&entry.name)?;
        let path = dir.display(name);
        let snapshot_path = snapshot_dir.join(OsStr::from_bytes(&entry.name));
        let wanted = self.included(&snapshot_path);
        let at = At { dir, name, path };
        match &entry.kind {
            EntryKind::Dir(id) => self.restore_dir(entry, *id, at, &snapshot_path, wanted, depth),
            _ if !wanted => Ok(false),
            EntryKind::File(data) => self.restore_file(entry, data, at, dir_meta),
            EntryKind::Symlink(target_bytes) => self.restore_symlink(entry, target_bytes, at),
            EntryKind::Fifo | EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. } => {
                self.restore_node(entry, at)
            }
        }
    }

    /// A directory entry: its tree first (a damaged tree is not created), then its children,
    /// then (unless links into it come later) its metadata.
    fn restore_dir(
        &self,
        entry: &Entry,
        id: crate::id::TreeId,
        at: At<'_>,
        snapshot_path: &Path,
        wanted: bool,
        depth: usize,
    ) -> Result<bool> {
        let At { dir, name, path } = at;
        if !self.plan.makes_changes() {
            let tree = match self.read_tree(id) {
                Ok(tree) => tree,
                Err(e) => {
                    self.problem(&path, &e);
                    return Ok(false);
                }
            };
            let child = dir.open_or_absent(name);
            let any = self.restore_tree(&tree, &child, None, snapshot_path, depth + 1)?;
            if wanted || any {
                self.count(|r| r.dirs += 1);
            }
            return Ok(wanted || any);
        }
        // Read first: a directory whose tree is damaged is not created.
        let tree = match self.read_tree(id) {
            Ok(tree) => tree,
            Err(e) => return self.damage(&path, e).map(|()| false),
        };
        let child = self.make_dir(dir, name)?;
        let any = self.restore_tree(&tree, &child, Some(&entry.meta), snapshot_path, depth + 1)?;
        if !wanted && !any {
            drop(child);
            dir.remove_empty_dir(name)?;
            return Ok(false);
        }
        // Children are all restored; links into this directory come later, and then
        // its metadata is applied by `finish_links`.
        if !self.link_dirs.lock().unwrap().contains(&path) {
            self.apply_dir_meta(&child, &entry.meta);
        }
        self.count(|r| r.dirs += 1);
        Ok(true)
    }

    /// A file entry: a hard link to a file restored before (made at the end), or its content.
    fn restore_file(
        &self,
        entry: &Entry,
        data: &FileData,
        at: At<'_>,
        dir_meta: Option<&Metadata>,
    ) -> Result<bool> {
        let At { dir, name, path } = at;
        if data.hardlinked {
            let key = (entry.meta.dev, entry.meta.inode);
            let mut links = self.links.lock().unwrap();
            if links.contains_key(&key) {
                self.link_dirs
                    .lock()
                    .unwrap()
                    .insert(dir.path().to_path_buf());
                self.pending_links.lock().unwrap().push(PendingLink {
                    path,
                    key,
                    dir: dir.path().to_path_buf(),
                    dir_meta: dir_meta.cloned(),
                });
                return Ok(true);
            }
            links.insert(key, path.clone());
        }
        let at = At { dir, name, path };
        let result = match (self.plan.changes, self.plan.target) {
            (Changes::Count { content }, _) => {
                self.check_file(&at, &entry.meta, data, content);
                Ok(())
            }
            (Changes::Make, TargetMode::Delta(delta)) => {
                self.delta_file(&at, &entry.meta, data, delta)
            }
            (Changes::Make, TargetMode::Fresh | TargetMode::Overwrite) => {
                self.new_file(&at, &entry.meta, data)
            }
        };
        let path = at.path;
        if let Err(e) = result {
            self.damage(&path, e)?;
            if data.hardlinked {
                let key = (entry.meta.dev, entry.meta.inode);
                self.damaged_links.lock().unwrap().insert(key);
            }
            return Ok(false);
        }
        self.count(|r| r.files += 1);
        self.progress.file_done();
        Ok(true)
    }

    fn restore_symlink(&self, entry: &Entry, target_bytes: &[u8], at: At<'_>) -> Result<bool> {
        let At { dir, name, path: _ } = at;
        if self.plan.delta().is_some() {
            if let Some(stat) = dir.stat(name)? {
                let same = stat.file_type().is_symlink() && dir.read_link(name)? == target_bytes;
                if same {
                    self.fix_meta(dir, name, &entry.meta, &stat, &entry.kind);
                    self.count(|r| r.symlinks += 1);
                    return Ok(true);
                }
            }
        }
        if self.plan.makes_changes() {
            dir.prepare_name(name, self.plan.replaces())?;
            dir.symlink(target_bytes, name)?;
            self.apply_other_meta(dir, name, &entry.meta, &entry.kind);
        }
        self.count(|r| r.symlinks += 1);
        Ok(true)
    }

    /// A FIFO or device node (devices only as root).
    fn restore_node(&self, entry: &Entry, at: At<'_>) -> Result<bool> {
        let At { dir, name, path } = at;
        let (kind, rdev) = match entry.kind {
            EntryKind::Fifo => (libc::S_IFIFO, 0),
            EntryKind::CharDevice { rdev } => (libc::S_IFCHR, rdev),
            EntryKind::BlockDevice { rdev } => (libc::S_IFBLK, rdev),
            _ => unreachable!(),
        };
        if self.plan.delta().is_some() {
            if let Some(stat) = dir.stat(name)?.filter(|s| same_node(s, &entry.kind)) {
                self.fix_meta(dir, name, &entry.meta, &stat, &entry.kind);
                self.count(|r| r.special += 1);
                return Ok(true);
            }
        }
        if kind != libc::S_IFIFO && !self.chown {
            self.warn(format!(
                "{}: {} not restored (needs root)",
                path.display(),
                entry.kind.name()
            ));
            return Ok(false);
        }
        if self.plan.makes_changes() {
            dir.prepare_name(name, self.plan.replaces())?;
            dir.make_node(name, kind, rdev, entry.meta.mode)?;
            self.apply_other_meta(dir, name, &entry.meta, &entry.kind);
        }
        self.count(|r| r.special += 1);
        Ok(true)
    }

    fn read_tree(&self, id: crate::id::TreeId) -> Result<Tree> {
        let reader = self.repo.index().reader()?;
        self.repo.read_tree(&reader, id)
    }

    /// A directory to restore into. In a delta restore an existing one is kept (made writable
    /// for its owner until its metadata is applied) and anything else at its name replaced.
    fn make_dir(&self, parent: &Dir, name: &OsStr) -> Result<Dir> {
        let dir = parent.create_dir(name, self.plan.replaces())?;
        if self.plan.delta().is_some() {
            let path = dir.path();
            let fd = dir.fd().at(path)?;
            let mode = rustix::fs::fstat(fd)
                .map_err(io::Error::from)
                .at(path)?
                .st_mode;
            if mode & 0o700 != 0o700 {
                rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode((mode | 0o700) & 0o7777))
                    .map_err(io::Error::from)
                    .at(path)?;
            }
        }
        Ok(dir)
    }

    fn reuse<'r>(&'r self, path: &'r Arc<PathBuf>) -> Reuse<'r> {
        Reuse {
            restored: self.restored,
            path: self.restored.map(|_| path),
            ..Reuse::default()
        }
    }

    /// A file written whole into a new file at `path` (whatever was there is replaced).
    fn new_file(&self, at: &At, meta: &Metadata, data: &FileData) -> Result<()> {
        let path = &at.path;
        let file = at.dir.create_file(at.name, self.plan.replaces())?;
        let final_path = Arc::new(path.to_path_buf());
        // Not fsynced, like cp, tar and restic: the repository keeps the durable copy,
        // and an fsync per file would make a restore wait for the disk file by file.
        let stats = match write::write_content(
            self.repo,
            &file,
            path,
            data,
            self.progress,
            self.reuse(&final_path),
        ) {
            Ok(stats) => stats,
            Err(e) => {
                // Never left at its name looking complete.
                drop(file);
                at.dir.discard(at.name);
                return Err(e);
            }
        };
        self.apply_file_meta(path, &file, meta);
        self.count_write(stats);
        self.count(|r| r.files_written += 1);
        Ok(())
    }

    /// Creates the hard links recorded during the walk, then applies the metadata of their
    /// directories, which was held back (creating a link changes a directory's mtime, and a
    /// read-only directory would refuse the link).
    fn finish_links(&self, root: &Dir) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending_links.lock().unwrap());
        let links = self.links.lock().unwrap();
        let mut dirs: HashMap<PathBuf, Metadata> = HashMap::new();
        let damaged = std::mem::take(&mut *self.damaged_links.lock().unwrap());
        let makes_changes = self.plan.makes_changes();
        let delta = self.plan.delta().is_some();
        for link in pending {
            let first = links
                .get(&link.key)
                .expect("first link recorded before later ones");
            if let (Some(meta), true) = (&link.dir_meta, makes_changes) {
                dirs.insert(link.dir.clone(), meta.clone());
            }
            if damaged.contains(&link.key) {
                let message = format!(
                    "{}: a hard link to {}, which is damaged",
                    link.path.display(),
                    first.display()
                );
                self.count(|r| r.damaged.push(message));
                if makes_changes {
                    // Whatever an earlier restore left at this name is not the snapshot's file.
                    let (dir, name) = below(root, &link.path)?;
                    dir.prepare_name(name, delta)?;
                }
                continue;
            }
            self.count(|r| r.hardlinks += 1);
            if !makes_changes {
                continue;
            }
            let (dir, name) = below(root, &link.path)?;
            let (first_dir, first_name) = below(root, first)?;
            let linked = match (dir.stat(name)?, first_dir.stat(first_name)?) {
                (Some(a), Some(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
                _ => false,
            };
            if !(delta && linked) {
                dir.prepare_name(name, self.plan.replaces())?;
                dir.hard_link(&first_dir, first_name, name)?;
            }
        }
        for (path, meta) in &dirs {
            let rel = path.strip_prefix(root.path()).unwrap_or(path);
            match root.open_below(rel) {
                Ok(dir) => self.apply_dir_meta(&dir, meta),
                Err(e) => self.meta_result(path, Err(e)),
            }
        }
        Ok(())
    }
}

/// The directory of `path` (an entry under `root`, as [`Dir::display`] made it), opened from
/// `root` one name at a time, and the entry's name.
fn below<'p>(root: &Dir, path: &'p Path) -> Result<(Dir, &'p OsStr)> {
    let name = path.file_name().expect("an entry path ends in its name");
    let parent = path.parent().unwrap_or(Path::new(""));
    let rel = parent.strip_prefix(root.path()).unwrap_or(parent);
    let dir = root.open_below(rel).at(parent)?;
    Ok((dir, name))
}

/// Raises the soft limit of open files to the hard one: the walk holds one directory
/// descriptor per level (up to [`MAX_TREE_DEPTH`]) on each worker, more than a soft limit of
/// 1024 allows. A failure leaves the limit as it was (deep trees then fail with EMFILE).
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum || (limit.current.is_some() && limit.maximum.is_none()) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
}

/// Restores `snapshot` as `options` say.
pub fn run(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    repo.io_scope(|| {
        // Prune waits for registered readers before deleting packs (format-spec/09-rotation.md).
        let _reader = repo.register("restore", false)?;
        restore(repo, snapshot, options, None, progress)
    })
}

fn restore(
    repo: &Repository,
    snapshot: &SnapshotInfo,
    options: &RestoreOptions,
    restored: Option<&RestoredChunks>,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
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
    if options.target.as_os_str().is_empty() {
        return Err(Error::invalid(
            "--target",
            "is empty; name the directory to restore into (`.` for the current one)",
        ));
    }
    let plan = RestorePlan::new(options);
    if !plan.replaces() && !target::is_empty_or_missing(&options.target)? {
        return Err(Error::TargetNotEmpty {
            path: options.target.clone(),
        });
    }
    raise_open_file_limit();
    let root = match plan.changes {
        Changes::Count { .. } => Dir::open_existing(&options.target),
        Changes::Make => Dir::open_target(&options.target)?,
    };
    let restorer = Restorer {
        repo,
        plan,
        restored,
        chown: meta::can_chown(),
        includes,
        progress,
        report: Mutex::new(RestoreReport {
            dry_run: !plan.makes_changes(),
            ..RestoreReport::default()
        }),
        bytes: AtomicU64::new(0),
        links: Mutex::new(HashMap::new()),
        pending_links: Mutex::new(Vec::new()),
        link_dirs: Mutex::new(Default::default()),
        damaged_links: Mutex::new(Default::default()),
    };
    for notice in overlap::overlaps(repo, snapshot, &options.target) {
        progress.warning(&notice);
        restorer.report.lock().unwrap().notices.push(notice);
    }
    if options.subpath.is_none() && options.includes.is_empty() {
        let summary = &snapshot.manifest.summary;
        progress.total(summary.files, summary.bytes_total);
    }
    let snapshot_base = PathBuf::from(format!("/{}", subpath.trim_matches('/')));
    match &entry.kind {
        EntryKind::Dir(id) => {
            let tree = restorer.read_tree(*id)?;
            // The snapshot root has no metadata of its own; a restored directory's goes on the target.
            let target_meta = (!entry.name.is_empty()).then_some(&entry.meta);
            // On a pool worker, whose stack is sized for MAX_TREE_DEPTH levels: a directory of
            // one entry is walked on the calling thread, so a deep chain would recurse there.
            rayon::scope(|_| restorer.restore_tree(&tree, &root, target_meta, &snapshot_base, 0))?;
            restorer.finish_links(&root)?;
            if let (Some(meta), true) = (target_meta, plan.makes_changes()) {
                restorer.apply_dir_meta(&root, meta);
            }
        }
        _ => {
            let parent = snapshot_base
                .parent()
                .unwrap_or(Path::new("/"))
                .to_path_buf();
            restorer.restore_entry(&entry, &root, None, &parent, 0)?;
            restorer.finish_links(&root)?;
        }
    }
    let mut report = restorer.report.into_inner().unwrap();
    report.bytes_written = restorer.bytes.into_inner();
    Ok(report)
}
