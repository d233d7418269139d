//! Stage 1, walk: list a directory's entries with their `lstat`, sorted by name bytes, minus
//! the excluded ones. Output: [`SourceEntry`] values.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::paths::kind_of;

use globset::{GlobSet, GlobSetBuilder};

/// One directory entry found by the walk.
pub struct SourceEntry {
    pub name: OsString,
    pub path: PathBuf,
    pub stat: fs::Metadata,
}

/// `--exclude` patterns. A pattern with a `/` matches the whole absolute path; one without
/// matches the entry's name (so `*.tmp` excludes every `.tmp` file, `/srv/cache` one directory).
pub struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
}

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Excludes, String> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let glob = globset::GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("--exclude {p:?}: {e}"))?;
            if p.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        Ok(Excludes {
            by_path: by_path.build().map_err(|e| e.to_string())?,
            by_name: by_name.build().map_err(|e| e.to_string())?,
        })
    }

    pub fn excluded(&self, path: &Path) -> bool {
        self.by_path.is_match(path) || path.file_name().is_some_and(|n| self.by_name.is_match(n))
    }
}

/// The entries of directory `dir` (listed by its parent with `lstat` `listed`), sorted by name
/// bytes, excluded ones removed. Entries that vanish between listing and `lstat` are skipped
/// (they were not there to back up).
///
/// The directory is opened without following a symlink and must be the one listed (same device
/// and inode): a symlink put in its place after its parent was listed is never followed, and
/// the listing fails with what is there now. Its entries are read through the open directory
/// (`/proc/self/fd/N`; by path where `/proc` is not mounted).
///
/// Each entry is `lstat`ed relative to the open directory (`fstatat`), not by its absolute
/// path: an entry whose absolute path is longer than `PATH_MAX` must not fail the listing of
/// its directory (and so lose its siblings); it fails alone, later, where it is opened.
pub fn list_dir(
    dir: &Path,
    listed: &fs::Metadata,
    excludes: &Excludes,
) -> io::Result<Vec<SourceEntry>> {
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir);
    let handle = match opened {
        Ok(handle) => handle,
        Err(e) => {
            return Err(match fs::symlink_metadata(dir) {
                Ok(now) if !same_dir(listed, &now) => replaced(&now),
                _ => e,
            })
        }
    };
    let now = handle.metadata()?;
    if !same_dir(listed, &now) {
        return Err(replaced(&now));
    }
    let through_fd = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let entries = match fs::read_dir(&through_fd) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::read_dir(dir)?,
        other => other?,
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = dir.join(entry.file_name());
        if excludes.excluded(&path) {
            continue;
        }
        // `DirEntry::metadata` is `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)` on Linux.
        match entry.metadata() {
            Ok(stat) => out.push(SourceEntry {
                name: entry.file_name(),
                path,
                stat,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(out)
}

fn same_dir(listed: &fs::Metadata, now: &fs::Metadata) -> bool {
    now.is_dir() && (now.dev(), now.ino()) == (listed.dev(), listed.ino())
}

fn replaced(now: &fs::Metadata) -> io::Error {
    io::Error::other(format!(
        "was replaced by {} while the snapshot ran",
        kind_of(now)
    ))
}
