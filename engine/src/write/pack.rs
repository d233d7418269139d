//! Filling packs: stored blobs -> staged pack files -> committed packs.
//!
//! Input: blobs in stored form (compressed, sealed). Output: [`FinishedPack`]s (staged, not
//! yet visible) and, once committed, [`WrittenPack`]s (what the index records). Content chunks
//! go into data packs, trees and chunk lists into metadata packs (so that reading every tree
//! touches little data), each closed at the repository's target size. A pack's bytes go to the
//! backend piece by piece as it fills, so no pack is ever whole in memory; a closed pack is
//! handed back *staged*: its owner commits it (the packer's committer thread, or
//! [`PackWriter::finish`] all at once) and only then indexes its blobs (invariants I1, I2).

use super::segments::write_segments;
use super::Destination;
use crate::error::{Error, Result};
use crate::format::pack::{self, BlobEntry, BlobKind, Encoding, PackBuilder};
use crate::format::segment::SegmentPack;
use crate::id::{BlobId, PackId};
use crate::index::Index;
use crate::keys::Encryption;
use crate::limits::MAX_BLOBS_PER_PACK;
use crate::storage::{Backend, ObjectKind, ObjectWriter, StagedObject};

/// Bytes gathered before they are hashed and written to the backend in one piece.
const WRITE_PIECE: usize = 1 << 20;

/// A closed pack, not yet visible. `object` is `None` when a pack with the same id (so the same
/// bytes) exists already.
pub struct FinishedPack<'a> {
    pub object: Option<Box<dyn StagedObject + 'a>>,
    pub id: PackId,
    pub size: u64,
    pub entries: Vec<BlobEntry>,
}

/// A committed pack: what the index records.
pub type WrittenPack = (PackId, u64, Vec<BlobEntry>);

impl FinishedPack<'_> {
    /// Makes the pack durable and visible (I1).
    pub fn commit(self) -> Result<WrittenPack> {
        match self.object.map(|o| o.commit()) {
            None | Some(Ok(())) | Some(Err(Error::AlreadyExists { .. })) => {}
            Some(Err(e)) => return Err(e),
        }
        Ok((self.id, self.size, self.entries))
    }
}

struct OpenPack<'a> {
    /// The pack header's format version (the repository's).
    version: u32,
    builder: PackBuilder,
    /// Created when the first piece is written.
    object: Option<Box<dyn ObjectWriter<'a> + 'a>>,
}

impl<'a> OpenPack<'a> {
    fn new(version: u32) -> Self {
        OpenPack {
            version,
            builder: PackBuilder::with_capacity(version, WRITE_PIECE + (64 << 10)),
            object: None,
        }
    }

    /// Writes the pending bytes (and, when given, a large blob after them without copying it).
    fn write_through(
        &mut self,
        backend: &'a dyn Backend,
        blob: Option<(BlobId, BlobKind, Encoding, u32, &[u8])>,
    ) -> Result<()> {
        if self.object.is_none() {
            self.object = Some(backend.create_object(ObjectKind::Pack)?);
        }
        let object = self.object.as_mut().expect("just created");
        match blob {
            None => self.builder.take(|bytes| object.write(bytes)),
            Some((id, kind, encoding, raw_len, stored)) => {
                self.builder
                    .add_through(id, kind, encoding, raw_len, stored, |bytes| {
                        object.write(bytes)
                    })
            }
        }
    }

    fn finish(
        &mut self,
        backend: &'a dyn Backend,
        encryption: &Encryption,
    ) -> Result<FinishedPack<'a>> {
        let builder = std::mem::replace(
            &mut self.builder,
            PackBuilder::with_capacity(self.version, 0),
        );
        let taken = (builder.len() - builder.pending_len()) as u64;
        let (id, rest, entries) = builder.finish(encryption);
        let mut object = match self.object.take() {
            Some(object) => object,
            None => backend.create_object(ObjectKind::Pack)?,
        };
        object.write(&rest)?;
        let object = match object.finish(&id.to_hex()) {
            Ok(staged) => Some(staged),
            Err(Error::AlreadyExists { .. }) => None,
            Err(e) => return Err(e),
        };
        *self = OpenPack::new(self.version);
        Ok(FinishedPack {
            object,
            id,
            size: taken + rest.len() as u64,
            entries,
        })
    }
}

/// Fills data and metadata packs with blobs; see the module docs.
pub struct PackFiller<'a> {
    backend: &'a dyn Backend,
    encryption: Encryption,
    target: usize,
    data: OpenPack<'a>,
    meta: OpenPack<'a>,
}

