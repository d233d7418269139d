//! Stage 7, pack: stored blobs -> durable pack files -> index entries.
//! Input: [`StoredBlob`] over a bounded channel. Output: packs in the backend, their blobs in the
//! index, and [`PackerStats`].
//!
//! Runs on its own thread. Content chunks go to data packs; trees and chunk lists to separate
//! metadata packs, so that reading every tree (verify, restore planning) touches little data.
//! Ordering (invariant I1, I2): a pack is written durably *before* its blobs enter the index,
//! and its ids leave the dedup pending set only after that.

use crossbeam_channel::{Receiver, Sender};

use super::dedup::Dedup;
use crate::error::{Error, Result};
use crate::format::pack::{BlobKind, Encoding, PackBuilder};
use crate::id::BlobId;
use crate::index::Index;
use crate::limits::MAX_BLOBS_PER_PACK;
use crate::storage::{Backend, ObjectKind};

/// A blob ready for a pack.
pub struct StoredBlob {
    pub id: BlobId,
    pub kind: BlobKind,
    pub encoding: Encoding,
    pub raw_len: u32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PackerStats {
    pub packs: u64,
    /// Bytes of all pack files written.
    pub bytes: u64,
    pub blobs: u64,
}

/// Blobs waiting in the channel at most (bounds memory between compression and packing).
pub const CHANNEL_BLOBS: usize = 64;

pub fn channel() -> (Sender<StoredBlob>, Receiver<StoredBlob>) {
    crossbeam_channel::bounded(CHANNEL_BLOBS)
}

struct OpenPack {
    builder: PackBuilder,
    capacity: usize,
}

/// Consumes blobs until every sender is gone, then flushes. On the first error it keeps
/// draining (so senders never block) and returns that error.
pub fn run_packer(
    blobs: Receiver<StoredBlob>,
    backend: &dyn Backend,
    index: &Index,
    dedup: &Dedup<'_>,
    target: usize,
) -> Result<PackerStats> {
    let mut stats = PackerStats::default();
    // Room for the last blob past the target (at most a maximum chunk) and the trailer.
    let capacity = target + (20 << 20);
    let mut data = OpenPack {
        builder: PackBuilder::with_capacity(capacity),
        capacity,
    };
    let mut meta = OpenPack {
        builder: PackBuilder::new(),
        capacity: 0,
    };
    let mut failure: Option<Error> = None;
    for blob in blobs.iter() {
        if failure.is_some() {
            continue;
        }
        let open = if blob.kind == BlobKind::Chunk {
            &mut data
        } else {
            &mut meta
        };
        open.builder
            .add(blob.id, blob.kind, blob.encoding, blob.raw_len, &blob.bytes);
        if open.builder.len() >= target
            || open.builder.entries().len() >= MAX_BLOBS_PER_PACK as usize
        {
            if let Err(e) = flush(open, backend, index, dedup, &mut stats) {
                failure = Some(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    flush(&mut data, backend, index, dedup, &mut stats)?;
    flush(&mut meta, backend, index, dedup, &mut stats)?;
    Ok(stats)
}

fn flush(
    open: &mut OpenPack,
    backend: &dyn Backend,
    index: &Index,
    dedup: &Dedup<'_>,
    stats: &mut PackerStats,
) -> Result<()> {
    if open.builder.is_empty() {
        return Ok(());
    }
    let builder = std::mem::replace(&mut open.builder, PackBuilder::with_capacity(open.capacity));
    let (id, bytes, entries) = builder.finish();
    // I1: the pack is durable before anything points at it.
    match backend.write(ObjectKind::Pack, &id.to_hex(), &bytes) {
        Ok(()) | Err(Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    stats.packs += 1;
    stats.bytes += bytes.len() as u64;
    stats.blobs += entries.len() as u64;
    let ids: Vec<BlobId> = entries.iter().map(|e| e.id).collect();
    // I2: index entries only for durable packs.
    index.add_packs(&[(id, bytes.len() as u64, entries)])?;
    dedup.committed(ids);
    Ok(())
}
