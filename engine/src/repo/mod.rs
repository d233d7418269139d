//! Opening and creating repositories; reading blobs, trees and snapshot manifests; the read
//! path of file content ([`content`]) and of paths in a snapshot ([`lookup_path`]).
//!
//! A [`Repository`] owns the storage backend, the decoded config and the local index cache.
//! Opening one reads the config, opens the index and brings it up to date with the packs that
//! exist (reading only trailers of packs it does not know): it never loads the whole index.

pub mod content;
pub mod keys;
mod lookup;
mod resolve;
mod state;
mod tree_cache;
pub mod writers;

pub use lookup::lookup_path;
pub use resolve::Resolved;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::config::{
    self, ChunkerConfig, ChunkerParams, Compression, Config, EncryptionConfig,
};
use crate::format::manifest::{self, Manifest};
use crate::format::pack::{self, BlobKind, Encoding};
use crate::format::tree::{self, ChunkRef, Tree};
use crate::format::FORMAT_VERSION;
use crate::id::{BlobId, ListId, RepositoryId, SnapshotId, TreeId};
use crate::index::rebuild::{self, SyncReport};
use crate::index::{BlobLocation, Index, IndexReader};
use crate::keys::keyfile::KdfParams;
use crate::keys::{Encryption, MasterKeys};
use crate::storage::{is_not_found, Backend, ObjectKind};
use crate::write::{self, segments};

/// Settings fixed at `vault init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunker: ChunkerConfig,
    pub compression: Compression,
    pub pack_target_size: u32,
    /// `Some`: an encrypted repository whose first key file wraps its keys with this password.
    pub encryption: Option<(Password, KdfParams)>,
}

/// A password, wiped from memory when dropped.
pub type Password = zeroize::Zeroizing<Vec<u8>>;

impl Default for InitOptions {
    /// Defaults chosen by measurement; see `format-spec/03-chunking.md`.
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerConfig {
                // 16/64/256 KiB since format 5's deltas: a changed chunk costs its delta, not
                // its size, so larger chunks lose little and save metadata (03-chunking §3.5).
                stream: ChunkerParams {
                    min: 16 << 10,
                    avg: 64 << 10,
                    max: 256 << 10,
                },
                file: ChunkerParams {
                    min: 256 << 10,
                    avg: 1 << 20,
                    max: 4 << 20,
                },
            },
            compression: Compression::Zstd { level: 1 },
            pack_target_size: 16 << 20,
            encryption: None,
        }
    }
}

impl InitOptions {
    /// Checks the settings `init` would write, before anything is asked for or written.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason| Error::invalid("init", reason);
        self.chunker.stream.validate().map_err(invalid)?;
        self.chunker.file.validate().map_err(invalid)?;
        self.compression.validate().map_err(invalid)?;
        if let Some((_, kdf)) = &self.encryption {
            kdf.validate().map_err(invalid)?;
        }
        Ok(())
    }
}

/// A snapshot manifest with its id.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub id: SnapshotId,
    pub manifest: Manifest,
    /// No retention policy forgets it (`vault protect`, `snapshot --protect`).
    pub protected: bool,
    /// Soft-deleted by `vault forget`; restorable with `vault undelete` until a prune. Also
    /// true for a snapshot another manifest replaces ([`Self::replaced_by`]), marker or not.
    pub forgotten: bool,
    /// The snapshot whose manifest replaces this one (a label or tag edit; the newest such
    /// manifest when there are several). A replaced snapshot is hidden like a forgotten one,
    /// even before its `forgotten/` marker exists (format-spec/09-rotation.md §9.9).
    pub replaced_by: Option<SnapshotId>,
}

/// Which snapshots a command considers (`--host`, `--tag`, `--label`).
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub host: Option<String>,
    /// Every tag listed must be present.
    pub tags: Vec<String>,
    /// Every label listed must be present with this value.
    pub labels: Vec<(String, String)>,
}

