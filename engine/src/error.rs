//! Engine errors.
//!
//! Policy: every variant carries what an operator needs to act (the path, the object kind and id,
//! the offset). The engine never prints; the CLI renders an error as one line and maps
//! [`Error::kind`] to an exit code. Problems with individual *source* files during a snapshot are
//! not errors: they are data in the snapshot summary (the snapshot is marked incomplete).

use std::io;
use std::path::PathBuf;

use crate::format::DecodeError;

/// What went wrong, coarsely, for exit codes and for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user asked for something that cannot be done as asked (bad argument, unknown snapshot).
    Usage,
    /// The repository is damaged or not a repository.
    Repository,
    /// An operating-system or storage failure (I/O, permissions, full disk).
    Io,
    /// Another process holds a lock the operation needs.
    Busy,
    /// A source (stdin, a command) failed in a way that must not produce a snapshot.
    Source,
    /// An encrypted repository could not be unlocked (no password, or a wrong one).
    Key,
    /// What was asked for is damaged in the repository (a snapshot whose manifest cannot be
    /// read): the repository has a problem to look into, as when verify finds one.
    Damaged,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a vault repository (no config file); create one with `vault init`")]
    NotARepository { path: PathBuf },
    #[error("{path}: not a vault repository: it is a file, not a directory; name the repository's directory with --repo or VAULT_REPO")]
    RepositoryIsAFile { path: PathBuf },
    #[error("{path}: a repository already exists here")]
    AlreadyExists { path: PathBuf },
    #[error("{path}: repository format version {found} is not supported (this vault reads version {supported}); {}", if found > supported { "use a newer vault" } else { "it was written by an older development version of vault, whose format is not migrated; restore it with that version" })]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{object}: damaged: {source}")]
    Damaged {
        object: String,
        #[source]
        source: DecodeError,
    },
    #[error("{object}: damaged: {reason}")]
    Corrupt { object: String, reason: String },
    #[error(
        "{kind} {id} is not in the index; the repository is missing data (run `vault verify`)"
    )]
    MissingBlob { kind: &'static str, id: String },
    #[error("index {path}: {reason}")]
    Index { path: PathBuf, reason: String },
    #[error("no snapshot matches {wanted:?}; see `vault list`")]
    NoSuchSnapshot { wanted: String },
    #[error("snapshot {name}: its manifest cannot be read ({reason}); {}", if *latest { format!("`latest` is not resolved past it, as it may be the newest: name the snapshot you want by its id (`vault list` shows them), or `vault forget {}` it", &name[..name.len().min(8)]) } else { format!("run `vault verify` for the damage, or `vault forget {}` it", &name[..name.len().min(8)]) })]
    DamagedSnapshot {
        name: String,
        reason: String,
        /// Met while resolving `latest` (rather than named by its id).
        latest: bool,
    },
    #[error("snapshot prefix {wanted:?} is ambiguous; give more characters of the id")]
    AmbiguousSnapshot { wanted: String },
    #[error("{path:?} does not exist in snapshot {snapshot}")]
    NoSuchPath { snapshot: String, path: String },
    #[error("{path:?} in snapshot {snapshot} is not a regular file")]
    NotAFile { snapshot: String, path: String },
    #[error("{path}: target directory is not empty; pass --overwrite to restore into it")]
    TargetNotEmpty { path: PathBuf },
    #[error("{what}: {reason}")]
    InvalidArgument { what: String, reason: String },
    #[error(
        "{lock} is held by {holder}; wait for it to finish or, if that process is gone, run `vault unlock --remove-all`"
    )]
    Locked { lock: String, holder: String },
    #[error("snapshot {id} is protected; run `vault unprotect {id}` first")]
    Protected { id: String },
    #[error("{device}: FUSE is not available on this machine ({reason}); load the fuse module (`modprobe fuse`), in a container pass the device (`--device /dev/fuse --cap-add SYS_ADMIN`), and install fusermount3 (`apt-get install fuse3`)")]
    MountUnavailable { device: PathBuf, reason: String },
    #[error("{name}: {reason}; nothing was committed")]
    SourceFailed { name: String, reason: String },
    #[error("the repository is encrypted and no password was given: pass --password-file PATH or --password-command CMD, set VAULT_PASSWORD_COMMAND or VAULT_PASSWORD, or run on a terminal to be asked")]
    PasswordNeeded,
    #[error(
        "{path}: wrong password: none of its {keys} key files opens with it; nothing was written"
    )]
    WrongPassword { path: PathBuf, keys: usize },
    /// No intact key file opens with the password, and some key files are damaged: the
    /// password may well be right for one of those, so it is not called wrong.
    #[error("{path}: the password opens none of the {intact} intact key files, and {damaged} key file(s) are damaged ({first}); if the password is right, its key file is a damaged one: put back a copy of it from another copy of the repository, or unlock with another password and add a new one with `vault key add`; nothing was written")]
    KeyFilesDamaged {
        path: PathBuf,
        intact: usize,
        damaged: usize,
        /// The first damaged key file's error.
        first: String,
    },
    #[error("{source_name}: {reason}")]
    Password { source_name: String, reason: String },
    /// A system program vault drives (systemctl, crontab, systemd-analyze) failed.
    #[error("{tool}: {reason}")]
    ToolFailed { tool: String, reason: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::MountUnavailable { .. } | Error::ToolFailed { .. } => {
                ErrorKind::Io
            }
            Error::NotARepository { .. }
            | Error::RepositoryIsAFile { .. }
            | Error::UnsupportedVersion { .. }
            | Error::Damaged { .. }
            | Error::Corrupt { .. }
            | Error::MissingBlob { .. }
            | Error::Index { .. } => ErrorKind::Repository,
            Error::AlreadyExists { .. }
            | Error::NoSuchSnapshot { .. }
            | Error::AmbiguousSnapshot { .. }
            | Error::NoSuchPath { .. }
            | Error::NotAFile { .. }
            | Error::TargetNotEmpty { .. }
            | Error::InvalidArgument { .. }
            | Error::Protected { .. } => ErrorKind::Usage,
            Error::DamagedSnapshot { .. } => ErrorKind::Damaged,
            Error::Locked { .. } => ErrorKind::Busy,
            Error::SourceFailed { .. } => ErrorKind::Source,
            Error::PasswordNeeded
            | Error::WrongPassword { .. }
            | Error::KeyFilesDamaged { .. }
            | Error::Password { .. } => ErrorKind::Key,
        }
    }

    /// True when the underlying cause is a full disk or exhausted quota.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn damaged(object: impl Into<String>, source: DecodeError) -> Self {
        Error::Damaged {
            object: object.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::io(path, source))
    }
}