impl<'a> PackFiller<'a> {
    /// Packs close once they hold `target` bytes (or [`MAX_BLOBS_PER_PACK`] blobs).
    /// Trailers are sealed with `encryption` (blobs come sealed already); headers carry the
    /// repository's format `version`.
    pub fn new(
        backend: &'a dyn Backend,
        encryption: &Encryption,
        target: usize,
        version: u32,
    ) -> Self {
        PackFiller {
            backend,
            encryption: encryption.clone(),
            target,
            data: OpenPack::new(version),
            meta: OpenPack::new(version),
        }
    }

    pub fn encryption(&self) -> &Encryption {
        &self.encryption
    }

    /// Adds a blob; returns the pack it closed, if it closed one.
    pub fn add(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        encoding: Encoding,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<Option<FinishedPack<'a>>> {
        let open = match kind {
            BlobKind::Chunk => &mut self.data,
            BlobKind::Tree | BlobKind::List => &mut self.meta,
        };
        if stored.len() >= WRITE_PIECE / 4 {
            // Large blobs go straight to the backend rather than through the pending buffer.
            open.write_through(self.backend, Some((id, kind, encoding, raw_len, stored)))?;
        } else {
            open.builder.add(id, kind, encoding, raw_len, stored);
        }
        if open.builder.len() >= self.target
            || open.builder.entries().len() >= MAX_BLOBS_PER_PACK as usize
        {
            return open.finish(self.backend, &self.encryption).map(Some);
        }
        if open.builder.pending_len() >= WRITE_PIECE {
            open.write_through(self.backend, None)?;
        }
        Ok(None)
    }

    /// Closes the packs that hold blobs.
    pub fn finish(mut self) -> Result<Vec<FinishedPack<'a>>> {
        let mut out = Vec::new();
        for open in [&mut self.data, &mut self.meta] {
            if !open.builder.is_empty() {
                out.push(open.finish(self.backend, &self.encryption)?);
            }
        }
        Ok(out)
    }
}

/// Writes blobs that are stored already (copied out of other packs by prune's repack and rescue)
/// into new packs of the repository's target size, as [`PackFiller`] does for a snapshot. The
/// packs are committed together by [`PackWriter::finish`]: each was handed to the disk as it
/// closed, so the copying never waits for one to be synced. Nothing is indexed here: the
/// caller indexes the returned packs when its own ordering allows (prune: after its plan).
pub struct PackWriter<'a> {
    filler: PackFiller<'a>,
    closed: Vec<FinishedPack<'a>>,
    backend: &'a dyn Backend,
    index: &'a Index,
}

impl<'a> PackWriter<'a> {
    pub fn new(destination: &Destination<'a>) -> Self {
        PackWriter {
            filler: PackFiller::new(
                destination.backend,
                destination.encryption,
                destination.pack_target,
                destination.format_version,
            ),
            closed: Vec::new(),
            backend: destination.backend,
            index: destination.index,
        }
    }

    pub fn encryption(&self) -> &Encryption {
        self.filler.encryption()
    }

    /// Adds a blob in its stored form. In an encrypted repository it is sealed again under a
    /// fresh nonce, so that old and new packs share no ciphertext (which would show where the
    /// surviving blobs begin and end); returns false, adding nothing, when it does not open.
    pub fn add_stored(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        encoding: Encoding,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<bool> {
        let closed = if self.encryption().is_on() {
            let Ok(resealed) =
                pack::reseal_blob(self.encryption(), id, kind, encoding, raw_len, stored)
            else {
                return Ok(false);
            };
            self.filler.add(id, kind, encoding, raw_len, &resealed)?
        } else {
            self.filler.add(id, kind, encoding, raw_len, stored)?
        };
        self.closed.extend(closed);
        Ok(true)
    }

    /// Closes the last packs and commits every pack (I1): all are durable, and described by
    /// index segments, when this returns.
    pub fn finish(mut self) -> Result<Vec<WrittenPack>> {
        let encryption = self.filler.encryption().clone();
        self.closed.extend(self.filler.finish()?);
        let written: Vec<WrittenPack> = self
            .closed
            .into_iter()
            .map(FinishedPack::commit)
            .collect::<Result<_>>()?;
        let described: Vec<SegmentPack> = written
            .iter()
            .map(|(id, size, entries)| SegmentPack {
                id: *id,
                size: *size,
                entries: entries.clone(),
            })
            .collect();
        write_segments(self.index, self.backend, &encryption, &described)?;
        Ok(written)
    }
}
