//! Storage backends move named bytes; they know nothing of what the bytes mean.
//!
//! Contract of every [`Backend`]:
//! - `write` is write-once and atomic: the object appears whole, durable, or not at all, and an
//!   existing object is never replaced ([`crate::Error::AlreadyExists`] instead). Content-addressed
//!   callers treat "already exists" as success.
//! - `read_range` returns exactly the bytes asked for or an error.
//! - `list` returns only complete objects (never temporary files).
//!
//! - `stage` + [`StagedObject::commit`] is `write` in two steps: the bytes leave the caller's
//!   memory at `stage`, the object becomes durable and visible at `commit` (which may run on
//!   another thread, so that a snapshot goes on packing while the disk catches up).
//!
//! Durability (temp file -> fsync -> link/rename -> fsync directory) lives in one place per
//! backend: `LocalBackend::stage` and its commit; `RemoteBackend` relies on the store's atomic
//! PUT (S3) or a temporary name renamed into place (SFTP).
//!
//! Every backend lays objects out the same way ([`object_path`]), so a repository can be moved
//! between them with any file-copying tool.

mod local;
mod location;
mod memory;
#[cfg(feature = "remote")]
mod remote;

pub use local::LocalBackend;
pub use location::{open, Location, RemoteOptions};
pub use memory::{Fault, MemoryBackend, Step};
#[cfg(feature = "remote")]
pub use remote::RemoteBackend;

use crate::error::{Error, Result};

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
    /// A key file of an encrypted repository: `keys/<key id>`.
    Key,
    /// An index segment: `index/<segment id>`, the trailers of a set of packs in one object.
    Index,
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
            ObjectKind::Key => "key file",
            ObjectKind::Index => "index segment",
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
            ObjectKind::Key => "keys",
            ObjectKind::Index => "index",
        }
    }

    /// Every kind, in the order a listing of the whole repository shows them.
    pub const ALL: [ObjectKind; 10] = [
        ObjectKind::Config,
        ObjectKind::Key,
        ObjectKind::Snapshot,
        ObjectKind::Forgotten,
        ObjectKind::Protected,
        ObjectKind::Index,
        ObjectKind::Pack,
        ObjectKind::Writer,
        ObjectKind::Plan,
        ObjectKind::Lock,
    ];
}

/// Prefix of temporary objects; never listed.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A new temporary object name: the prefix, this process's tag (so that a prune can tell a
/// leftover of a killed process from an object still being written, see
/// [`TemporaryObject::is_abandoned`]) and a random part.
pub fn temp_name() -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| crate::host::ProcessTag::current().encode());
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random source");
    format!("{TEMP_PREFIX}{tag}-{}", hex::encode(bytes))
}

/// A temporary object (`.tmp-*`) in the directory of `kind`'s objects: an object being written,
/// or one a killed process left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryObject {
    pub kind: ObjectKind,
    /// The file name, starting with [`TEMP_PREFIX`].
    pub name: String,
    pub size: u64,
}

impl TemporaryObject {
    /// True only when the process that made it certainly no longer runs (it ran on this host;
    /// see [`crate::host::is_dead`]). Names without a process tag (written by vault before tags
    /// existed) are never judged abandoned.
    pub fn is_abandoned(&self) -> bool {
        self.name
            .strip_prefix(TEMP_PREFIX)
            .and_then(crate::host::ProcessTag::decode)
            .is_some_and(|tag| tag.is_dead())
    }
}

