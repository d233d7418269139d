//! The index: blob id -> location (pack, offset, lengths). A cache of what the pack trailers say.
//!
//! Wraps redb completely; nothing outside this module names a redb type. The database lives in
//! the local cache directory, outside the repository, and is opened in redb's multi-writer mode
//! so that several vault processes can use one repository at once. Losing or corrupting it loses
//! nothing: [`rebuild::sync`] brings it in line with the packs that exist, reading only the
//! trailers of packs it does not know yet.

pub mod rebuild;
mod tables;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::error::{Error, Result};
use crate::format::pack::{BlobEntry, BlobKind, Encoding};
use crate::id::{BlobId, PackId};
use tables::*;

/// Where a blob can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub kind: BlobKind,
    pub encoding: Encoding,
}

/// A known pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRecord {
    pub id: PackId,
    pub size: u64,
    pub blobs: u32,
}

/// Memory redb may use for its page cache.
const CACHE_BYTES: usize = 8 << 20;

pub struct Index {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

fn index_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Index {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Index {
    /// Opens (creating if needed) the index database at `path`.
    pub fn open(path: &Path) -> Result<Index> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            // redb's default cache may grow to 1 GiB; the OS page cache serves repeated reads.
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| index_error(path, e))?;
        let index = Index {
            db,
            path: path.to_path_buf(),
        };
        index.ensure_tables()?;
        Ok(index)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        index_error(&self.path, e)
    }

    fn ensure_tables(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let layout = meta
                .get("layout")
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            match layout {
                Some(LAYOUT_VERSION) => {}
                Some(other) => return Err(self.err(format!("cache layout {other} is not {LAYOUT_VERSION}; delete the index file to rebuild it"))),
                None => {
                    meta.insert("layout", LAYOUT_VERSION).map_err(|e| self.err(e))?;
                }
            }
            txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            txn.open_table(PACKS).map_err(|e| self.err(e))?;
            txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
            txn.open_table(PACK_VERIFIED).map_err(|e| self.err(e))?;
            txn.open_table(DAMAGED).map_err(|e| self.err(e))?;
            txn.open_table(CONDEMNED).map_err(|e| self.err(e))?;
            txn.open_table(PLANS).map_err(|e| self.err(e))?;
            txn.open_table(DAMAGED_SNAPSHOTS).map_err(|e| self.err(e))?;
            txn.open_table(SEGMENTS).map_err(|e| self.err(e))?;
            txn.open_table(COPIED).map_err(|e| self.err(e))?;
            txn.open_table(DELTA_BASES).map_err(|e| self.err(e))?;
            txn.open_table(SIMILAR).map_err(|e| self.err(e))?;
            txn.delete_table(SIMILAR_OLD).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// A consistent read view for many lookups.
    pub fn reader(&self) -> Result<IndexReader<'_>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        let packs = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let bases = txn.open_table(DELTA_BASES).map_err(|e| self.err(e))?;
        let similar = txn.open_table(SIMILAR).map_err(|e| self.err(e))?;
        Ok(IndexReader {
            index: self,
            blobs,
            packs,
            bases,
            similar,
            pack_cache: Default::default(),
        })
    }

