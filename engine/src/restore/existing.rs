//! A file already at the target (`--delta`, `--dry-run`): examined, kept, patched in place,
//! rebuilt beside itself from its own chunks, or written new, whichever moves the least; in a
//! dry run, counted and (with `--verify`) its content checked. Metadata is applied only through
//! the descriptor of the file this run wrote or hashed, and privileged metadata (owner,
//! setuid, setgid, sticky) only to content this run wrote.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::OFlags;

use super::delta::{self, OldFile, Source};
use super::plan::{Compare, ContentCheck, Delta, OnDamage};
use super::write::{self, Reuse};
use super::{same_mtime, At, Restorer, TEMP_PREFIX};
use crate::error::{Error, IoContext, Result};
use crate::format::tree::{FileData, Metadata};
use crate::meta;
use crate::repo::content;

/// What a delta restore finds at the name of a file entry.
pub(super) enum Existing {
    /// Nothing, or not a regular file: the file is written new.
    None,
    /// The snapshot's file, left alone.
    Unchanged,
    /// Another file: its chunks and the plan. `replace`: it must not be kept or patched in
    /// place (other names, or privileged metadata to apply), only replaced.
    Changed {
        old: OldFile,
        plan: delta::Plan,
        stat: Box<fs::Metadata>,
        replace: bool,
    },
}

