//! `vault mount`: the repository's snapshots as a read-only FUSE filesystem.
//!
//! Role: serves `/snapshots/<id>/…`, `/latest` and `/by-label/<key>/<value>/…` (see
//! [`nodes`]) to the kernel until it is unmounted. Input: an open [`Repository`] and
//! [`MountOptions`]. Output: a [`Mounted`] session to wait for or to unmount, and a
//! [`MountReport`] saying what is mounted.
//!
//! How: [`nodes`] names and numbers what the mount shows (the name space, the trees, hard links
//! as one inode), [`cache`] keeps decoded chunks in an LRU with a byte budget and knows which
//! are being fetched, [`reader`] serves file reads from it and fetches a sequential reader's
//! next chunks in the background, both through the one content read path
//! (`repo/content.rs`), and `fs` adapts them to FUSE (the `fuser` crate, which mounts through
//! `fusermount3`).
//!
//! Invariants:
//! - Nothing is written to the repository but the reader registration (W1 of
//!   format-spec/09-rotation.md), held while mounted as a restore holds it while it runs: a
//!   prune that condemns packs waits for the mount (or, with `--no-wait`, leaves its plan for
//!   the next prune); snapshots are not blocked.
//! - Every byte served was checked against its chunk id when it was read.
//! - Snapshots taken while mounted appear under `/snapshots` within [`nodes::RELIST`].

mod cache;
mod fs;
mod nodes;
mod reader;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repo::{Repository, SnapshotFilter};
use crate::report::JsonReport;

/// What to mount, and how.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    /// Only snapshots matching this filter are shown.
    pub filter: SnapshotFilter,
    /// Only these snapshots (ids, unique prefixes or `latest`); all when empty.
    pub snapshots: Vec<String>,
    /// Bytes of decoded chunks and chunk lists kept for readers.
    pub cache_bytes: u64,
    /// The FUSE device checked before mounting (`/dev/fuse`).
    pub device: PathBuf,
    /// Threads answering the kernel (concurrent readers).
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            mountpoint: PathBuf::new(),
            filter: SnapshotFilter::default(),
            snapshots: Vec::new(),
            cache_bytes: 256 << 20,
            device: PathBuf::from("/dev/fuse"),
            threads: 4,
        }
    }
}

/// What `vault mount` mounted (`--json` prints it once the mount is ready).
#[derive(Debug, Clone, Serialize)]
pub struct MountReport {
    pub mountpoint: PathBuf,
    pub repository: String,
    /// Snapshots shown when mounted (more appear as they are taken).
    pub snapshots: usize,
    pub cache_bytes: u64,
}

impl JsonReport for MountReport {}

/// Ends a mount from another thread (a signal handler's): the session then returns.
#[derive(Clone)]
pub struct Unmounter {
    inner: Arc<Mutex<Option<fuser::SessionUnmounter>>>,
    mountpoint: PathBuf,
}

impl Unmounter {
    /// Unmounts. When the kernel refuses (a process still uses the mount), the mount is
    /// detached lazily (`fusermount3 -u -z`): gone from the name space now, served until the
    /// last user lets go.
    pub fn unmount(&self) -> Result<()> {
        let Some(mut unmounter) = self.inner.lock().expect("unmounter lock").take() else {
            return Ok(());
        };
        if unmounter.unmount().is_ok() {
            return Ok(());
        }
        let status = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(&self.mountpoint)
            .status()
            .map_err(|e| Error::io(&self.mountpoint, e))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::invalid(
                self.mountpoint.display().to_string(),
                "cannot unmount it; run `fusermount3 -u -z` on it",
            ))
        }
    }
}

/// A running mount.
pub struct Mounted {
    pub report: MountReport,
    unmounter: Unmounter,
    session: JoinHandle<std::io::Result<()>>,
}

impl Mounted {
    pub fn unmounter(&self) -> Unmounter {
        self.unmounter.clone()
    }

    /// Waits until the mount is gone (unmounted by [`Unmounter::unmount`] or `fusermount3
    /// -u`); the reader registration is removed then.
    pub fn wait(self) -> Result<()> {
        let mountpoint = self.report.mountpoint.clone();
        match self.session.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io(mountpoint, e)),
            Err(_) => Err(Error::invalid(
                mountpoint.display().to_string(),
                "the mount's session ended with a panic",
            )),
        }
    }
}

/// Checks that FUSE can be used: the device exists and is a character device.
fn check_device(device: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(device) {
        Ok(m) if m.file_type().is_char_device() => Ok(()),
        Ok(_) => Err(Error::MountUnavailable {
            device: device.to_path_buf(),
            reason: "not a character device".into(),
        }),
        Err(e) => Err(Error::MountUnavailable {
            device: device.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Mounts `repo` at `options.mountpoint` and serves it on threads of its own until it is
/// unmounted. Fails before mounting when FUSE is unavailable, the mountpoint is not a
/// directory, or a snapshot named in `options.snapshots` does not exist.
pub fn mount(repo: Repository, options: &MountOptions) -> Result<Mounted> {
    check_device(&options.device)?;
    let mountpoint = &std::fs::canonicalize(&options.mountpoint)
        .map_err(|e| Error::io(&options.mountpoint, e))?;
    if !mountpoint.is_dir() {
        return Err(Error::invalid(
            mountpoint.display().to_string(),
            "the mountpoint is not a directory; create it with `mkdir`",
        ));
    }
    let only: Vec<SnapshotId> = options
        .snapshots
        .iter()
        .map(|wanted| repo.find_snapshot(wanted, &options.filter).map(|s| s.id))
        .collect::<Result<_>>()?;
    let registration = repo.register("mount", false)?;
    let repo = Arc::new(repo);
    let snapshots = nodes::Snapshots::new(&repo, options.filter.clone(), only)?;
    let report = MountReport {
        mountpoint: mountpoint.clone(),
        repository: repo.location(),
        snapshots: snapshots.count(),
        cache_bytes: options.cache_bytes,
    };
    let filesystem = fs::VaultFs {
        owner: (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        ),
        snapshots,
        inodes: nodes::Inodes::default(),
        trees: nodes::Trees::default(),
        reader: reader::Reader::new(repo.clone(), options.cache_bytes)
            .map_err(|e| Error::io(mountpoint, e))?,
        next_handle: AtomicU64::new(1),
        started: SystemTime::now(),
        _reader: registration,
        repo,
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("vault".into()),
        fuser::MountOption::Subtype("vault".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    let mut session = fuser::Session::new(filesystem, mountpoint, &config)
        .map_err(|e| Error::io(mountpoint, e))?;
    let unmounter = Unmounter {
        inner: Arc::new(Mutex::new(Some(session.unmount_callable()))),
        mountpoint: mountpoint.clone(),
    };
    let session = std::thread::Builder::new()
        .name("vault-mount".into())
        .spawn(move || session.run())
        .map_err(|e| Error::io(mountpoint, e))?;
    Ok(Mounted {
        report,
        unmounter,
        session,
    })
}
