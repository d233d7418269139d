//! Source paths and names: absolute source paths, their components, stream names, opening
//! source files, and the host name a snapshot records.

use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::tree::valid_name;

/// Why a listed regular file was not opened for reading.
pub(super) enum OpenError {
    /// Something else is at its path now (named, e.g. "a FIFO"): it was replaced after the
    /// walk listed it. Nothing was read.
    Replaced(&'static str),
    Io(io::Error),
}

/// How long an open waits for a lease holder to release the file. The kernel breaks a lease by
/// force after `/proc/sys/fs/lease-break-time` (45 s by default).
const LEASE_WAIT: Duration = Duration::from_secs(90);

/// Opens the regular file the walk listed at `path` (with its `lstat`, `listed`) for reading,
/// without updating its access time where permitted.
///
/// Whatever is at `path` now may not be what was listed: a FIFO, a device node, a socket or a
/// symlink may have been put in its place since. So the open never blocks and never follows a
/// symlink (`O_NONBLOCK | O_NOFOLLOW`: a FIFO without a writer would otherwise hang the
/// snapshot, and so every prune waiting for it), and the open file must be a regular file with
/// the listed device and inode; anything else is [`OpenError::Replaced`] and is closed unread.
/// `O_NONBLOCK` stays set: it has no effect on regular files (open(2)).
///
/// A non-blocking open of a file under a write lease (Samba, NFS delegations) fails with
/// `EWOULDBLOCK` after starting the lease break; it is retried until the holder lets go, as a
/// blocking open would wait, for at most [`LEASE_WAIT`].
pub(super) fn open_source_file(path: &Path, listed: &fs::Metadata) -> Result<File, OpenError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let file = loop {
        match open_nonblocking(path) {
            Err(e)
                if e.raw_os_error() == Some(libc::EWOULDBLOCK)
                    && started.elapsed() < LEASE_WAIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => {
                // ELOOP (a symlink), ENXIO (a socket), ...: say what is there now, if it is not
                // the listed file.
                return Err(match fs::symlink_metadata(path) {
                    Ok(now) if !same_file(listed, &now) => {
                        OpenError::Replaced(file_replaced_by(&now))
                    }
                    _ => OpenError::Io(e),
                });
            }
            Ok(file) => break file,
        }
    };
    let opened = file.metadata().map_err(OpenError::Io)?;
    if !same_file(listed, &opened) {
        return Err(OpenError::Replaced(file_replaced_by(&opened)));
    }
    Ok(file)
}

fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = libc::O_NONBLOCK | libc::O_NOFOLLOW;
    let noatime = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NOATIME)
        .open(path);
    match noatime {
        // O_NOATIME is for the file's owner (and CAP_FOWNER) only.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path),
        other => other,
    }
}

/// Whether `now` is the regular file `listed`.
fn same_file(listed: &fs::Metadata, now: &fs::Metadata) -> bool {
    now.file_type().is_file() && (now.dev(), now.ino()) == (listed.dev(), listed.ino())
}

/// What replaced a listed regular file, for the problem report.
fn file_replaced_by(now: &fs::Metadata) -> &'static str {
    if now.is_file() {
        "another file"
    } else {
        kind_of(now)
    }
}

/// What replaced a listed file or directory, for the problem report.
pub(super) fn kind_of(now: &fs::Metadata) -> &'static str {
    let t = now.file_type();
    if t.is_file() {
        "a file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "something else"
    }
}

/// Splits an absolute, normalized path into its name components.
pub(super) fn components_of(path: &Path) -> Vec<Vec<u8>> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            _ => None,
        })
        .collect()
}

/// Makes a source path absolute and lexically normal (no `.`/`..`), without following symlinks.
pub(super) fn absolute_source(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut out = PathBuf::from("/");
    for c in absolute.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Validates a stream name and returns its components (`db/x.sql` -> [db, x.sql]).
pub(super) fn stream_components(name: &str) -> Result<Vec<Vec<u8>>> {
    let parts: Vec<Vec<u8>> = name
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.as_bytes().to_vec())
        .collect();
    if parts.iter().any(|p| !valid_name(p)) {
        return Err(Error::invalid(
            format!("stream name {name:?}"),
            "use a relative path like db/website.sql with no empty, `.` or `..` components",
        ));
    }
    Ok(parts)
}
