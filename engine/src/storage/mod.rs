//! Storage backends move named bytes; they know nothing of what the bytes mean.
//!
//! Contract of every [`Backend`]:
//! - `write` is write-once and atomic: the object appears whole, durable, or not at all, and an
//!   existing object is never replaced ([`crate::Error::AlreadyExists`] instead). Content-addressed
//!   callers treat "already exists" as success.
//! - `read_range` returns exactly the bytes asked for or an error.
//! - `list` returns only complete objects (never temporary files).
//!
//! Durability (temp file -> fsync -> link/rename -> fsync directory) lives in one place per
//! backend: `LocalBackend::write`.

mod local;
mod memory;

pub use local::LocalBackend;
pub use memory::MemoryBackend;

use crate::error::Result;

/// The kinds of object a repository holds; each has its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// The single `config` object (its name is ignored).
    Config,
    Pack,
    Snapshot,
    /// A soft-delete marker: `forgotten/<snapshot id>` (`vault forget`, undone by `undelete`).
    Forgotten,
    /// A protection marker: `protected/<snapshot id>`; no policy forgets that snapshot.
    Protected,
    /// A running snapshot's registration: `writers/<random id>`, removed when it ends.
    Writer,
    /// A prune plan: `prune/<plan id>`, packs condemned but not yet deleted.
    Plan,
    /// A lock: `locks/<name>` (only `locks/prune`).
    Lock,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Pack => "pack",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Forgotten => "forgotten marker",
            ObjectKind::Protected => "protection marker",
            ObjectKind::Writer => "writer registration",
            ObjectKind::Plan => "prune plan",
            ObjectKind::Lock => "lock",
        }
    }

    /// The directory of each kind's objects, relative to the repository root (`""` for config).
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Config => "",
            ObjectKind::Pack => "packs",
            ObjectKind::Snapshot => "snapshots",
            ObjectKind::Forgotten => "forgotten",
            ObjectKind::Protected => "protected",
            ObjectKind::Writer => "writers",
            ObjectKind::Plan => "prune",
            ObjectKind::Lock => "locks",
        }
    }
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Human-readable location, for messages.
    fn location(&self) -> String;
    /// Prepares an empty repository location (directories and the like). Idempotent.
    fn create(&self) -> Result<()>;
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>>;
    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>>;
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Size of an object, or a NotFound I/O error.
    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64>;
    fn write(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()>;
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()>;
}

/// Whether an error is "object not found".
pub fn is_not_found(error: &crate::Error) -> bool {
    matches!(error, crate::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}
