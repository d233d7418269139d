//! Capturing file metadata from the filesystem and applying it on restore.

use std::collections::HashMap;
use std::ffi::CStr;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid, CWD};

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

// The user and group databases (passwd, group, and whatever NSS modules the host configures)
// are reachable only through libc: neither std nor rustix wraps getpwuid_r/getgrgid_r, and a
// crate for two lookups is not worth its weight. The unsafe stays in these two functions.

fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: `passwd` is a C struct of integers and raw pointers, for which all-zero bytes
    // are a valid value; getpwuid_r overwrites it before we read it.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes only into `pwd` and `buf`, whose sizes we pass, and sets
    // `result`; all three outlive the call.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points into `buf`, NUL-terminated, and `buf` is still alive.
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn lookup_group(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: `group` is a C struct of integers and raw pointers, for which all-zero bytes are
    // a valid value; getgrgid_r overwrites it before we read it.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: getgrgid_r writes only into `grp` and `buf`, whose sizes we pass, and sets
    // `result`; all three outlive the call.
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success gr_name points into `buf`, NUL-terminated, and `buf` is still alive.
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
    let (uid, gid) = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
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
    rustix::process::geteuid().is_root()
}

/// The permission bits that give privilege: setuid, setgid, sticky.
pub const SPECIAL_BITS: u32 = 0o7000;

/// Whether applying `meta` to the entry `stat` describes would hand out privilege: a change of
/// owner or group (when this process may chown), or a setuid, setgid or sticky bit the entry
/// does not have yet. Such metadata goes only on content this restore wrote or hashed; a file
/// kept on trust (size and mtime) is rewritten instead.
pub fn privileged_change(stat: &fs::Metadata, meta: &Metadata, chown: bool) -> bool {
    (chown && (stat.uid(), stat.gid()) != (meta.uid, meta.gid))
        || meta.mode & SPECIAL_BITS & !stat.mode() != 0
}

fn ids(meta: &Metadata) -> (Option<Uid>, Option<Gid>) {
    (Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
}

fn mtime(meta: &Metadata) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime_sec,
            tv_nsec: meta.mtime_nsec as _,
        },
    }
}

/// Applies ownership (when `chown`), permissions and mtime to the open regular file or
/// directory `fd`: whatever its name points at now, the entry changed is the one the caller
/// opened (without following symlinks) and checked. Call after the content is written and, for
/// directories, after their children are restored.
pub fn apply_fd(fd: impl AsFd, meta: &Metadata, chown: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    if chown {
        let (uid, gid) = ids(meta);
        rustix::fs::fchown(fd, uid, gid)?;
    }
    // chmod after chown: chown clears setuid.
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))?;
    rustix::fs::futimens(fd, &mtime(meta))?;
    Ok(())
}

/// Applies ownership (when `chown`) and mtime to the symlink `name` in directory `dir` itself
/// (a symlink has no permissions of its own).
pub fn apply_symlink(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Metadata,
    chown: bool,
) -> io::Result<()> {
    if chown {
        let (uid, gid) = ids(meta);
        rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    rustix::fs::utimensat(dir, name, &mtime(meta), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Applies metadata to the FIFO or device node `name` in directory `dir` without opening the
/// node itself (which could block or act on a device): through an `O_PATH` descriptor whose
/// type `expect` checks, and for permissions and mtime its `/proc/self/fd` name, which names
/// that very entry.
pub fn apply_node(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    meta: &Metadata,
    chown: bool,
    expect: impl Fn(&rustix::fs::Stat) -> bool,
) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if !expect(&rustix::fs::fstat(&fd)?) {
        return Err(io::Error::other("replaced while being restored"));
    }
    if chown {
        let (uid, gid) = ids(meta);
        rustix::fs::chownat(&fd, "", uid, gid, AtFlags::EMPTY_PATH)?;
    }
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmodat(
        CWD,
        proc.as_str(),
        Mode::from_raw_mode(meta.mode & 0o7777),
        AtFlags::empty(),
    )?;
    rustix::fs::utimensat(CWD, proc.as_str(), &mtime(meta), AtFlags::empty())?;
    Ok(())
}