/// The path of an object relative to the repository root, `/`-separated: `config`,
/// `packs/<first two characters>/<name>`, `<kind dir>/<name>`. Names are 1-128 characters of
/// `[A-Za-z0-9_-]`; anything else is refused, so no name can climb out of the repository.
pub fn object_path(kind: ObjectKind, name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if kind != ObjectKind::Config && !valid {
        return Err(Error::invalid(
            "object name",
            format!("{name:?} is not a valid object name"),
        ));
    }
    Ok(match kind {
        ObjectKind::Config => "config".to_string(),
        ObjectKind::Pack => format!("{}/{}/{name}", kind.dir(), &name[..2.min(name.len())]),
        _ => format!("{}/{name}", kind.dir()),
    })
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
    /// [`Self::read`] into `buf` (replacing its contents), reusing its memory: for callers that
    /// read many large objects one after another.
    fn read_into(&self, kind: ObjectKind, name: &str, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.read(kind, name)?;
        Ok(())
    }
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// [`Self::read_range`] into `buf` (replacing its contents), reusing its memory.
    fn read_range_into(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        *buf = self.read_range(kind, name, offset, len)?;
        Ok(())
    }
    /// Size of an object, or a NotFound I/O error.
    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64>;
    fn write(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<()>;
    /// Starts writing an object whose bytes are all in `data`: it appears, whole and durable,
    /// only when the result is committed, and dropping the result uncommitted leaves nothing
    /// behind.
    fn stage<'a>(
        &'a self,
        kind: ObjectKind,
        name: &str,
        data: &[u8],
    ) -> Result<Box<dyn StagedObject + 'a>> {
        let mut object = self.create_object(kind)?;
        object.write(data)?;
        object.finish(name)
    }
    /// Starts an object whose bytes come piece by piece and whose name is known only at the end
    /// (a pack is named by its digest). The default gathers the bytes in memory and writes them
    /// at commit.
    fn create_object<'a>(&'a self, kind: ObjectKind) -> Result<Box<dyn ObjectWriter<'a> + 'a>> {
        Ok(Box::new(BufferedObject {
            backend: self,
            kind,
            data: Vec::new(),
        }))
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()>;
    /// The temporary objects in the directory of each kind of object. A backend whose writes
    /// leave no temporary object behind lists none.
    fn list_temporary(&self) -> Result<Vec<TemporaryObject>> {
        Ok(Vec::new())
    }
    /// Deletes a temporary object that [`Self::list_temporary`] listed.
    fn delete_temporary(&self, object: &TemporaryObject) -> Result<()> {
        let _ = object;
        Ok(())
    }
    /// How many requests are worth having in flight at once: staged packs waiting for their
    /// commit, parallel range reads. A local disk wants few; a network store many.
    fn concurrency(&self) -> usize {
        4
    }
    /// Whether reads are slow enough (a network round trip) that decoded trees are worth
    /// keeping in the local cache.
    fn is_remote(&self) -> bool {
        false
    }
}

/// An object written by [`Backend::stage`], not yet visible.
pub trait StagedObject: Send {
    /// Makes the object durable and visible under its name; [`crate::Error::AlreadyExists`] if
    /// an object of that name exists (it is left as it is).
    fn commit(self: Box<Self>) -> Result<()>;
}

/// An object being written by [`Backend::create_object`].
pub trait ObjectWriter<'a>: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
    /// Ends the object as `name`; it becomes visible when the result is committed.
    /// [`crate::Error::AlreadyExists`] when an object of that name exists.
    fn finish(self: Box<Self>, name: &str) -> Result<Box<dyn StagedObject + 'a>>;
}

/// The default object writer: the bytes in memory, written at commit.
struct BufferedObject<'a, B: Backend + ?Sized> {
    backend: &'a B,
    kind: ObjectKind,
    data: Vec<u8>,
}

impl<'a, B: Backend + ?Sized> ObjectWriter<'a> for BufferedObject<'a, B> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(self: Box<Self>, name: &str) -> Result<Box<dyn StagedObject + 'a>> {
        Ok(Box::new(BufferedStaged {
            backend: self.backend,
            kind: self.kind,
            name: name.to_string(),
            data: self.data,
        }))
    }
}

/// A finished [`BufferedObject`].
struct BufferedStaged<'a, B: Backend + ?Sized> {
    backend: &'a B,
    kind: ObjectKind,
    name: String,
    data: Vec<u8>,
}

impl<B: Backend + ?Sized> StagedObject for BufferedStaged<'_, B> {
    fn commit(self: Box<Self>) -> Result<()> {
        self.backend.write(self.kind, &self.name, &self.data)
    }
}

/// Whether an error is "object not found".
pub fn is_not_found(error: &crate::Error) -> bool {
    matches!(error, crate::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}
