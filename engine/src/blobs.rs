//! One stored blob to its raw bytes, and the cache of delta bases.
//!
//! Role: the primitive under both paths: the read path (`repo/`: a tree, a chunk list, a delta's
//! base) and the write path (`write/`: the base a new chunk is encoded against). It sits below
//! both, above `index/`, `format/` and `storage/`.
//!
//! Input: a blob's id, kind and index location. Output: its raw bytes, checked against its id
//! (invariant I7). A delta chunk is decoded with its base's raw bytes, which come from the
//! [`BaseCache`]: a base is always a chunk stored whole (delta depth 1,
//! format-spec/04-packs.md §4.9), so reading one never needs another. A reader that decodes
//! many deltas at once (a restore batch, a piece of a pack in `verify --read-data`) fetches
//! their distinct bases together first ([`crate::repo::content::read_bases`]) into a
//! [`BaseSet`], and decodes from that.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::format::pack::{self, BlobKind, Encoding};
use crate::id::BlobId;
use crate::index::{BlobLocation, Index};
use crate::keys::Encryption;
use crate::storage::{Backend, ObjectKind};

/// Reads, checks and decodes one blob at `loc` (found by an index lookup). A delta chunk's base
/// is read through `bases`.
pub fn read_located(
    backend: &dyn Backend,
    encryption: &Encryption,
    bases: &BaseCache,
    index: &Index,
    id: BlobId,
    kind: BlobKind,
    loc: &BlobLocation,
) -> Result<Vec<u8>> {
    let stored = backend.read_range(
        ObjectKind::Pack,
        &loc.pack.to_hex(),
        loc.offset,
        loc.stored_len as u64,
    )?;
    let base = match loc.encoding.base() {
        Some(base) => Some(bases.get(backend, encryption, index, base)?),
        None => None,
    };
    let opened = match &base {
        Some(base) => {
            let mut out = Vec::with_capacity(loc.raw_len as usize);
            pack::open_blob_append(
                encryption,
                id,
                kind,
                loc.encoding,
                loc.raw_len,
                &stored,
                Some(base),
                &mut out,
            )
            .map(|()| out)
        }
        None => pack::open_blob_owned(encryption, id, kind, loc.encoding, loc.raw_len, stored),
    };
    opened.map_err(|e| {
        Error::damaged(
            format!(
                "{} {} in pack {}",
                kind.name(),
                id.to_hex(),
                loc.pack.to_hex()
            ),
            e,
        )
    })
}

/// Raw bytes of delta bases read lately, at most [`BaseCache::BUDGET`] bytes (oldest out
/// first). Consecutive deltas of a dump often share a base; a restore batch reads each base
/// once.
#[derive(Default)]
pub struct BaseCache {
    inner: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    bases: HashMap<BlobId, Arc<Vec<u8>>>,
    order: VecDeque<BlobId>,
    bytes: usize,
}

impl BaseCache {
    /// Bytes of bases kept at most.
    pub const BUDGET: usize = 32 << 20;

    /// The raw bytes of base chunk `id`, checked, from the cache or read.
    pub fn get(
        &self,
        backend: &dyn Backend,
        encryption: &Encryption,
        index: &Index,
        id: BlobId,
    ) -> Result<Arc<Vec<u8>>> {
        if let Some(raw) = self.inner.lock().unwrap().bases.get(&id) {
            return Ok(raw.clone());
        }
        let loc = index
            .reader()?
            .lookup(&id)?
            .filter(|l| l.kind == BlobKind::Chunk)
            .ok_or_else(|| Error::MissingBlob {
                kind: BlobKind::Chunk.name(),
                id: id.to_hex(),
            })?;
        if let Encoding::Delta { .. } = loc.encoding {
            return Err(Error::Corrupt {
                object: format!("chunk {}", id.to_hex()),
                reason: "a delta's base is a delta itself".into(),
            });
        }
        let raw = Arc::new(read_located(
            backend,
            encryption,
            self,
            index,
            id,
            BlobKind::Chunk,
            &loc,
        )?);
        self.insert(id, raw.clone());
        Ok(raw)
    }

    /// The raw bytes of base chunk `id` if they are cached; nothing is read.
    pub fn cached(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.inner.lock().unwrap().bases.get(id).cloned()
    }

    /// Keeps `raw` as the bytes of base `id` (checked by the caller).
    pub fn insert(&self, id: BlobId, raw: Arc<Vec<u8>>) {
        let mut cached = self.inner.lock().unwrap();
        if raw.len() > Self::BUDGET / 4 || cached.bases.contains_key(&id) {
            return;
        }
        cached.bytes += raw.len();
        cached.bases.insert(id, raw);
        cached.order.push_back(id);
        while cached.bytes > Self::BUDGET {
            let Some(old) = cached.order.pop_front() else {
                break;
            };
            if let Some(gone) = cached.bases.remove(&old) {
                cached.bytes -= gone.len();
            }
        }
    }
}

/// The raw bytes of the delta bases a batch of deltas needs, fetched together before any of
/// them is decoded, and held until the batch is done (so the [`BaseCache`] evicting them in
/// between costs nothing). Bounded by its maker ([`crate::repo::content::read_bases`]); a base
/// not in the set (left out by that bound, or unreadable) is read through the cache as before,
/// which also reports why an unreadable one is.
#[derive(Default)]
pub struct BaseSet {
    bases: HashMap<BlobId, Arc<Vec<u8>>>,
}

impl BaseSet {
    /// An empty set: every base is read through the cache.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds the checked raw bytes of base `id`.
    pub fn insert(&mut self, id: BlobId, raw: Arc<Vec<u8>>) {
        self.bases.insert(id, raw);
    }

    /// Whether base `id` is in the set.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.bases.contains_key(id)
    }

    /// How many bases the set holds.
    pub fn len(&self) -> usize {
        self.bases.len()
    }

    /// Whether the set holds no base.
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// The raw bytes of base `id`: from the set, else from `read` (the cache, or a read).
    pub fn get<E>(
        &self,
        id: BlobId,
        read: impl FnOnce(BlobId) -> std::result::Result<Arc<Vec<u8>>, E>,
    ) -> std::result::Result<Arc<Vec<u8>>, E> {
        match self.bases.get(&id) {
            Some(raw) => Ok(raw.clone()),
            None => read(id),
        }
    }
}
