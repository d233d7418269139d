//! The only code that turns snapshot names into paths under a restore target.
//!
//! Every name is checked again (the tree decoder already rejects `..`, `/`, NUL and empty
//! names); every directory on the way is created by the restore or checked with `lstat` to be a
//! real directory, never a symlink; files are created with `O_EXCL | O_NOFOLLOW`. So no entry of
//! any snapshot, however crafted, makes a restore write outside its target, and a symlink
//! restored earlier in the same run is never followed.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::tree::valid_name;

/// `parent/name`, refusing any name that is not a single plain component.
pub fn child(parent: &Path, name: &[u8]) -> Result<PathBuf> {
    if !valid_name(name) {
        return Err(Error::Corrupt {
            object: "snapshot tree".into(),
            reason: format!(
                "entry name {:?} would escape the restore target; refused",
                String::from_utf8_lossy(name)
            ),
        });
    }
    Ok(parent.join(std::ffi::OsStr::from_bytes(name)))
}

/// Removes whatever is at `path` without following symlinks (for `--overwrite`).
fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates directory `path`; an existing real directory is accepted, anything else at that name
/// is replaced when `overwrite`, an error otherwise.
pub fn create_dir(path: &Path, overwrite: bool) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(path).at(path)?;
            if meta.is_dir() {
                Ok(())
            } else if overwrite {
                remove_existing(path).at(path)?;
                fs::create_dir(path).at(path)
            } else {
                Err(Error::io(path, e))
            }
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Creates a new regular file for writing, never following a symlink at `path`.
pub fn create_file(path: &Path, overwrite: bool) -> Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && overwrite => {
            remove_existing(path).at(path)?;
            open().at(path)
        }
        other => other.at(path),
    }
}

/// Clears the way for a symlink, node or hard link at `path` when overwriting.
pub fn prepare_name(path: &Path, overwrite: bool) -> Result<()> {
    if overwrite {
        remove_existing(path).at(path)?;
    }
    Ok(())
}

/// Whether `dir` is missing or empty.
pub fn is_empty_or_missing(dir: &Path) -> Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Creates a new temporary file beside `path` (same directory, so a rename replaces `path`),
/// named `prefix` + random hex.
pub fn create_temp_beside(path: &Path, prefix: &str) -> Result<(PathBuf, File)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system random source failed");
        let name = format!("{prefix}{}", hex::encode(bytes));
        let temp = dir.join(name);
        match create_file(&temp, false) {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {}
            other => return other.map(|f| (temp, f)),
        }
    }
}
