//! Source paths and names: absolute source paths, their components, stream names, opening
//! source files, and the host name a snapshot records.

use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::tree::valid_name;

/// Opens a source file for reading without updating its access time where permitted.
pub(super) fn open_source_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let noatime = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME | libc::O_NOFOLLOW)
        .open(path);
    match noatime {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path),
        other => other,
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

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) } != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