impl SnapshotFilter {
    pub fn matches(&self, m: &Manifest) -> bool {
        self.host.as_ref().is_none_or(|h| &m.host == h)
            && self.tags.iter().all(|t| m.tags.contains(t))
            && self.labels.iter().all(|(k, v)| m.labels.get(k) == Some(v))
    }
}

/// Sets [`SnapshotInfo::replaced_by`] (and with it `forgotten`) of every snapshot that another
/// readable manifest replaces. `snapshots` is sorted oldest first; among several replacements
/// of one snapshot the last (newest by time, then id) is named.
fn hide_replaced(snapshots: &mut [SnapshotInfo]) {
    let replacing: std::collections::HashMap<SnapshotId, SnapshotId> = snapshots
        .iter()
        .filter_map(|s| Some((s.manifest.replaced()?, s.id)))
        .filter(|(old, new)| old != new)
        .collect();
    for s in snapshots.iter_mut() {
        if let Some(new) = replacing.get(&s.id) {
            s.replaced_by = Some(*new);
            s.forgotten = true;
        }
    }
}

/// What an unreadable index segment costs (said wherever one is reported).
pub const SEGMENT_LOST: &str =
    "nothing is lost: the packs it describes were indexed from their own trailers";

pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    id: RepositoryId,
    encryption: Encryption,
    /// Name of the key file that unlocked the repository (encrypted repositories).
    key: Option<String>,
    index: Index,
    /// Things the operator should hear about (index rebuilt, unreadable packs), in order.
    notices: Vec<String>,
    /// Trees and chunk lists kept locally (remote repositories only).
    tree_cache: Option<tree_cache::TreeCache>,
    /// Delta bases read lately (format version 5).
    bases: crate::blobs::BaseCache,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.backend.location())
            .finish()
    }
}

