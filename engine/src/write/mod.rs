//! The blob write path: every operation that adds blobs to a repository (snapshot, copy,
//! prune's repack and rescue) writes them through this module, so the ordering invariants of
//! format-spec/01-repository.md §1.4 are obeyed in one place.
//!
//! ```text
//! raw bytes ─► id ─► dedup claim ─► compress ─► seal ══queue══► pack ─► commit ─► index ─► segments
//!                                   └ similar? ─► delta ┘
//!              (BlobWriter, on the caller's threads)            (packer and committer threads)
//! stored bytes (prune) ─────────────────────────► reseal ─► pack ─► commit ─► segments (PackWriter)
//! ```
//!
//! A new chunk of the fine profile's size (format version 5) gets super-features
//! ([`similar`]); when a chunk stored whole shares one, the new chunk is encoded as a zstd frame
//! with that chunk as dictionary and kept as a *delta* of it if that is clearly smaller
//! ([`compress::encode_delta`]; format-spec/04-packs.md §4.9). A base is always a chunk stored
//! whole and indexed (so durable, I2): delta depth is 1.
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
pub mod similar;

use crate::blobs::BaseCache;
use crate::error::{Error, Result};
use crate::format::config::Compression;
use crate::format::pack::{BlobKind, Encoding};
use crate::id::BlobId;
use crate::index::Index;
use crate::keys::Encryption;
use crate::storage::Backend;
use dedup::{Claimer, Dedup, SimilarTo};
use packer::BlobSender;
use similar::Similarity;

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
    /// The repository's format version: packs carry it; from 5 on, chunks may be deltas.
    pub format_version: u32,
    /// Where delta bases are read through.
    pub bases: &'a BaseCache,
}

/// The first format version with delta chunks.
pub const DELTA_VERSION: u32 = 5;

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
                destination.format_version,
            )
        });
        let deltas = destination.format_version >= DELTA_VERSION
            && destination.compression != Compression::None;
        let writer = BlobWriter {
            dedup: &dedup,
            blobs: sender,
            compression: destination.compression,
            encryption: destination.encryption,
            similarity: deltas.then(|| Similarity::new(destination.encryption)),
            destination: *destination,
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
    /// Super-features of new chunks, where deltas are written (format version 5).
    similarity: Option<Similarity>,
    destination: Destination<'a>,
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

    /// Compresses (as a delta of a similar chunk where that is clearly smaller), seals and
    /// queues a claimed blob.
    fn send(&self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<()> {
        let (mut encoding, mut bytes) = compress::compress(raw, self.compression);
        let similarity = self
            .similarity
            .as_ref()
            .filter(|_| kind == BlobKind::Chunk && similar::eligible(raw.len()));
        if let Some(similarity) = similarity {
            let features = similarity.super_features(raw);
            let mut base = None;
            if let Some((candidate, dictionary)) = self.similar_chunk(&features) {
                if let Some(delta) =
                    compress::encode_delta(raw, &dictionary, self.compression, bytes.len())
                {
                    (encoding, bytes) = (Encoding::Delta { base: candidate }, delta);
                    base = Some(candidate);
                }
            }
            self.dedup.note_features(id, SimilarTo { features, base });
        }
        let bytes = compress::seal(bytes, self.encryption, kind, encoding, id, raw.len());
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

impl BlobWriter<'_> {
    /// A stored chunk that shares the most super-features with `features` (at least one) and
    /// can be a base: indexed (so durable), stored whole, readable. With its raw bytes.
    /// Anything that goes wrong on the way means "none": the chunk is then stored whole.
    fn similar_chunk(&self, features: &[u64]) -> Option<(BlobId, std::sync::Arc<Vec<u8>>)> {
        let d = &self.destination;
        let reader = d.index.reader().ok()?;
        let mut votes: Vec<(BlobId, usize)> = Vec::new();
        for feature in features {
            let Ok(Some(chunk)) = reader.similar(*feature) else {
                continue;
            };
            match votes.iter_mut().find(|(c, _)| *c == chunk) {
                Some((_, n)) => *n += 1,
                None => votes.push((chunk, 1)),
            }
        }
        // Most votes first; among equals, the first feature's.
        votes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let (chunk, _) = *votes.first()?;
        let location = reader.lookup(&chunk).ok()??;
        if location.kind != BlobKind::Chunk || location.encoding.base().is_some() {
            return None;
        }
        let raw = d.bases.get(d.backend, d.encryption, d.index, chunk).ok()?;
        crate::format::pack::usable_base(&raw).then_some((chunk, raw))
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
