//! Restore: recreate a snapshot (or one path of it) under a target directory.
//!
//! Directories are restored depth-first, their children in parallel; file content is fetched in
//! parallel batches with every chunk's digest checked before it is written ([`write`]).
//! Metadata is applied after content: files right after writing, directories after all their
//! children. Hard-linked files (equal `(dev, inode)` in one snapshot) are written once and linked
//! afterwards. All paths under the target are made by [`target`] alone.

pub mod bulk;
pub(crate) mod content;
mod delta;
pub mod dump;
pub mod target;
pub mod write;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use self::delta::{OldFile, Source};
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

/// Names of the temporary files a delta restore rebuilds files in; one left by an interrupted
/// run is removed by the next delta restore of that directory.
const TEMP_PREFIX: &str = ".vault-restore-";

struct Restorer<'a> {
    repo: &'a Repository,
    overwrite: bool,
    delta: bool,
    verify_existing: bool,
    delete: bool,
    dry_run: bool,
    verify: bool,
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
}

/// What is at a target path now (`lstat`; never follows a symlink).
fn existing(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // A path below something that is not a directory (a dry run over a changed tree).
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
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

    fn apply_meta(&self, path: &Path, meta: &Metadata, is_symlink: bool) {
        if let Err(e) = meta::apply(path, meta, is_symlink, self.chown) {
            self.warn(format!("{}: cannot restore metadata: {e}", path.display()));
        }
    }

    /// Delta: applies the metadata of an entry left in place if it differs, counting the fix.
    fn fix_meta(&self, path: &Path, meta: &Metadata, stat: &fs::Metadata, is_symlink: bool) {
        let differs = (!is_symlink && stat.mode() & 0o7777 != meta.mode)
            || !same_mtime(stat, meta)
            || (self.chown && (stat.uid(), stat.gid()) != (meta.uid, meta.gid));
        if differs {
            if !self.dry_run {
                self.apply_meta(path, meta, is_symlink);
            }
            self.count(|r| r.metadata_updated += 1);
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
        if self.delta {
            self.sweep(tree, dir, snapshot_dir)?;
        }
        Ok(results.into_iter().any(|r| r))
    }

    /// Delta: removes what `dir` holds that `tree` does not — with `--delete` (within the
    /// `--include` patterns), and always the temporary files of an interrupted delta restore.
    fn sweep(&self, tree: &Tree, dir: &Path, snapshot_dir: &Path) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if self.dry_run && matches!(e.kind(), io::ErrorKind::NotFound) => return Ok(()),
            Err(e) if self.dry_run && e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(()),
            Err(e) => return Err(Error::io(dir, e)),
        };
        for item in entries {
            let item = item.at(dir)?;
            let name = item.file_name();
            if tree.find(name.as_bytes()).is_some() {
                continue;
            }
            let temp = name.as_bytes().starts_with(TEMP_PREFIX.as_bytes());
            let wanted = self.delete && self.included(&snapshot_dir.join(&name));
            if !temp && !wanted {
                continue;
            }
            let path = dir.join(&name);
            if !self.dry_run {
                target::prepare_name(&path, true)?;
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
                if self.dry_run {
                    let tree = match self.read_tree(*id) {
                        Ok(tree) => tree,
                        Err(e) => {
                            self.problem(&path, &e);
                            return Ok(false);
                        }
                    };
                    let any = self.restore_tree(&tree, &path, None, &snapshot_path, depth + 1)?;
                    if wanted || any {
                        self.count(|r| r.dirs += 1);
                    }
                    return Ok(wanted || any);
                }
                self.make_dir(&path)?;
                let tree = self.read_tree(*id)?;
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
                if self.dry_run {
                    self.check_file(&path, &entry.meta, data);
                } else if self.delta {
                    self.delta_file(&path, &entry.meta, data)?;
                } else {
                    self.new_file(&path, &entry.meta, data)?;
                }
                self.count(|r| r.files += 1);
                self.progress.file_done();
                Ok(true)
            }
            EntryKind::Symlink(target_bytes) => {
                if self.delta {
                    if let Some(stat) = existing(&path)? {
                        let same = stat.file_type().is_symlink()
                            && fs::read_link(&path).at(&path)?.as_os_str().as_bytes()
                                == target_bytes.as_slice();
                        if same {
                            self.fix_meta(&path, &entry.meta, &stat, true);
                            self.count(|r| r.symlinks += 1);
                            return Ok(true);
                        }
                    }
                }
                if !self.dry_run {
                    target::prepare_name(&path, self.overwrite)?;
                    std::os::unix::fs::symlink(OsStr::from_bytes(target_bytes), &path).at(&path)?;
                    self.apply_meta(&path, &entry.meta, true);
                }
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
                if self.delta {
                    if let Some(stat) = existing(&path)?.filter(|s| same_node(s, &entry.kind)) {
                        self.fix_meta(&path, &entry.meta, &stat, false);
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
                if !self.dry_run {
                    target::prepare_name(&path, self.overwrite)?;
                    meta::make_node(&path, kind, rdev, entry.meta.mode).at(&path)?;
                    self.apply_meta(&path, &entry.meta, false);
                }
                self.count(|r| r.special += 1);
                Ok(true)
            }
        }
    }

    fn read_tree(&self, id: crate::id::TreeId) -> Result<Tree> {
        let reader = self.repo.index().reader()?;
        self.repo.read_tree(&reader, id)
    }

    /// A directory to restore into. In a delta restore an existing one is kept (made writable
    /// for its owner until its metadata is applied) and anything else at its name replaced.
    fn make_dir(&self, path: &Path) -> Result<()> {
        target::create_dir(path, self.overwrite)?;
        if self.delta {
            let stat = fs::symlink_metadata(path).at(path)?;
            if stat.mode() & 0o700 != 0o700 {
                fs::set_permissions(path, fs::Permissions::from_mode(stat.mode() | 0o700))
                    .at(path)?;
            }
        }
        Ok(())
    }

    fn reuse<'r>(&'r self, path: &'r Arc<PathBuf>) -> Reuse<'r> {
        Reuse {
            restored: self.restored,
            path: self.restored.map(|_| path),
            ..Reuse::default()
        }
    }

    /// A file written whole into a new file at `path` (whatever was there is replaced).
    fn new_file(&self, path: &Path, meta: &Metadata, data: &FileData) -> Result<()> {
        let file = target::create_file(path, self.overwrite)?;
        let final_path = Arc::new(path.to_path_buf());
        // Not fsynced, like cp, tar and restic: the repository keeps the durable copy,
        // and an fsync per file would make a restore wait for the disk file by file.
        let stats = write::write_content(
            self.repo,
            &file,
            path,
            data,
            self.progress,
            self.reuse(&final_path),
        )?;
        drop(file);
        self.apply_meta(path, meta, false);
        self.count_write(stats);
        self.count(|r| r.files_written += 1);
        Ok(())
    }

    /// The existing regular file at `path`, when a delta restore may keep some of it.
    fn existing_file(&self, path: &Path) -> Result<Option<fs::Metadata>> {
        Ok(existing(path)?.filter(|s| s.file_type().is_file()))
    }

    /// Delta: the existing regular file at `path` (none: missing or another type), and unless
    /// it is unchanged (then counted as such, its metadata fixed) its chunks and the plan.
    fn examine(
        &self,
        path: &Path,
        meta: &Metadata,
        data: &FileData,
    ) -> Result<Option<(fs::Metadata, Option<(OldFile, delta::Plan)>)>> {
        let Some(stat) = self.existing_file(path)? else {
            return Ok(None);
        };
        let unchanged = |stat: fs::Metadata| {
            self.fix_meta(path, meta, &stat, false);
            self.count(|r| {
                r.files_unchanged += 1;
                r.bytes_unchanged += data.size;
            });
            self.progress.bytes(data.size);
            Ok(Some((stat, None)))
        };
        if !self.verify_existing && stat.len() == data.size && same_mtime(&stat, meta) {
            return unchanged(stat);
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .at(path)?;
        let old = OldFile::scan(self.repo, file, path, data.profile)?;
        let plan = delta::plan(self.repo, data, &old)?;
        if plan.unchanged(data.size, old.len) {
            return unchanged(stat);
        }
        Ok(Some((stat, Some((old, plan)))))
    }

    /// Delta: leaves the file alone, patches it, rebuilds it from its reusable chunks, or writes
    /// it new, whichever moves the least.
    fn delta_file(&self, path: &Path, meta: &Metadata, data: &FileData) -> Result<()> {
        let Some((stat, changed)) = self.examine(path, meta, data)? else {
            return self.new_file(path, meta, data);
        };
        let Some((old, plan)) = changed else {
            return Ok(());
        };
        let final_path = Arc::new(path.to_path_buf());
        let reuse = self.reuse(&final_path);
        // In place only where no other name shares the inode (a hard link outside the snapshot).
        if plan.in_place(data.size) && stat.nlink() == 1 {
            if stat.mode() & 0o200 == 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(stat.mode() | 0o200))
                    .at(path)?;
            }
            let file = fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .at(path)?;
            // Moved chunks are fetched: their old bytes may be overwritten before they are read.
            let sources: Vec<Source> = plan
                .sources
                .iter()
                .map(|s| match s {
                    Source::Old(_) => Source::Fetch,
                    other => *other,
                })
                .collect();
            let stats = write::write_content(
                self.repo,
                &file,
                path,
                data,
                self.progress,
                Reuse {
                    plan: Some(&sources),
                    ..reuse
                },
            )?;
            drop(file);
            self.apply_meta(path, meta, false);
            self.count_write(stats);
            self.count(|r| r.files_patched += 1);
            return Ok(());
        }
        // Rebuilt beside it and renamed over it: the old file stays whole until then.
        let (temp, file) = target::create_temp_beside(path, TEMP_PREFIX)?;
        let result = write::write_content(
            self.repo,
            &file,
            &temp,
            data,
            self.progress,
            Reuse {
                plan: Some(&plan.sources),
                old: Some(&old),
                ..reuse
            },
        );
        drop(file);
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
        };
        self.apply_meta(&temp, meta, false);
        fs::rename(&temp, path).at(path)?;
        self.count_write(stats);
        if stats.reused > 0 {
            self.count(|r| r.files_patched += 1);
        } else {
            self.count(|r| r.files_written += 1);
        }
        Ok(())
    }

    /// Dry run: what the restore would do with this file; with verify, every chunk of a file
    /// it would write is read and checked. Problems are recorded, not returned.
    fn check_file(&self, path: &Path, meta: &Metadata, data: &FileData) {
        let result = (|| -> Result<()> {
            if self.delta {
                if let Some((_, changed)) = self.examine(path, meta, data)? {
                    let Some((_, plan)) = changed else {
                        return Ok(());
                    };
                    self.count(|r| {
                        r.files_patched += 1;
                        r.bytes_reused += plan.in_place_bytes + plan.moved_bytes;
                    });
                    return self.check_content(data);
                }
            }
            self.count(|r| r.files_written += 1);
            self.check_content(data)
        })();
        if let Err(e) = result {
            self.problem(path, &e);
        }
    }

    fn check_content(&self, data: &FileData) -> Result<()> {
        if !self.verify {
            return Ok(());
        }
        let mut checked = 0u64;
        write::fetch_content(self.repo, data, |piece| {
            checked += piece.len() as u64;
            self.progress.bytes(piece.len() as u64);
            Ok(())
        })?;
        self.count(|r| {
            r.bytes_verified += checked;
            r.bytes_fetched += checked;
        });
        Ok(())
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
            self.count(|r| r.hardlinks += 1);
            if self.dry_run {
                continue;
            }
            let linked = match (existing(&link.path)?, existing(first)?) {
                (Some(a), Some(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
                _ => false,
            };
            if !(self.delta && linked) {
                target::prepare_name(&link.path, self.overwrite)?;
                std::fs::hard_link(first, &link.path).at(&link.path)?;
            }
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
    let overwrite = options.overwrite || options.delta;
    if !overwrite && !target::is_empty_or_missing(&options.target)? {
        return Err(Error::TargetNotEmpty {
            path: options.target.clone(),
        });
    }
    if !options.dry_run {
        std::fs::create_dir_all(&options.target).at(&options.target)?;
    }
    let restorer = Restorer {
        repo,
        overwrite,
        delta: options.delta,
        verify_existing: options.verify_existing,
        delete: options.delete,
        dry_run: options.dry_run,
        verify: options.verify,
        restored,
        chown: meta::can_chown(),
        includes,
        progress,
        report: Mutex::new(RestoreReport {
            dry_run: options.dry_run,
            ..RestoreReport::default()
        }),
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
            let tree = restorer.read_tree(*id)?;
            // The snapshot root has no metadata of its own; a restored directory's goes on the target.
            let target_meta = (!entry.name.is_empty()).then_some(&entry.meta);
            restorer.restore_tree(&tree, &options.target, target_meta, &snapshot_base, 0)?;
            restorer.finish_links()?;
            if let (Some(meta), false) = (target_meta, options.dry_run) {
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