    /// Records a durable pack and its blobs. Blobs already indexed elsewhere keep their location.
    /// Adding a pack that is already known, or that a prune plan condemned, does nothing.
    pub fn add_packs(&self, packs: &[(PackId, u64, Vec<BlobEntry>)]) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        self.add_packs_in(&txn, packs, false)?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// Like [`Self::add_packs`], for packs a prune wrote with copies of blobs: when such a pack
    /// is already known (the copy reproduced it), its blobs that are indexed nowhere are
    /// pointed at it.
    pub fn add_copies(&self, packs: &[(PackId, u64, Vec<BlobEntry>)]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        self.add_packs_in(&txn, packs, true)?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// With `fill_known`, a pack that is already known has its blobs that are not indexed
    /// anywhere pointed at it (a prune's copy can reproduce a pack that exists already).
    fn add_packs_in(
        &self,
        txn: &redb::WriteTransaction,
        packs: &[(PackId, u64, Vec<BlobEntry>)],
        fill_known: bool,
    ) -> Result<()> {
        let mut numbers = txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
        let mut pack_table = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let mut blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        let mut bases = txn.open_table(DELTA_BASES).map_err(|e| self.err(e))?;
        let damaged = txn.open_table(DAMAGED).map_err(|e| self.err(e))?;
        let condemned = txn.open_table(CONDEMNED).map_err(|e| self.err(e))?;
        for (pack, size, entries) in packs {
            if condemned.get(pack.0).map_err(|e| self.err(e))?.is_some() {
                continue;
            }
            let known = numbers
                .get(pack.0)
                .map_err(|e| self.err(e))?
                .map(|n| n.value());
            let next = match known {
                Some(_) if !fill_known => continue,
                Some(number) => number,
                None => {
                    let next = pack_table
                        .last()
                        .map_err(|e| self.err(e))?
                        .map(|(k, _)| k.value() + 1)
                        .unwrap_or(0);
                    numbers.insert(pack.0, next).map_err(|e| self.err(e))?;
                    let value = PackValue {
                        id: *pack,
                        size: *size,
                        blobs: entries.len() as u32,
                    };
                    pack_table
                        .insert(next, value.encode())
                        .map_err(|e| self.err(e))?;
                    next
                }
            };
            for entry in entries {
                let bad_copy = damaged
                    .get(key(&entry.id))
                    .map_err(|e| self.err(e))?
                    .is_some_and(|p| p.value() == pack.0);
                if !bad_copy
                    && blobs
                        .get(key(&entry.id))
                        .map_err(|e| self.err(e))?
                        .is_none()
                {
                    blobs
                        .insert(key(&entry.id), BlobValue::from_entry(next, entry).encode())
                        .map_err(|e| self.err(e))?;
                    if let Some(base) = entry.encoding.base() {
                        bases
                            .insert(key(&entry.id), key(&base))
                            .map_err(|e| self.err(e))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Records super-features of indexed chunks ([`tables::SIMILAR`]): `(feature, chunk,
    /// replace)`; without `replace` a feature already recorded keeps its chunk.
    pub fn record_similar(&self, features: &[(u64, BlobId, bool)]) -> Result<()> {
        if features.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(SIMILAR).map_err(|e| self.err(e))?;
            for (feature, chunk, replace) in features {
                if *replace || table.get(feature).map_err(|e| self.err(e))?.is_none() {
                    table.insert(feature, key(chunk)).map_err(|e| self.err(e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Forgets super-features whose chunk is no longer indexed as a chunk stored whole (after
    /// a prune deleted it): keeps [`tables::SIMILAR`] as large as the repository's content, not
    /// its history. Returns how many went.
    pub fn forget_stale_similar(&self) -> Result<u64> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed;
        {
            let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            let mut table = txn.open_table(SIMILAR).map_err(|e| self.err(e))?;
            let before = table.len().map_err(|e| self.err(e))?;
            table
                .retain(|_, chunk| {
                    blobs
                        .get(chunk)
                        .ok()
                        .flatten()
                        .is_some_and(|v| !BlobValue::is_delta(&v.value()))
                })
                .map_err(|e| self.err(e))?;
            removed = before - table.len().map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// Whether this cache has applied prune plan `plan`.
    pub fn plan_applied(&self, plan: &[u8; 32]) -> Result<bool> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(PLANS).map_err(|e| self.err(e))?;
        Ok(table.get(plan).map_err(|e| self.err(e))?.is_some())
    }

    /// Packs condemned by a prune plan and not yet seen to be gone.
    pub fn condemned(&self) -> Result<HashSet<PackId>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(CONDEMNED).map_err(|e| self.err(e))?;
        let mut out = HashSet::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            out.insert(PackId(item.map_err(|e| self.err(e))?.0.value()));
        }
        Ok(out)
    }

    /// Applies a prune plan in one transaction: its packs become condemned and no blob is found
    /// in them any more. With `new_packs` (the pruning process, whose index the plan was computed
    /// from) the edit is exact: entries into condemned packs are removed and the repacked copies
    /// added. Without (any other cache), a blob's indexed copy may be one the plan discarded as a
    /// duplicate, so the location tables are emptied and the caller must sync fully.
    pub fn apply_plan(
        &self,
        plan: &[u8; 32],
        condemned_packs: &HashSet<PackId>,
        new_packs: Option<&[(PackId, u64, Vec<BlobEntry>)]>,
    ) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut condemned = txn.open_table(CONDEMNED).map_err(|e| self.err(e))?;
            for pack in condemned_packs {
                condemned.insert(pack.0, 0).map_err(|e| self.err(e))?;
            }
            txn.open_table(PLANS)
                .map_err(|e| self.err(e))?
                .insert(plan, 0)
                .map_err(|e| self.err(e))?;
        }
        match new_packs {
            Some(new_packs) => {
                {
                    let numbers = txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
                    let mut gone = HashSet::new();
                    for pack in condemned_packs {
                        if let Some(n) = numbers.get(pack.0).map_err(|e| self.err(e))? {
                            gone.insert(n.value());
                        }
                    }
                    let mut blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
                    blobs
                        .retain(|_, v| !gone.contains(&BlobValue::pack_of(&v)))
                        .map_err(|e| self.err(e))?;
                }
                self.add_packs_in(&txn, new_packs, true)?;
            }
            None => self.clear_locations(&txn)?,
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Forgets condemned packs that are gone from the repository.
    pub fn drop_packs(&self, packs: &[PackId]) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut numbers = txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
            let mut pack_table = txn.open_table(PACKS).map_err(|e| self.err(e))?;
            let mut condemned = txn.open_table(CONDEMNED).map_err(|e| self.err(e))?;
            let mut verified = txn.open_table(PACK_VERIFIED).map_err(|e| self.err(e))?;
            for pack in packs {
                if let Some(n) = numbers.remove(pack.0).map_err(|e| self.err(e))? {
                    pack_table.remove(n.value()).map_err(|e| self.err(e))?;
                }
                condemned.remove(pack.0).map_err(|e| self.err(e))?;
                verified.remove(pack.0).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// What `vault copy` recorded for these keys (see [`tables::COPIED`]).
    pub fn copied(&self, keys: &[[u8; 32]]) -> Result<Vec<Option<BlobId>>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(COPIED).map_err(|e| self.err(e))?;
        keys.iter()
            .map(|k| {
                Ok(table
                    .get(k)
                    .map_err(|e| self.err(e))?
                    .map(|v| BlobId(v.value())))
            })
            .collect()
    }

    pub fn record_copied(&self, pairs: &[([u8; 32], BlobId)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(COPIED).map_err(|e| self.err(e))?;
            for (k, v) in pairs {
                table.insert(k, &v.0).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Index segments whose packs this cache has taken in.
    pub fn segments_read(&self) -> Result<HashSet<[u8; 32]>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(SEGMENTS).map_err(|e| self.err(e))?;
        let mut out = HashSet::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            out.insert(item.map_err(|e| self.err(e))?.0.value());
        }
        Ok(out)
    }

    /// Records segments as taken in (their packs are indexed, or were not wanted), and forgets
    /// `gone` ones (deleted from the repository).
    pub fn record_segments(&self, read: &[[u8; 32]], gone: &[[u8; 32]]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(SEGMENTS).map_err(|e| self.err(e))?;
            for id in read {
                table.insert(id, 0).map_err(|e| self.err(e))?;
            }
            for id in gone {
                table.remove(id).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Forgets that plans were applied once they are gone from the repository.
    pub fn drop_plans(&self, plans: &[[u8; 32]]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(PLANS).map_err(|e| self.err(e))?;
            for plan in plans {
                table.remove(plan).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Every indexed blob with its location, for prune's accounting (one read transaction).
    pub fn for_each_blob(&self, mut f: impl FnMut(BlobId, BlobLocation)) -> Result<()> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        let packs = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let bases = txn.open_table(DELTA_BASES).map_err(|e| self.err(e))?;
        let mut pack_ids: HashMap<u32, PackId> = HashMap::new();
        for item in packs.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            pack_ids.insert(k.value(), PackValue::decode(&v.value()).id);
        }
        for item in blobs.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let v = v.value();
            let base = if BlobValue::is_delta(&v) {
                bases
                    .get(k.value())
                    .map_err(|e| self.err(e))?
                    .map(|b| BlobId(b.value()))
            } else {
                None
            };
            let Some(b) = BlobValue::decode(&v, base) else {
                continue;
            };
            let Some(pack) = pack_ids.get(&b.pack) else {
                continue;
            };
            f(
                BlobId(k.value()),
                BlobLocation {
                    pack: *pack,
                    offset: b.offset,
                    stored_len: b.stored_len,
                    raw_len: b.raw_len,
                    kind: b.kind,
                    encoding: b.encoding,
                },
            );
        }
        Ok(())
    }

    /// Every pack the index knows, by id.
    pub fn packs(&self) -> Result<HashMap<PackId, PackRecord>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            let v = PackValue::decode(&v.value());
            out.insert(
                v.id,
                PackRecord {
                    id: v.id,
                    size: v.size,
                    blobs: v.blobs,
                },
            );
        }
        Ok(out)
    }

    /// Number of indexed blobs.
    pub fn blob_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }

    /// Every blob the index places in one of `packs`, with its pack (a full scan: for damage
    /// reports only).
    pub fn blobs_in_packs(&self, packs: &HashSet<PackId>) -> Result<Vec<(BlobId, PackId)>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let pack_table = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let mut numbers = HashMap::new();
        for item in pack_table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let v = PackValue::decode(&v.value());
            if packs.contains(&v.id) {
                numbers.insert(k.value(), v.id);
            }
        }
        let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in blobs.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if let Some(pack) = numbers.get(&BlobValue::pack_of(&v.value())) {
                out.push((BlobId(k.value()), *pack));
            }
        }
        Ok(out)
    }

    /// When each pack was last read whole (unix nanoseconds); absent: never.
    pub fn pack_verified_times(&self) -> Result<HashMap<PackId, u64>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(PACK_VERIFIED).map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.insert(PackId(k.value()), v.value());
        }
        Ok(out)
    }

    /// Records that `packs` were read whole at `time` (unix nanoseconds).
    pub fn record_verified(&self, packs: &[PackId], time: u64) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(PACK_VERIFIED).map_err(|e| self.err(e))?;
            for pack in packs {
                table.insert(pack.0, time).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Drops damaged copies from the index and remembers them, so that the next snapshot that
    /// meets the same data stores it again (self-healing). Only entries that point at the damaged
    /// copy are removed. Returns how many were removed.
    pub fn mark_damaged(&self, copies: &[(BlobId, PackId)]) -> Result<u64> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut removed = 0;
        {
            let numbers = txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
            let mut blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            let mut damaged = txn.open_table(DAMAGED).map_err(|e| self.err(e))?;
            for (blob, pack) in copies {
                damaged.insert(blob.0, pack.0).map_err(|e| self.err(e))?;
                let Some(number) = numbers
                    .get(pack.0)
                    .map_err(|e| self.err(e))?
                    .map(|n| n.value())
                else {
                    continue;
                };
                let here = blobs
                    .get(key(blob))
                    .map_err(|e| self.err(e))?
                    .is_some_and(|v| BlobValue::pack_of(&v.value()) == number);
                if here {
                    blobs.remove(key(blob)).map_err(|e| self.err(e))?;
                    removed += 1;
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    /// Blobs once found damaged, with the pack of the damaged copy.
    /// Records which of `checked` snapshots are `damaged` now; returns those of `checked` that
    /// an earlier verify found damaged and that are whole now (and forgets them).
    pub fn update_damaged_snapshots(
        &self,
        checked: &[[u8; 32]],
        damaged: &HashSet<[u8; 32]>,
    ) -> Result<Vec<[u8; 32]>> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut whole = Vec::new();
        {
            let mut table = txn.open_table(DAMAGED_SNAPSHOTS).map_err(|e| self.err(e))?;
            for id in checked {
                if damaged.contains(id) {
                    table.insert(id, 0).map_err(|e| self.err(e))?;
                } else if table.remove(id).map_err(|e| self.err(e))?.is_some() {
                    whole.push(*id);
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(whole)
    }

    pub fn damaged(&self) -> Result<Vec<(BlobId, PackId)>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(DAMAGED).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((BlobId(k.value()), PackId(v.value())));
        }
        Ok(out)
    }

    /// Drops the damage recorded for copies in `pack`, which reads whole now (`Some`: its size
    /// and trailer, whose blobs are then found in it again where no other copy is indexed) or
    /// is gone (`None`). Returns how many records were dropped.
    pub fn clear_damage_record(
        &self,
        pack: PackId,
        whole: Option<(u64, Vec<BlobEntry>)>,
    ) -> Result<u64> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut cleared = 0;
        {
            let mut damaged = txn.open_table(DAMAGED).map_err(|e| self.err(e))?;
            damaged
                .retain(|_, p| {
                    let here = p == pack.0;
                    cleared += u64::from(here);
                    !here
                })
                .map_err(|e| self.err(e))?;
        }
        if let Some((size, entries)) = whole {
            self.add_packs_in(&txn, &[(pack, size, entries)], true)?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(cleared)
    }

    /// Forgets damaged copies whose blob has a good copy again, or whose pack is gone.
    pub fn forget_damaged(&self, blobs: &[BlobId]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(DAMAGED).map_err(|e| self.err(e))?;
            for blob in blobs {
                table.remove(blob.0).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Empties the location tables (before a full rebuild). What verify learned (damaged
    /// copies, verification times) is kept: the pack files say nothing about it.
    pub fn clear(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        self.clear_locations(&txn)?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// Empties every table: locations and everything learned beside them (damaged copies and
    /// snapshots, verification times, applied plans and condemned packs, copy records). For
    /// `vault index rebuild`: afterwards the cache holds nothing the repository does not say.
    pub fn reset(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        self.clear_locations(&txn)?;
        txn.delete_table(PACK_VERIFIED).map_err(|e| self.err(e))?;
        txn.delete_table(DAMAGED).map_err(|e| self.err(e))?;
        txn.delete_table(DAMAGED_SNAPSHOTS)
            .map_err(|e| self.err(e))?;
        txn.delete_table(CONDEMNED).map_err(|e| self.err(e))?;
        txn.delete_table(PLANS).map_err(|e| self.err(e))?;
        txn.delete_table(COPIED).map_err(|e| self.err(e))?;
        txn.delete_table(SIMILAR).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        self.ensure_tables()
    }

    fn clear_locations(&self, txn: &redb::WriteTransaction) -> Result<()> {
        txn.delete_table(BLOBS).map_err(|e| self.err(e))?;
        txn.delete_table(PACKS).map_err(|e| self.err(e))?;
        txn.delete_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
        txn.delete_table(SEGMENTS).map_err(|e| self.err(e))?;
        txn.delete_table(DELTA_BASES).map_err(|e| self.err(e))?;
        txn.open_table(DELTA_BASES).map_err(|e| self.err(e))?;
        txn.open_table(SEGMENTS).map_err(|e| self.err(e))?;
        txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        txn.open_table(PACKS).map_err(|e| self.err(e))?;
        txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// A read transaction over the index. Cheap lookups; sees the index as of its creation.
pub struct IndexReader<'a> {
    index: &'a Index,
    blobs: redb::ReadOnlyTable<[u8; 32], [u8; 22]>,
    packs: redb::ReadOnlyTable<u32, [u8; 44]>,
    bases: redb::ReadOnlyTable<[u8; 32], [u8; 32]>,
    similar: redb::ReadOnlyTable<u64, [u8; 32]>,
    pack_cache: std::cell::RefCell<HashMap<u32, PackId>>,
}

impl IndexReader<'_> {
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        Ok(self
            .blobs
            .get(key(id))
            .map_err(|e| self.index.err(e))?
            .is_some())
    }

    pub fn lookup(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        let Some(raw) = self.blobs.get(key(id)).map_err(|e| self.index.err(e))? else {
            return Ok(None);
        };
        let raw = raw.value();
        let base = if BlobValue::is_delta(&raw) {
            self.bases
                .get(key(id))
                .map_err(|e| self.index.err(e))?
                .map(|b| BlobId(b.value()))
        } else {
            None
        };
        let v = BlobValue::decode(&raw, base).ok_or_else(|| {
            self.index
                .err("undecodable blob entry; run `vault index rebuild`")
        })?;
        let pack = self.pack_id(v.pack)?;
        Ok(Some(BlobLocation {
            pack,
            offset: v.offset,
            stored_len: v.stored_len,
            raw_len: v.raw_len,
            kind: v.kind,
            encoding: v.encoding,
        }))
    }

    /// The chunk recorded for super-feature `feature` ([`tables::SIMILAR`]), if any.
    pub fn similar(&self, feature: u64) -> Result<Option<BlobId>> {
        Ok(self
            .similar
            .get(feature)
            .map_err(|e| self.index.err(e))?
            .map(|v| BlobId(v.value())))
    }

    fn pack_id(&self, number: u32) -> Result<PackId> {
        if let Some(id) = self.pack_cache.borrow().get(&number) {
            return Ok(*id);
        }
        let raw = self
            .packs
            .get(number)
            .map_err(|e| self.index.err(e))?
            .ok_or_else(|| {
                self.index.err(format!(
                    "pack number {number} missing; run `vault index rebuild`"
                ))
            })?;
        let id = PackValue::decode(&raw.value()).id;
        self.pack_cache.borrow_mut().insert(number, id);
        Ok(id)
    }
}
