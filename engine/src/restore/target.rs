//! The only code that turns snapshot names into entries under a restore target.
//!
//! Everything under the target is reached through directory descriptors ([`Dir`]): each
//! directory is opened from its parent's descriptor by one checked name, without following
//! symlinks (`O_NOFOLLOW | O_DIRECTORY`), and every entry is made or changed with the `*at`
//! calls relative to its directory's descriptor. So no path is ever longer than one name (any
//! tree that can be snapshotted can be restored, however deep under the target), no symlink in
//! the target, planted or restored earlier in the same run, is ever followed, and no entry of
//! any snapshot, however crafted, makes a restore write outside its target. Every name is
//! checked again here (the tree decoder already rejects `..`, `/`, NUL and empty names);
//! files are created with `O_EXCL | O_NOFOLLOW`.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::{Error, IoContext, Result};
use crate::format::tree::valid_name;

/// An open directory under (or at) the restore target, and its path for messages. A dry run
/// walks directories that may not exist: those are *absent* (nothing in them, nothing can be
/// made in them).
pub struct Dir {
    fd: Option<OwnedFd>,
    path: PathBuf,
}

fn io_error(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    /// The target directory itself, created if missing (a symlink the operator names as the
    /// target is followed: that is their choice).
    pub fn open_target(path: &Path) -> Result<Dir> {
        fs::create_dir_all(path).at(path)?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_error)
        .at(path)?;
        Ok(Dir {
            fd: Some(fd),
            path: path.to_path_buf(),
        })
    }

    /// The existing directory `path` (a dry run's target), or an absent one.
    pub fn open_existing(path: &Path) -> Dir {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        Dir {
            fd,
            path: path.to_path_buf(),
        }
    }

    /// The directory's descriptor; an absent directory has none (`NotFound`).
    pub fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        self.fd
            .as_ref()
            .map(|fd| fd.as_fd())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// Path of this directory, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of `name` in this directory, for messages.
    pub fn display(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The existing directory `name` in this one, never through a symlink.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let fd =
            rustix::fs::openat(self.fd()?, name, DIR_FLAGS, Mode::empty()).map_err(io_error)?;
        Ok(Dir {
            fd: Some(fd),
            path: self.path.join(name),
        })
    }

    /// The directory `name` in this one when it exists (a real directory), else an absent one.
    pub fn open_or_absent(&self, name: &OsStr) -> Dir {
        self.open_dir(name).unwrap_or_else(|_| Dir {
            fd: None,
            path: self.path.join(name),
        })
    }

    /// The directory at `rel` (relative, plain names) below this one, opened name by name.
    pub fn open_below(&self, rel: &Path) -> io::Result<Dir> {
        let mut dir = Dir {
            fd: Some(self.fd()?.try_clone_to_owned()?),
            path: self.path.clone(),
        };
        for part in rel.iter() {
            dir = dir.open_dir(part)?;
        }
        Ok(dir)
    }

    /// What is at `name` now (`lstat`; never follows a symlink). `None`: nothing there.
    pub fn stat(&self, name: &OsStr) -> Result<Option<fs::Metadata>> {
        let Some(fd) = &self.fd else {
            return Ok(None);
        };
        // Through an O_PATH descriptor, for the std metadata type.
        match rustix::fs::openat(
            fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(File::from(fd).metadata().at(self.display(name))?)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io(self.display(name), io_error(e))),
        }
    }

    /// Creates directory `name`; an existing real directory is kept, anything else at that name
    /// is replaced when `overwrite`, an error otherwise. Returns it opened.
    pub fn create_dir(&self, name: &OsStr, overwrite: bool) -> Result<Dir> {
        let path = || self.display(name);
        match rustix::fs::mkdirat(self.fd().at(path())?, name, Mode::from_raw_mode(0o777)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {
                let meta = self.stat(name)?;
                if !meta.is_some_and(|m| m.is_dir()) {
                    if !overwrite {
                        return Err(Error::io(
                            path(),
                            io::Error::from(io::ErrorKind::AlreadyExists),
                        ));
                    }
                    self.remove(name).at(path())?;
                    rustix::fs::mkdirat(self.fd().at(path())?, name, Mode::from_raw_mode(0o777))
                        .map_err(io_error)
                        .at(path())?;
                }
            }
            Err(e) => return Err(Error::io(path(), io_error(e))),
        }
        self.open_dir(name).at(path())
    }

    /// Opens `name` with `flags` (always with `O_NOFOLLOW | O_CLOEXEC`).
    pub fn open_file(&self, name: &OsStr, flags: OFlags, mode: u32) -> io::Result<File> {
        let fd = rustix::fs::openat(
            self.fd()?,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(io_error)?;
        Ok(File::from(fd))
    }

    /// Creates a new regular file `name` for writing, never following a symlink; whatever is
    /// at that name is removed first when `overwrite`.
    pub fn create_file(&self, name: &OsStr, overwrite: bool) -> Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        match self.open_file(name, flags, 0o600) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && overwrite => {
                self.remove(name).at(self.display(name))?;
                self.open_file(name, flags, 0o600).at(self.display(name))
            }
            other => other.at(self.display(name)),
        }
    }

    /// Removes whatever is at `name` without following symlinks (a directory with everything
    /// in it). Nothing there is fine.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        match rustix::fs::unlinkat(self.fd()?, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(rustix::io::Errno::ISDIR) => self.remove_tree(name),
            // Linux says EISDIR; POSIX allows EPERM for a directory.
            Err(rustix::io::Errno::PERM)
                if self.stat(name).ok().flatten().is_some_and(|m| m.is_dir()) =>
            {
                self.remove_tree(name)
            }
            Err(e) => Err(io_error(e)),
        }
    }

    fn remove_tree(&self, name: &OsStr) -> io::Result<()> {
        let dir = self.open_dir(name)?;
        for entry in dir.names()? {
            dir.remove(&entry)?;
        }
        drop(dir);
        match rustix::fs::unlinkat(self.fd()?, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Removes the empty directory `name`.
    pub fn remove_empty_dir(&self, name: &OsStr) -> Result<()> {
        let fd = self.fd().at(self.display(name))?;
        rustix::fs::unlinkat(fd, name, AtFlags::REMOVEDIR)
            .map_err(io_error)
            .at(self.display(name))
    }

    /// The names in this directory (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let Some(fd) = &self.fd else {
            return Ok(Vec::new());
        };
        let mut dir = rustix::fs::Dir::read_from(fd).map_err(io_error)?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(io_error)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(out)
    }

    /// Clears the way for a symlink, node or hard link at `name` when overwriting.
    pub fn prepare_name(&self, name: &OsStr, overwrite: bool) -> Result<()> {
        if overwrite {
            self.remove(name).at(self.display(name))?;
        }
        Ok(())
    }

    pub fn symlink(&self, target: &[u8], name: &OsStr) -> Result<()> {
        let fd = self.fd().at(self.display(name))?;
        rustix::fs::symlinkat(OsStr::from_bytes(target), fd, name)
            .map_err(io_error)
            .at(self.display(name))
    }

    pub fn read_link(&self, name: &OsStr) -> Result<Vec<u8>> {
        let fd = self.fd().at(self.display(name))?;
        rustix::fs::readlinkat(fd, name, Vec::new())
            .map(|c| c.into_bytes())
            .map_err(io_error)
            .at(self.display(name))
    }

    /// Creates a FIFO or device node.
    pub fn make_node(&self, name: &OsStr, kind: libc::mode_t, rdev: u64, mode: u32) -> Result<()> {
        let file_type = rustix::fs::FileType::from_raw_mode(kind);
        let fd = self.fd().at(self.display(name))?;
        rustix::fs::mknodat(
            fd,
            name,
            file_type,
            Mode::from_raw_mode(mode & 0o7777),
            rdev,
        )
        .map_err(io_error)
        .at(self.display(name))
    }

    /// Makes `name` here another name of `from_name` in `from`.
    pub fn hard_link(&self, from: &Dir, from_name: &OsStr, name: &OsStr) -> Result<()> {
        let (from_fd, fd) = (
            from.fd().at(from.display(from_name))?,
            self.fd().at(self.display(name))?,
        );
        rustix::fs::linkat(from_fd, from_name, fd, name, AtFlags::empty())
            .map_err(io_error)
            .at(self.display(name))
    }

    /// Renames `from` over `to`, both in this directory.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> Result<()> {
        let fd = self.fd().at(self.display(to))?;
        rustix::fs::renameat(fd, from, fd, to)
            .map_err(io_error)
            .at(self.display(to))
    }

    /// Removes the file `name` (not a directory), ignoring failure: for cleaning up.
    pub fn discard(&self, name: &OsStr) {
        if let Ok(fd) = self.fd() {
            let _ = rustix::fs::unlinkat(fd, name, AtFlags::empty());
        }
    }

    /// Creates a new temporary file in this directory (so a rename replaces a name in it),
    /// named `prefix` + random hex.
    pub fn create_temp(&self, prefix: &str) -> Result<(OsString, File)> {
        loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).expect("the operating system random source failed");
            let name = OsString::from(format!("{prefix}{}", hex::encode(bytes)));
            match self.create_file(&name, false) {
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {}
                other => return other.map(|f| (name, f)),
            }
        }
    }
}

/// `name` as a single plain component, refusing anything else.
pub fn child(name: &[u8]) -> Result<&OsStr> {
    if !valid_name(name) {
        return Err(Error::Corrupt {
            object: "snapshot tree".into(),
            reason: format!(
                "entry name {:?} would escape the restore target; refused",
                String::from_utf8_lossy(name)
            ),
        });
    }
    Ok(OsStr::from_bytes(name))
}

/// Whether `dir` is missing or empty.
pub fn is_empty_or_missing(dir: &Path) -> Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(dir, e)),
    }
}
