//! The state directory: what `vault run` recorded, which `vault status` and the metrics read.
//!
//! ```text
//! <state>/history/<app>.jsonl   one AppRunReport per line, appended (O_APPEND, fsync)
//! <state>/apps/<app>.json       AppState: the summary status reads (temp, fsync, rename)
//! <state>/locks/<app>.lock      flock held while the application's job runs
//! <state>/locks/repository-<hash>.lock   flock held by the job using that repository
//! ```
//! Invariants: the summary is replaced whole or not at all; a history line is written with
//! one `write` to a file opened with O_APPEND, then fsynced; locks are advisory `flock`s,
//! released by the kernel when their process ends, so a crash never leaves a stale lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::report::AppRunReport;
pub use super::report::SnapshotRecord;
use crate::error::{Error, Result};

/// Where the verify cycle stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyState {
    /// RFC 3339 time of the last verify, and whether it found no problem.
    pub last_time: Option<String>,
    pub last_clean: Option<bool>,
    /// Slices per cycle (`1/N` in the config); 1 for `all`, 0 for `none`.
    pub slices: u64,
    /// The 1-based slice the next verify reads.
    pub next_slice: u64,
    /// Slices read in the current cycle.
    pub slices_done: u64,
    /// RFC 3339 time the last full cycle ended (every pack read once).
    pub last_cycle_completed: Option<String>,
}

/// The summary of one application, rewritten after each of its runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppState {
    pub app: String,
    pub repository: String,
    pub last_run: Option<AppRunReport>,
    /// Runs recorded for this application (every result), since its first.
    #[serde(default)]
    pub runs: u64,
    /// RFC 3339 time of the last run that succeeded.
    pub last_success: Option<String>,
    pub newest_snapshot: Option<SnapshotRecord>,
    /// Bytes of packs in the repository after the last run.
    pub repository_size_bytes: Option<u64>,
    /// RFC 3339 time of the last prune this application's job ran.
    pub last_prune: Option<String>,
    pub verify: Option<VerifyState>,
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct HeldLock {
    _file: File,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    pub fn new(root: PathBuf) -> StateDir {
        StateDir { root }
    }

    /// `$XDG_STATE_HOME/vault`; for root `/var/lib/vault`; else `~/.local/state/vault`.
    pub fn default_root() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("vault"));
        }
        if rustix::process::geteuid().is_root() {
            return Some(PathBuf::from("/var/lib/vault"));
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
        Some(PathBuf::from(home).join(".local/state/vault"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Appends `report` to the application's history as one JSON line, durably.
    pub fn append_history(&self, report: &AppRunReport) -> Result<()> {
        let path = self.dir("history")?.join(format!("{}.jsonl", report.app));
        let mut line = serde_json::to_vec(report).expect("reports serialize");
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(&line).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))
    }

    /// The application's summary; `None` before its first run.
    pub fn read_summary(&self, app: &str) -> Result<Option<AppState>> {
        let path = self.root.join("apps").join(format!("{app}.json"));
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt {
                    object: path.display().to_string(),
                    reason: format!("{e}; delete it: the next `vault run` writes it again"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Replaces the application's summary atomically.
    pub fn write_summary(&self, state: &AppState) -> Result<()> {
        let dir = self.dir("apps")?;
        let bytes = serde_json::to_vec_pretty(state).expect("state serializes");
        write_atomically(&dir.join(format!("{}.json", state.app)), &bytes)
    }

    fn lock_file(&self, name: &str) -> Result<File> {
        let path = self.dir("locks")?.join(name);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))
    }

    /// Takes the application's lock; `None` when a job of it is running.
    pub fn try_lock_app(&self, app: &str) -> Result<Option<HeldLock>> {
        let file = self.lock_file(&format!("{app}.lock"))?;
        match rustix::fs::flock(
            file.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(()) => Ok(Some(HeldLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(io(&self.root.join("locks"))(e.into())),
        }
    }

    /// Whether a job of `app` runs now (its lock is held).
    pub fn is_running(&self, app: &str) -> bool {
        let path = self.root.join("locks").join(format!("{app}.lock"));
        let Ok(file) = OpenOptions::new().write(true).open(path) else {
            return false;
        };
        let flag = rustix::fs::FlockOperation::NonBlockingLockShared;
        matches!(
            rustix::fs::flock(file.as_fd(), flag),
            Err(rustix::io::Errno::WOULDBLOCK)
        )
    }

    /// Waits for, then takes, the lock of the repository at `location`: jobs of this host on
    /// one repository run one after another.
    pub fn lock_repository(&self, location: &str) -> Result<HeldLock> {
        let hash = blake3::hash(location.as_bytes()).to_hex();
        let file = self.lock_file(&format!("repository-{}.lock", &hash[..16]))?;
        rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(&self.root.join("locks"))(e.into()))?;
        Ok(HeldLock { _file: file })
    }
}

/// Writes `bytes` to `path` through a temporary file: fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&temp).map_err(io(&temp))?;
        file.write_all(bytes).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        fs::rename(&temp, path).map_err(io(path))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
