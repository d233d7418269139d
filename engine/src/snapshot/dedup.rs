//! Stage 5, dedup: which chunks are new. Input: ids. Output: a "new" flag per id.
//!
//! A blob is known if the index has it or if this run already sent it to the packer (the
//! *pending* set). Ids leave the pending set once their pack is durable and indexed, so the set
//! holds only in-flight blobs and stays bounded however large the input.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::error::Result;
use crate::id::BlobId;
use crate::index::Index;

pub struct Dedup<'a> {
    index: &'a Index,
    pending: Mutex<HashSet<BlobId>>,
}

impl<'a> Dedup<'a> {
    pub fn new(index: &'a Index) -> Self {
        Dedup {
            index,
            pending: Mutex::new(HashSet::new()),
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

    /// The pack holding these ids is durable and indexed.
    pub fn committed(&self, ids: impl IntoIterator<Item = BlobId>) {
        let mut pending = self.pending.lock().unwrap();
        for id in ids {
            pending.remove(&id);
        }
    }
}
