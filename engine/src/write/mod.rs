//! The blob write path: every operation that adds blobs to a repository (snapshot, copy,
//! prune's repack and rescue) writes them through this module, so the ordering invariants of
//! format-spec/01-repository.md §1.4 are obeyed in one place.
//!
//! ```text
//! raw bytes ─► id ─► dedup claim ─► compress ─► seal ══queue══► pack ─► commit ─► index ─► segments
//!              (BlobWriter, on the caller's threads)            (packer and committer threads)
//! stored bytes (prune) ─────────────────────────► reseal ─► pack ─► commit ─► segments (PackWriter)
//! ```
//!
//! Input: raw blobs with their kind ([`BlobWriter`]), or blobs already stored elsewhere
//! ([`PackWriter`]). Output: durable packs, their blobs in the index, index segments describing
//! them, and [`PackerStats`].
//!
//! Invariants (format-spec/01-repository.md):
//! - **I1** a pack is durable before it is indexed: the committer ([`packer`]) and
//!   [`PackWriter::finish`] commit each pack before anything records its blobs.
//! - **I2** index entries exist only for durable packs: the committer indexes a batch only after
//!   committing it; segments are written only for committed packs ([`segments`]).
//! - **I3** a manifest is written last: [`session`] returns only after the packer has committed
//!   and indexed every pack it was given, and reports the packer's result; a caller writes its
//!   manifest only when that result is `Ok`.
//! - **I8** a blob is claimed once per run ([`dedup`]) and released only when its pack is
//!   indexed.
//!
//! This module sits under `repo/` (state) and above `index/`, `format/` and `storage/`: it
//! never imports an operation nor [`crate::repo`], which hands it a [`Destination`].

pub mod compress;
pub mod dedup;
pub mod pack;
mod packer;
pub mod segments;

use crate::error::{Error, Result};
use crate::format::config::Compression;
use crate::format::pack::BlobKind;
use crate::id::BlobId;
use crate::index::Index;
use crate::keys::Encryption;
use crate::storage::Backend;
use dedup::{Claimer, Dedup};
use packer::BlobSender;

pub use pack::{PackWriter, WrittenPack};
pub use packer::{PackerStats, StoredBlob};

/// Where and how blobs are written: a repository's backend, keys, index and settings.
#[derive(Clone, Copy)]
pub struct Destination<'a> {
    pub backend: &'a dyn Backend,
    pub encryption: &'a Encryption,
    pub index: &'a Index,
    pub compression: Compression,
    /// Packs close once they hold this many bytes.
    pub pack_target: usize,
}

/// Runs `work` with a [`BlobWriter`] into `destination`, the packer on a thread of its own.
/// Returns what `work` returned and the packer's result, once every pack is committed, indexed
/// and described by segments: only then may the caller write a manifest reaching them (I3), and
/// only if the packer's result is `Ok`. A failing packer makes the writer's `store` calls fail,
/// so its error is the cause of any error `work` returns.
pub fn session<R>(
    destination: &Destination<'_>,
    work: impl FnOnce(&BlobWriter<'_>) -> R,
) -> (R, Result<PackerStats>) {
    let dedup = Dedup::new(destination.index);
    let (sender, receiver) = packer::channel();
    std::thread::scope(|scope| {
        let packer = scope.spawn(|| {
            packer::run_packer(
                receiver,
                destination.backend,
                destination.encryption,
                destination.index,
                &dedup,
                destination.pack_target,
            )
        });
        let writer = BlobWriter {
            dedup: &dedup,
            blobs: sender,
            compression: destination.compression,
            encryption: destination.encryption,
        };
        let done = work(&writer);
        // The last sender goes: the packer flushes and commits what it holds, then ends.
        drop(writer);
        let packed = packer.join().expect("pack writer thread panicked");
        (done, packed)
    })
}

/// Stores raw blobs: names, claims, compresses, seals and queues each new one for the packer.
/// Shared by every thread of one run.
pub struct BlobWriter<'a> {
    dedup: &'a Dedup<'a>,
    blobs: BlobSender,
    compression: Compression,
    encryption: &'a Encryption,
}

impl<'a> BlobWriter<'a> {
    /// Stores `raw` as a blob of `kind` unless the repository has it or this run claimed it;
    /// returns its id and whether it was new.
    pub fn store(&self, kind: BlobKind, raw: &[u8]) -> Result<(BlobId, bool)> {
        let id = self.encryption.blob_id(kind, raw);
        let new = self.dedup.claim(&[id])?[0];
        if new {
            self.send(kind, id, raw)?;
        }
        Ok((id, new))
    }

    /// A handle for one thread that stores many blobs with one index read view
    /// ([`Dedup::claimer`]).
    pub fn handle(&self) -> BlobHandle<'_, 'a> {
        BlobHandle {
            writer: self,
            claimer: self.dedup.claimer(),
        }
    }

    /// Whether every id is stored: indexed, or claimed by this run (durable before the
    /// manifest, I3).
    pub fn all_stored(&self, ids: &[BlobId]) -> Result<bool> {
        self.dedup.all_stored(ids)
    }

    /// Compresses, seals and queues a claimed blob.
    fn send(&self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<()> {
        let (encoding, bytes) =
            compress::encode_blob(raw, self.compression, self.encryption, kind, id);
        let blob = StoredBlob {
            id,
            kind,
            encoding,
            raw_len: raw.len() as u32,
            bytes,
        };
        self.blobs.send(blob).map_err(|_| Error::Corrupt {
            object: "pack writer".into(),
            reason: "stopped".into(),
        })
    }
}

/// One thread's access to a [`BlobWriter`] (see [`BlobWriter::handle`]).
pub struct BlobHandle<'w, 'a> {
    writer: &'w BlobWriter<'a>,
    claimer: Claimer<'w, 'a>,
}

impl BlobHandle<'_, '_> {
    /// [`BlobWriter::store`] for a blob whose id the caller computed (in `kind`'s domain, with
    /// the repository's keys): returns whether it was new.
    pub fn store_named(&mut self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<bool> {
        let new = self.claimer.claim(id)?;
        if new {
            self.writer.send(kind, id, raw)?;
        }
        Ok(new)
    }
}
