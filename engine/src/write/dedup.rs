//! Dedup claim: which blobs are new. Input: ids. Output: a "new" flag per id.
//!
//! A blob is known if the index has it or if this run already sent it to the packer (the
//! *pending* set). Ids leave the pending set once their pack is durable and indexed (I8: a blob
//! is claimed once per run and released only when durable), so the set holds only in-flight
//! blobs and stays bounded however large the input.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::error::Result;
use crate::id::BlobId;
use crate::index::{Index, IndexReader};

pub struct Dedup<'a> {
    index: &'a Index,
    pending: Mutex<HashSet<BlobId>>,
    /// Super-features of pending chunks, recorded in the index once they are durable and
    /// indexed (write/similar.rs): with the chunk itself when stored whole (it may become a
    /// base), else with its base.
    features: Mutex<HashMap<BlobId, SimilarTo>>,
}

/// What a pending chunk's super-features point at once it is indexed.
pub struct SimilarTo {
    pub features: Vec<u64>,
    /// The delta's base, or `None` for a chunk stored whole.
    pub base: Option<BlobId>,
}

impl<'a> Dedup<'a> {
    pub fn new(index: &'a Index) -> Self {
        Dedup {
            index,
            pending: Mutex::new(HashSet::new()),
            features: Mutex::new(HashMap::new()),
        }
    }

    /// For each id, whether it must be stored. An id marked new is claimed: later calls with the
    /// same id (in this run) see it as known.
    pub fn claim(&self, ids: &[BlobId]) -> Result<Vec<bool>> {
        let reader = self.index.reader()?;
        let mut indexed = Vec::with_capacity(ids.len());
        for id in ids {
            indexed.push(reader.contains(id)?);
        }
        let mut pending = self.pending.lock().unwrap();
        Ok(ids
            .iter()
            .zip(indexed)
            .map(|(id, known)| !known && pending.insert(*id))
            .collect())
    }

    /// A claimer for one thread: [`Claimer::claim`] is [`Self::claim`] for one id at a time,
    /// with one index read view for all of them.
    pub fn claimer(&self) -> Claimer<'_, 'a> {
        Claimer {
            dedup: self,
            reader: None,
        }
    }

    /// Whether every id is stored: indexed, or claimed by this run (durable before the
    /// manifest, invariant I3).
    pub fn all_stored(&self, ids: &[BlobId]) -> Result<bool> {
        let reader = self.index.reader()?;
        let pending = self.pending.lock().unwrap();
        for id in ids {
            if !pending.contains(id) && !reader.contains(id)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Keeps a pending chunk's super-features until it is indexed.
    pub fn note_features(&self, id: BlobId, similar: SimilarTo) {
        self.features.lock().unwrap().insert(id, similar);
    }

    /// The pack holding these ids is durable and indexed. Returns the similarity records of
    /// those that had super-features: `(feature, chunk, replace)` for [`Index::record_similar`]:
    /// a chunk stored whole takes over its features; a delta's features point at its base where
    /// nothing else is recorded (never at the delta: bases are whole chunks).
    pub fn committed(&self, ids: impl IntoIterator<Item = BlobId>) -> Vec<(u64, BlobId, bool)> {
        let mut pending = self.pending.lock().unwrap();
        let mut features = self.features.lock().unwrap();
        let mut records = Vec::new();
        for id in ids {
            pending.remove(&id);
            if let Some(similar) = features.remove(&id) {
                let (chunk, replace) = match similar.base {
                    Some(base) => (base, false),
                    None => (id, true),
                };
                records.extend(similar.features.iter().map(|&f| (f, chunk, replace)));
            }
        }
        records
    }
}

/// Claims ids one at a time (see [`Dedup::claimer`]).
pub struct Claimer<'d, 'a> {
    dedup: &'d Dedup<'a>,
    /// Opened on first use.
    reader: Option<IndexReader<'a>>,
}

impl Claimer<'_, '_> {
    /// Whether `id` must be stored; if so, it is claimed (see [`Dedup::claim`]).
    pub fn claim(&mut self, id: BlobId) -> Result<bool> {
        if self.reader.is_none() {
            self.reader = Some(self.dedup.index.reader()?);
        }
        let known = self.reader.as_ref().expect("just opened").contains(&id)?;
        Ok(!known && self.dedup.pending.lock().unwrap().insert(id))
    }
}
