//! Capturing file metadata from the filesystem and applying it on restore.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use crate::format::tree::Metadata;

/// Caches uid/gid -> name lookups for one run.
#[derive(Default)]
pub struct OwnerNames {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl OwnerNames {
    pub fn user(&self, uid: u32) -> String {
        let mut cache = self.users.lock().unwrap();
        cache
            .entry(uid)
            .or_insert_with(|| lookup_user(uid).unwrap_or_default())
            .clone()
    }

    pub fn group(&self, gid: u32) -> String {
        let mut cache = self.groups.lock().unwrap();
        cache
            .entry(gid)
            .or_insert_with(|| lookup_group(gid).unwrap_or_default())
            .clone()
    }
}

fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes only into `pwd` and `buf`, whose sizes we pass.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points into `buf`, NUL-terminated.
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn lookup_group(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: getgrgid_r writes only into `grp` and `buf`, whose sizes we pass.
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success gr_name points into `buf`, NUL-terminated.
    Some(
        unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Metadata of a filesystem entry as recorded in a tree.
pub fn capture(stat: &fs::Metadata, owners: &OwnerNames) -> Metadata {
    Metadata {
        mode: stat.mode() & 0o7777,
        uid: stat.uid(),
        gid: stat.gid(),
        user: owners.user(stat.uid()),
        group: owners.group(stat.gid()),
        mtime_sec: stat.mtime(),
        mtime_nsec: stat.mtime_nsec() as u32,
        ctime_sec: stat.ctime(),
        ctime_nsec: stat.ctime_nsec() as u32,
        dev: stat.dev(),
        inode: stat.ino(),
    }
}

/// Metadata for a directory that exists only inside a snapshot (e.g. `db/` of `--stdin-name
/// db/dump.sql`): mode 0755, the current user, the given time.
pub fn synthetic_dir(time_sec: i64, owners: &OwnerNames) -> Metadata {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Metadata {
        mode: 0o755,
        uid,
        gid,
        user: owners.user(uid),
        group: owners.group(gid),
        mtime_sec: time_sec,
        ..Metadata::default()
    }
}

/// Whether this process may give files away (chown to other users).
pub fn can_chown() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Applies ownership (when `chown`), permissions (not for symlinks) and mtime, never following a
/// symlink at `path`. Call after the content is written and, for directories, after their
/// children are restored.
pub fn apply(path: &Path, meta: &Metadata, is_symlink: bool, chown: bool) -> io::Result<()> {
    let c = cstring(path)?;
    if chown {
        // SAFETY: `c` is a valid NUL-terminated path.
        if unsafe { libc::lchown(c.as_ptr(), meta.uid, meta.gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if !is_symlink {
        // SAFETY: `c` is a valid NUL-terminated path. chmod after chown: chown clears setuid.
        if unsafe { libc::chmod(c.as_ptr(), meta.mode as libc::mode_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: meta.mtime_sec as libc::time_t,
            tv_nsec: meta.mtime_nsec as _,
        },
    ];
    // SAFETY: `c` is valid; `times` has the two entries utimensat reads.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Creates a FIFO or device node.
pub fn make_node(path: &Path, kind: libc::mode_t, rdev: u64, mode: u32) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe {
        libc::mknod(
            c.as_ptr(),
            kind | (mode & 0o7777) as libc::mode_t,
            rdev as libc::dev_t,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