/// [`Repository::io_scope`] for a bare backend.
pub fn io_scope<T: Send>(backend: &dyn Backend, f: impl FnOnce() -> T + Send) -> T {
    let wanted = backend.concurrency();
    if !backend.is_remote() || wanted <= rayon::current_num_threads() {
        return f();
    }
    match rayon::ThreadPoolBuilder::new()
        .num_threads(wanted)
        .thread_name(|i| format!("vault-io-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Readable items and the names and errors of those that could not be read.
pub type Listing<T> = (Vec<T>, Vec<(String, Error)>);

/// A location in the form that names one repository on this machine: a local path with its
/// symlinks resolved (when it exists), any other location as given.
pub(crate) fn canonical_location(location: &str) -> String {
    Path::new(location)
        .canonicalize()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| location.to_string())
}

/// Directory of the local cache of repository `id` at `location` under `cache_root`. A cache
/// belongs to one repository *and* one location: copies of a repository (`cp -a`, rsync to a
/// USB disk) share its id, and what one of them taught its cache (damaged blobs, packs it
/// lacks) must never make another look damaged.
pub fn cache_dir(cache_root: &Path, id: &RepositoryId, location: &str) -> PathBuf {
    let key = blake3::hash(canonical_location(location).as_bytes());
    cache_root
        .join(id.to_hex())
        .join(format!("at-{}", &key.to_hex()[..16]))
}

/// Path of the index cache of repository `id` at `location` under `cache_root`.
pub fn index_path(cache_root: &Path, id: &RepositoryId, location: &str) -> PathBuf {
    cache_dir(cache_root, id, location).join("index.redb")
}

impl Repository {
    /// Creates a repository. Fails with [`Error::AlreadyExists`] if one is there.
    pub fn init(
        backend: Arc<dyn Backend>,
        cache_root: &Path,
        options: &InitOptions,
    ) -> Result<Repository> {
        let id = RepositoryId::random();
        let mut config = Config {
            version: FORMAT_VERSION,
            id: id.to_hex(),
            created: jiff::Timestamp::now().to_string(),
            chunker: options.chunker.clone(),
            compression: options.compression,
            pack_target_size: options.pack_target_size,
            encryption: EncryptionConfig::None,
        };
        let master = options.encryption.as_ref().map(|_| MasterKeys::random());
        if let Some(master) = &master {
            config.encryption = EncryptionConfig::Repokey {
                aead: config::AEAD.into(),
                mac: "0".repeat(64),
            };
            let mac = Encryption::with_keys(master.clone())
                .config_mac(&config.mac_input())
                .expect("encrypted");
            config.encryption = EncryptionConfig::Repokey {
                aead: config::AEAD.into(),
                mac: hex::encode(mac),
            };
        }
        config
            .validate()
            .map_err(|reason| Error::invalid("init", reason))?;
        if let Some((_, kdf)) = &options.encryption {
            kdf.validate()
                .map_err(|reason| Error::invalid("init", reason))?;
        }
        if backend.size(ObjectKind::Config, "config").is_ok() {
            return Err(Error::AlreadyExists {
                path: backend.location().into(),
            });
        }
        backend.create()?;
        // The first key file before the config: a config naming encryption is never without
        // a key.
        if let (Some(master), Some((password, kdf))) = (&master, &options.encryption) {
            keys::write_key_file(backend.as_ref(), master, password, *kdf, &id)?;
        }
        // The config is written last: until it exists the location is not a repository.
        match backend.write(ObjectKind::Config, "config", &config::encode(&config)) {
            Err(Error::AlreadyExists { .. }) => {
                return Err(Error::AlreadyExists {
                    path: backend.location().into(),
                })
            }
            other => other?,
        }
        match &options.encryption {
            None => Self::open(backend, cache_root),
            Some((password, _)) => Self::unlock(backend, cache_root, &|| Ok(password.clone())),
        }
    }

    /// Whether a repository (its config) exists at the backend's location.
    pub fn exists(backend: &dyn Backend) -> Result<bool> {
        match backend.size(ObjectKind::Config, "config") {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens an existing unencrypted repository and brings its index cache up to date; an
    /// encrypted one is refused ([`Error::PasswordNeeded`]).
    pub fn open(backend: Arc<dyn Backend>, cache_root: &Path) -> Result<Repository> {
        Self::unlock(backend, cache_root, &|| Err(Error::PasswordNeeded))
    }

    /// Opens an existing repository, asking `password` for the password if it is encrypted
    /// (and only then), and brings its index cache up to date. Nothing is written before the
    /// repository is unlocked.
    pub fn unlock(
        backend: Arc<dyn Backend>,
        cache_root: &Path,
        password: &dyn Fn() -> Result<Password>,
    ) -> Result<Repository> {
        let bytes = match backend.read(ObjectKind::Config, "config") {
            Ok(bytes) => bytes,
            Err(e) if is_not_found(&e) => {
                return Err(Error::NotARepository {
                    path: backend.location().into(),
                })
            }
            Err(e) => return Err(e),
        };
        let config = config::decode(&bytes).map_err(|e| match e {
            crate::format::DecodeError::Version(found) => Error::UnsupportedVersion {
                path: format!("{}/config", backend.location()).into(),
                found,
                supported: FORMAT_VERSION,
            },
            other => Error::Corrupt {
                object: format!("{}/config", backend.location()),
                reason: format!("{other}; it never changes after `vault init`: put back `config` from a file-level copy of this repository (a `vault copy` destination is another repository, with another config)"),
            },
        })?;
        let id = config.repository_id().expect("validated");
        let markers = keys::encrypted_markers(cache_root, &id, &backend.location());
        let (encryption, key) = if config.encryption.is_on() {
            let (encryption, key) = keys::unlock(backend.as_ref(), &config, &id, password)?;
            (encryption, Some(key))
        } else {
            keys::refuse_downgrade(backend.as_ref(), &markers)?;
            (Encryption::none(), None)
        };
        let path = index_path(cache_root, &id, &backend.location());
        let mut notices = Vec::new();
        // Before caches were kept per location, one index served every copy of a repository.
        // It cannot tell which copy taught it what, so it is dropped (a cache: nothing is lost).
        let legacy = cache_root.join(id.to_hex()).join("index.redb");
        if legacy.is_file() && std::fs::remove_file(&legacy).is_ok() {
            let _ = std::fs::remove_dir_all(legacy.with_file_name("trees"));
            notices.push(format!(
                "removed the index cache {}, which all copies of this repository shared; each location now has its own",
                legacy.display()
            ));
        }
        // A cache file missing from an existing cache directory was deleted (or lost); a missing
        // directory is this machine's first use of the repository, which needs no notice.
        let lost = !path.exists() && path.parent().is_some_and(Path::exists);
        let index = match Index::open(&path) {
            Ok(index) => index,
            Err(e) => {
                // The index is a cache: a damaged one is replaced, never trusted.
                notices.push(format!(
                    "index cache {} was unusable ({e}); moved aside, rebuilding it from the pack trailers",
                    path.display()
                ));
                // Moved aside rather than deleted, in case it is wanted for a bug report.
                let aside = path.with_file_name(format!(
                    "index.redb.broken-{}",
                    jiff::Timestamp::now().as_second()
                ));
                std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
                Index::open(&path)?
            }
        };
        if encryption.is_on() {
            // Remembers that this repository (by id and by location) is encrypted: a config
            // replaced by an unencrypted one is refused on this machine (keys::refuse_downgrade).
            keys::write_markers(&markers)?;
        }
        let backend_is_remote = backend.is_remote();
        let mut repo = Repository {
            backend,
            config,
            id,
            encryption,
            key,
            index,
            notices,
            tree_cache: backend_is_remote
                .then(|| tree_cache::TreeCache::new(path.with_file_name("trees"))),
            bases: Default::default(),
        };
        let (full, bad_plans) = repo.apply_plans()?;
        for (_, error) in bad_plans {
            repo.notices.push(error.to_string());
        }
        let report = repo.sync_index(false)?;
        if lost && report.packs_added > 0 {
            repo.notices.push(format!(
                "index cache {} was missing; rebuilt it: {} packs from index segments, {} from their trailers",
                path.display(),
                report.packs_from_segments,
                report.packs_added - report.packs_from_segments
            ));
        }
        if full {
            repo.notices.push(
                "a prune changed which packs hold which blobs; index cache re-read from the pack trailers".into(),
            );
        }
        repo.note_sync(&report);
        Ok(repo)
    }

    fn note_sync(&mut self, report: &SyncReport) {
        if report.packs_vanished > 0 {
            self.notices.push(format!(
                "{} packs known to the index cache are gone; index rebuilt",
                report.packs_vanished
            ));
        }
        for (name, reason) in &report.unreadable {
            self.notices
                .push(format!("pack {name} could not be indexed: {reason}"));
        }
        for (_, error) in &report.segments_unreadable {
            self.notices.push(format!("{error}; {SEGMENT_LOST}"));
        }
    }

    /// Reads new pack trailers into the index; `full` rebuilds it from every trailer.
    pub fn sync_index(&self, full: bool) -> Result<SyncReport> {
        self.io_scope(|| rebuild::sync(&self.index, self.backend.as_ref(), &self.encryption, full))
    }

    /// `vault index rebuild`: empties the cache (locations, and what verify and prune recorded
    /// in it) and builds it again from the repository's plans, segments and pack trailers.
    pub fn rebuild_index(&self) -> Result<SyncReport> {
        self.index.reset()?;
        let (_, bad_plans) = self.apply_plans()?;
        if let Some((_, error)) = bad_plans.into_iter().next() {
            return Err(error);
        }
        self.sync_index(false)
    }

    /// Runs `f` with as many rayon threads as the backend wants requests in flight, when that
    /// is more than the machine's cores (a remote repository: each thread mostly waits on the
    /// network); otherwise on the current pool.
    pub fn io_scope<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        io_scope(self.backend.as_ref(), f)
    }

    /// [`segments::compact_segments`] on this repository.
    pub fn compact_segments(&self) -> Result<segments::CompactReport> {
        self.io_scope(|| {
            segments::compact_segments(&self.index, self.backend.as_ref(), &self.encryption)
        })
    }

    /// Where blobs written into this repository go ([`crate::write`]).
    pub fn write_destination(&self) -> write::Destination<'_> {
        write::Destination {
            backend: self.backend.as_ref(),
            encryption: &self.encryption,
            index: &self.index,
            compression: self.config.compression,
            pack_target: self.config.pack_target_size as usize,
            format_version: self.config.version,
            bases: &self.bases,
        }
    }

    /// The raw bytes of delta base `id` (a chunk stored whole), checked.
    pub fn read_base(&self, id: BlobId) -> Result<std::sync::Arc<Vec<u8>>> {
        self.bases
            .get(self.backend.as_ref(), &self.encryption, &self.index, id)
    }

    /// The raw bytes of base chunk `id` if the base cache holds them (nothing is read).
    pub fn cached_base(&self, id: &BlobId) -> Option<std::sync::Arc<Vec<u8>>> {
        self.bases.cached(id)
    }

    /// Keeps the checked raw bytes of base chunk `id` in the base cache.
    pub fn cache_base(&self, id: BlobId, raw: std::sync::Arc<Vec<u8>>) {
        self.bases.insert(id, raw);
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The repository's encryption (off for an unencrypted repository).
    pub fn encryption(&self) -> &Encryption {
        &self.encryption
    }
    /// Name of the key file that unlocked the repository, if encrypted.
    pub fn current_key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    pub fn id(&self) -> RepositoryId {
        self.id
    }
    pub fn index(&self) -> &Index {
        &self.index
    }
    pub fn notices(&self) -> &[String] {
        &self.notices
    }
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Reads, checks and decompresses one blob of the expected kind.
    pub fn read_blob(
        &self,
        reader: &IndexReader<'_>,
        id: BlobId,
        kind: BlobKind,
    ) -> Result<Vec<u8>> {
        let loc = self.locate(reader, id, kind)?;
        self.read_located(id, kind, &loc)
    }

    /// Where the index says a blob of `kind` is; [`Error::MissingBlob`] when nowhere.
    pub fn locate(
        &self,
        reader: &IndexReader<'_>,
        id: BlobId,
        kind: BlobKind,
    ) -> Result<BlobLocation> {
        reader
            .lookup(&id)?
            .filter(|l| l.kind == kind)
            .ok_or_else(|| Error::MissingBlob {
                kind: kind.name(),
                id: id.to_hex(),
            })
    }

    /// Reads, checks and decompresses a blob at a location found by [`Self::locate`].
    pub fn read_located(&self, id: BlobId, kind: BlobKind, loc: &BlobLocation) -> Result<Vec<u8>> {
        crate::blobs::read_located(
            self.backend.as_ref(),
            &self.encryption,
            &self.bases,
            &self.index,
            id,
            kind,
            loc,
        )
    }

    /// Reads blobs of `kind` that lie close together in one pack (`locations` in pack order,
    /// none overlapping the previous) with one range read, checks each, and returns their raw
    /// bytes back to back (the bytes between them are read but not used). `raw_lens[i]`, when
    /// given, is what the caller expects blob `i` to be long (a chunk reference's length); a
    /// blob of another length is corrupt. A delta chunk's base comes from `bases` when it is
    /// there (fetched with the batch), else through the base cache.
    pub fn read_run(
        &self,
        ids: &[BlobId],
        kind: BlobKind,
        locations: &[BlobLocation],
        raw_lens: Option<&[u32]>,
        bases: &crate::blobs::BaseSet,
    ) -> Result<Vec<u8>> {
        let (Some(first), Some(last)) = (locations.first(), locations.last()) else {
            return Ok(Vec::new());
        };
        let len = last.offset + last.stored_len as u64 - first.offset;
        let stored =
            self.backend
                .read_range(ObjectKind::Pack, &first.pack.to_hex(), first.offset, len)?;
        let object = |id: &BlobId| {
            format!(
                "{} {} in pack {}",
                kind.name(),
                id.to_hex(),
                first.pack.to_hex()
            )
        };
        let damaged = |id: &BlobId, e| Error::damaged(object(id), e);
        for (i, (id, loc)) in ids.iter().zip(locations).enumerate() {
            if let Some(expected) = raw_lens.map(|l| l[i]).filter(|&l| l != loc.raw_len) {
                return Err(Error::Corrupt {
                    object: object(id),
                    reason: format!(
                        "{} bytes long, but the file's chunk list says {expected}",
                        loc.raw_len
                    ),
                });
            }
        }
        // Raw blobs back to back are their own raw bytes: checked in place, not copied.
        let back_to_back = locations
            .windows(2)
            .all(|w| w[1].offset == w[0].offset + w[0].stored_len as u64);
        if back_to_back
            && !self.encryption.is_on()
            && locations.iter().all(|l| l.encoding == Encoding::Raw)
        {
            for (id, loc) in ids.iter().zip(locations) {
                let start = (loc.offset - first.offset) as usize;
                let bytes = &stored[start..start + loc.stored_len as usize];
                pack::check_blob(
                    &self.encryption,
                    *id,
                    kind,
                    loc.encoding,
                    loc.raw_len,
                    bytes,
                    None,
                )
                .map_err(|e| damaged(id, e))?;
            }
            return Ok(stored);
        }
        let mut out = Vec::with_capacity(locations.iter().map(|l| l.raw_len as usize).sum());
        for (id, loc) in ids.iter().zip(locations) {
            let start = (loc.offset - first.offset) as usize;
            let bytes = &stored[start..start + loc.stored_len as usize];
            // A delta chunk's base: from the caller's set (fetched with the batch's other
            // bases), else read (once, then cached); a base that cannot be read makes the
            // delta unreadable, which is what it is.
            let base = match loc.encoding.base() {
                Some(base) => Some(bases.get(base, |id| self.read_base(id))?),
                None => None,
            };
            pack::open_blob_append(
                &self.encryption,
                *id,
                kind,
                loc.encoding,
                loc.raw_len,
                bytes,
                base.as_deref().map(Vec::as_slice),
                &mut out,
            )
            .map_err(|e| damaged(id, e))?;
        }
        Ok(out)
    }

    /// A tree or chunk list blob: from the local tree cache of a remote repository when it is
    /// there, else from its pack (and then kept in that cache).
    fn read_meta(&self, reader: &IndexReader<'_>, id: BlobId, kind: BlobKind) -> Result<Vec<u8>> {
        let Some(cache) = &self.tree_cache else {
            return self.read_blob(reader, id, kind);
        };
        if let Some(raw) = cache.get(&self.encryption, kind, &id) {
            return Ok(raw);
        }
        let raw = self.read_blob(reader, id, kind)?;
        cache.put(kind, &id, &raw);
        Ok(raw)
    }

    pub fn read_tree(&self, reader: &IndexReader<'_>, id: TreeId) -> Result<Tree> {
        let raw = self.read_meta(reader, id.into(), BlobKind::Tree)?;
        tree::decode_tree(&raw).map_err(|e| Error::damaged(format!("tree {}", id.to_hex()), e))
    }

    /// [`Self::read_tree`] from the pack, never from the local tree cache: what verify needs.
    pub fn read_tree_from_pack(&self, reader: &IndexReader<'_>, id: TreeId) -> Result<Tree> {
        let raw = self.read_blob(reader, id.into(), BlobKind::Tree)?;
        tree::decode_tree(&raw).map_err(|e| Error::damaged(format!("tree {}", id.to_hex()), e))
    }

    pub fn read_list(&self, reader: &IndexReader<'_>, id: ListId) -> Result<Vec<ChunkRef>> {
        let raw = self.read_meta(reader, id.into(), BlobKind::List)?;
        tree::decode_list(&raw)
            .map_err(|e| Error::damaged(format!("chunk list {}", id.to_hex()), e))
    }

    /// [`Self::read_list`] from the pack, never from the local tree cache.
    pub fn read_list_from_pack(
        &self,
        reader: &IndexReader<'_>,
        id: ListId,
    ) -> Result<Vec<ChunkRef>> {
        let raw = self.read_blob(reader, id.into(), BlobKind::List)?;
        tree::decode_list(&raw)
            .map_err(|e| Error::damaged(format!("chunk list {}", id.to_hex()), e))
    }

    pub fn read_snapshot(&self, id: SnapshotId) -> Result<Manifest> {
        let name = id.to_hex();
        let bytes = self.backend.read(ObjectKind::Snapshot, &name)?;
        if SnapshotId::digest(&bytes) != id {
            return Err(Error::Corrupt {
                object: format!("snapshot {name}"),
                reason: "content does not match its name".into(),
            });
        }
        manifest::decode(&self.encryption, &bytes)
            .map_err(|e| Error::damaged(format!("snapshot {name}"), e))
    }

    /// Every snapshot that is not forgotten, oldest first, plus the ones that could not be read
    /// (name, error).
    pub fn snapshots(&self) -> Result<Listing<SnapshotInfo>> {
        let (mut good, bad) = self.all_snapshots()?;
        good.retain(|s| !s.forgotten);
        Ok((good, bad))
    }

    /// Every snapshot including forgotten ones, oldest first, plus the unreadable ones.
    pub fn all_snapshots(&self) -> Result<Listing<SnapshotInfo>> {
        let forgotten = self.forgotten()?;
        let protected = self.protected()?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for info in self.backend.list(ObjectKind::Snapshot)? {
            let Some(id) = SnapshotId::from_hex(&info.name) else {
                continue;
            };
            match self.read_snapshot(id) {
                Ok(manifest) => good.push(SnapshotInfo {
                    id,
                    manifest,
                    protected: protected.contains(&id),
                    forgotten: forgotten.contains(&id),
                    replaced_by: None,
                }),
                // Deleted by a prune between list and read.
                Err(e) if is_not_found(&e) => {}
                Err(e) if forgotten.contains(&id) => {
                    let _ = e; // a forgotten snapshot's damage is no longer anyone's concern
                }
                Err(e) => bad.push((info.name, e)),
            }
        }
        // By time as an instant: RFC 3339 strings with trimmed fractions do not sort as text.
        good.sort_by_cached_key(|s| (s.manifest.time.parse::<jiff::Timestamp>().ok(), s.id));
        hide_replaced(&mut good);
        Ok((good, bad))
    }

    /// Where a snapshot's content was first taken: its `origin`, or `<this repository's
    /// id>/<its id>` (format-spec/11-remote.md §11.6). Copies and edits keep it.
    pub fn origin_of(&self, snapshot: &SnapshotInfo) -> String {
        snapshot
            .manifest
            .origin
            .clone()
            .unwrap_or_else(|| format!("{}/{}", self.id.to_hex(), snapshot.id.to_hex()))
    }

    /// Writes `manifest`, which replaces snapshot `old` (a label or tag edit, or a copy bringing
    /// an edit), in the order of format-spec/09-rotation.md §9.9 (E1–E4), so that a crash
    /// between two steps never shows both snapshots and never leaves the replacement
    /// unprotected: with `protect`, `protected/<new>` first (E1); the manifest (E2); then
    /// `forgotten/<old>` (E3, even when `old` is protected); then `protected/<old>` deleted (E4).
    pub fn replace_snapshot(
        &self,
        old: SnapshotId,
        manifest: &Manifest,
        protect: bool,
    ) -> Result<SnapshotId> {
        debug_assert_eq!(manifest.replaced(), Some(old));
        let id = self.write_snapshot(manifest, protect)?;
        self.mark_replaced(old)?;
        Ok(id)
    }

    /// Writes a manifest (last step of a snapshot, invariant I3). With `protect`, the protection
    /// marker is written first, so the snapshot is protected from the instant it exists.
    pub fn write_snapshot(&self, manifest: &Manifest, protect: bool) -> Result<SnapshotId> {
        let (id, bytes) = manifest::encode(&self.encryption, manifest);
        if protect {
            self.set_protected(id, true)?;
        }
        match self
            .backend
            .write(ObjectKind::Snapshot, &id.to_hex(), &bytes)
        {
            Err(Error::AlreadyExists { .. }) => Ok(id),
            other => other.map(|()| id),
        }
    }
}