impl Restorer<'_> {
    /// Delta: what is at `path` for the file entry `meta`/`data`. A file kept (its size and
    /// mtime match and nothing privileged is to change, or its content hashes to the
    /// snapshot's) is counted as unchanged and its metadata fixed through the descriptor it was
    /// checked through. A file with other names (link count above 1: a hard link this restore
    /// did not make, perhaps to a file outside the target) or whose owner or setuid, setgid or
    /// sticky bits would change is never kept: it is replaced by a file this restore writes.
    fn examine(
        &self,
        at: &At,
        meta: &Metadata,
        data: &FileData,
        compare: Compare,
    ) -> Result<Existing> {
        let path = &at.path;
        let Some(seen) = at.dir.stat(at.name)?.filter(|s| s.file_type().is_file()) else {
            return Ok(Existing::None);
        };
        // Non-blocking and no controlling terminal, in case it was swapped for a node since.
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let file = match at.dir.open_file(at.name, flags, 0) {
            Ok(file) => file,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOENT)) => {
                return Ok(Existing::None)
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let stat = file.metadata().at(path)?;
        if !stat.is_file() || (stat.dev(), stat.ino()) != (seen.dev(), seen.ino()) {
            return Ok(Existing::None);
        }
        let replace = stat.nlink() > 1 || meta::privileged_change(&stat, meta, self.chown);
        let by_stat = compare == Compare::SizeAndMtime;
        if !replace && by_stat && stat.len() == data.size && same_mtime(&stat, meta) {
            self.unchanged(path, meta, data, &file, &stat);
            return Ok(Existing::Unchanged);
        }
        let old = OldFile::scan(self.repo, file, path, data.profile)?;
        let plan = delta::plan(self.repo, data, &old)?;
        if !replace && plan.unchanged(data.size, old.len) {
            self.unchanged(path, meta, data, &old.file, &stat);
            return Ok(Existing::Unchanged);
        }
        Ok(Existing::Changed {
            old,
            plan,
            stat: Box::new(stat),
            replace,
        })
    }

    /// Delta: counts a file left alone and fixes its (unprivileged) metadata through `file`.
    fn unchanged(
        &self,
        path: &Path,
        meta: &Metadata,
        data: &FileData,
        file: &fs::File,
        stat: &fs::Metadata,
    ) {
        if self.meta_differs(stat, meta, false) {
            if self.plan.makes_changes() {
                self.apply_file_meta(path, file, meta);
            }
            self.count(|r| r.metadata_updated += 1);
        }
        self.count(|r| {
            r.files_unchanged += 1;
            r.bytes_unchanged += data.size;
        });
        self.progress.bytes(data.size);
    }

    /// Delta: leaves the file alone, patches it, rebuilds it from its reusable chunks, or writes
    /// it new, whichever moves the least.
    pub(super) fn delta_file(
        &self,
        at: &At,
        meta: &Metadata,
        data: &FileData,
        delta: Delta,
    ) -> Result<()> {
        let path = &at.path;
        let (old, plan, stat, replace) = match self.examine(at, meta, data, delta.compare)? {
            Existing::None => return self.new_file(at, meta, data),
            Existing::Unchanged => return Ok(()),
            Existing::Changed {
                old,
                plan,
                stat,
                replace,
            } => (old, plan, stat, replace),
        };
        let final_path = Arc::new(path.to_path_buf());
        let reuse = self.reuse(&final_path);
        if !replace && plan.in_place(data.size) {
            if let Some(file) = self.open_to_patch(at, &old.file, &stat)? {
                // Moved chunks are fetched: their old bytes may be overwritten before they are
                // read.
                let sources: Vec<Source> = plan
                    .sources
                    .iter()
                    .map(|s| match s {
                        Source::Old(_) => Source::Fetch,
                        other => *other,
                    })
                    .collect();
                let result = write::write_content(
                    self.repo,
                    &file,
                    path,
                    data,
                    self.progress,
                    Reuse {
                        plan: Some(&sources),
                        ..reuse
                    },
                );
                let stats = match result {
                    Ok(stats) => stats,
                    Err(e) => {
                        // Half patched: neither the old file nor the snapshot's.
                        drop(file);
                        at.dir.discard(at.name);
                        return Err(e);
                    }
                };
                self.apply_file_meta(path, &file, meta);
                self.count_write(stats);
                self.count(|r| r.files_patched += 1);
                return Ok(());
            }
        }
        // Rebuilt beside it and renamed over it: the old file stays whole until then.
        let (temp, file) = at.dir.create_temp(TEMP_PREFIX)?;
        let result = write::write_content(
            self.repo,
            &file,
            &at.dir.display(&temp),
            data,
            self.progress,
            Reuse {
                plan: Some(&plan.sources),
                old: Some(&old),
                ..reuse
            },
        );
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                drop(file);
                at.dir.discard(&temp);
                if self.plan.on_damage == OnDamage::LeaveOut {
                    // The old file is not the snapshot's: it must not look restored.
                    at.dir.discard(at.name);
                }
                return Err(e);
            }
        };
        self.apply_file_meta(&at.dir.display(&temp), &file, meta);
        drop(file);
        at.dir.rename(&temp, at.name)?;
        self.count_write(stats);
        if stats.reused > 0 {
            self.count(|r| r.files_patched += 1);
        } else {
            self.count(|r| r.files_written += 1);
        }
        Ok(())
    }

    /// Delta: the file examined (`old`, `stat`) opened for writing in place, or `None` when the
    /// name no longer leads to that file or the file has gained another name.
    fn open_to_patch(
        &self,
        at: &At,
        old: &fs::File,
        stat: &fs::Metadata,
    ) -> Result<Option<fs::File>> {
        let path = &at.path;
        if stat.mode() & 0o200 == 0 {
            rustix::fs::fchmod(
                old,
                rustix::fs::Mode::from_raw_mode((stat.mode() | 0o200) & 0o7777),
            )
            .map_err(io::Error::from)
            .at(path)?;
        }
        let file = at
            .dir
            .open_file(
                at.name,
                OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
                0,
            )
            .at(path)?;
        let now = file.metadata().at(path)?;
        let same = now.is_file() && (now.dev(), now.ino()) == (stat.dev(), stat.ino());
        Ok((same && now.nlink() == 1).then_some(file))
    }

    /// Dry run: what the restore would do with this file; with verify, every chunk of a file
    /// it would write is read and checked. Problems are recorded, not returned.
    pub(super) fn check_file(
        &self,
        at: &At,
        meta: &Metadata,
        data: &FileData,
        check: ContentCheck,
    ) {
        let result = (|| -> Result<()> {
            if let Some(delta) = self.plan.delta() {
                match self.examine(at, meta, data, delta.compare)? {
                    Existing::None => {}
                    Existing::Unchanged => return Ok(()),
                    Existing::Changed { plan, .. } => {
                        self.count(|r| {
                            r.files_patched += 1;
                            r.bytes_reused += plan.in_place_bytes + plan.moved_bytes;
                        });
                        return self.check_content(data, check);
                    }
                }
            }
            self.count(|r| r.files_written += 1);
            self.check_content(data, check)
        })();
        if let Err(e) = result {
            self.problem(&at.path, &e);
        }
    }

    fn check_content(&self, data: &FileData, check: ContentCheck) -> Result<()> {
        if check == ContentCheck::Skip {
            return Ok(());
        }
        let mut checked = 0u64;
        content::read_content(self.repo, data, |piece| {
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
}
