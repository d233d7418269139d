//! `--read-data`: read whole packs and check every blob.
//!
//! A pack is read in pieces: its footer and trailer first, then its blob area front to back in
//! pieces of whole blobs (about [`PIECE`] bytes), the next piece read while the blobs of the
//! current one are checked in parallel, and every byte hashed in file order to compare the pack
//! with its name. Memory holds two pieces, not a pack. The delta chunks of a piece are decoded
//! from their bases fetched together first, through the content reader's
//! [`crate::repo::content::read_bases`] (the one read path restore uses).

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::blobs::BaseSet;
use crate::format::pack::{self, BlobEntry, FOOTER_LEN, HEADER_LEN};
use crate::id::{BlobId, PackId};
use crate::keys::Encryption;
use crate::storage::{Backend, ObjectKind};

/// Bytes of blob area read at once (a larger blob is a piece of its own).
const PIECE: u64 = 4 << 20;

/// What reading one pack found.
pub struct PackCheck {
    pub pack: PackId,
    pub bytes: u64,
    pub blobs: u64,
    /// The file's digest differs from its name (some byte changed).
    pub content_mismatch: bool,
    /// The pack could not be read or its trailer not decoded: the reason.
    pub unreadable: Option<String>,
    /// Blobs whose bytes do not decode to their id: id -> reason.
    pub damaged: HashMap<BlobId, String>,
}

/// Where delta chunks' bases come from.
pub trait Bases: Sync {
    /// The bases `ids` (repeats allowed) fetched together, as far as they can be.
    fn fetch(&self, ids: Vec<BlobId>) -> BaseSet;
    /// The raw bytes of base `id`, checked, or why they cannot be had.
    fn read(&self, id: BlobId) -> Result<Arc<Vec<u8>>, String>;
}

/// A repository's bases: fetched together by the content reader, else through its base cache.
pub struct RepositoryBases<'r>(pub &'r crate::repo::Repository);

impl Bases for RepositoryBases<'_> {
    fn fetch(&self, ids: Vec<BlobId>) -> BaseSet {
        crate::repo::content::read_bases(self.0, ids)
    }
    fn read(&self, id: BlobId) -> Result<Arc<Vec<u8>>, String> {
        self.0.read_base(id).map_err(|e| e.to_string())
    }
}

type BaseReader<'a> = &'a dyn Bases;

/// Reads `packs` (one after another from a local disk, several at once from a remote store)
/// and checks each blob's digest; a delta chunk is decoded with its base from `base`.
pub fn check_packs(
    backend: &dyn Backend,
    encryption: &Encryption,
    base: BaseReader<'_>,
    packs: &[PackId],
) -> Vec<PackCheck> {
    // A remote store: several packs at once (each request waits on the network; the caller
    // runs this on Backend::concurrency() threads). A local disk: one pack after another,
    // read sequentially.
    if backend.is_remote() {
        return packs
            .par_iter()
            .with_max_len(1)
            .map_init(
                || [Vec::new(), Vec::new()],
                |buffers, id| check_pack(backend, encryption, base, *id, buffers),
            )
            .collect();
    }
    // Two piece buffers, reused for every pack: one being checked, one being read.
    let mut buffers = [Vec::new(), Vec::new()];
    packs
        .iter()
        .map(|id| check_pack(backend, encryption, base, *id, &mut buffers))
        .collect()
}

fn check_pack(
    backend: &dyn Backend,
    encryption: &Encryption,
    base: BaseReader<'_>,
    id: PackId,
    buffers: &mut [Vec<u8>; 2],
) -> PackCheck {
    let mut check = PackCheck {
        pack: id,
        bytes: 0,
        blobs: 0,
        content_mismatch: false,
        unreadable: None,
        damaged: HashMap::new(),
    };
    if let Err(reason) = read_pack(backend, encryption, base, &mut check, buffers) {
        check.unreadable = Some(reason);
    }
    check
}

/// A range of the blob area and the blobs that lie in it.
struct Piece<'e> {
    start: u64,
    end: u64,
    entries: &'e [BlobEntry],
}

/// Cuts the blob area `[HEADER_LEN, area_end)` into pieces that end where blobs end (gaps
/// between blobs, if any, belong to the piece after them).
fn pieces(entries: &[BlobEntry], area_end: u64) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let (mut start, mut first) = (HEADER_LEN as u64, 0);
    for (i, e) in entries.iter().enumerate() {
        let end = e.offset + e.stored_len as u64;
        if end - start >= PIECE || i + 1 == entries.len() {
            out.push(Piece {
                start,
                end,
                entries: &entries[first..=i],
            });
            (start, first) = (end, i + 1);
        }
    }
    if start < area_end {
        out.push(Piece {
            start,
            end: area_end,
            entries: &[],
        });
    }
    out
}

/// Reads and checks one pack; `Err` is why it could not be read.
fn read_pack(
    backend: &dyn Backend,
    encryption: &Encryption,
    base: BaseReader<'_>,
    check: &mut PackCheck,
    buffers: &mut [Vec<u8>; 2],
) -> std::result::Result<(), String> {
    let name = check.pack.to_hex();
    let read_into = |offset: u64, len: u64, buf: &mut Vec<u8>| {
        backend
            .read_range_into(ObjectKind::Pack, &name, offset, len, buf)
            .map_err(|e| e.to_string())
    };
    let read = |offset: u64, len: u64| {
        let mut buf = Vec::new();
        read_into(offset, len, &mut buf).map(|()| buf)
    };
    let size = backend
        .size(ObjectKind::Pack, &name)
        .map_err(|e| e.to_string())?;
    check.bytes = size;
    if size < (HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(format!("trailer: only {size} bytes long"));
    }
    let header = read(0, HEADER_LEN as u64)?;
    let footer = read(size - FOOTER_LEN as u64, FOOTER_LEN as u64)?;
    pack::decode_header(&header).map_err(|e| format!("header: {e}"))?;
    let trailer_len =
        pack::decode_footer(&footer, size).map_err(|e| format!("trailer: {e}"))? as u64;
    let area_end = size - FOOTER_LEN as u64 - trailer_len;
    let trailer = read(area_end, trailer_len)?;
    let entries =
        pack::open_trailer(encryption, &trailer, size).map_err(|e| format!("trailer: {e}"))?;
    check.blobs = entries.len() as u64;

    let mut hasher = blake3::Hasher::new();
    hasher.update(&header);
    let pieces = pieces(&entries, area_end);
    let [current, ahead] = buffers;
    if let Some(first) = pieces.first() {
        read_into(first.start, first.end - first.start, current)?;
    }
    let mut damaged: Vec<(BlobId, String)> = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let (next, found) = rayon::join(
            || match pieces.get(i + 1) {
                Some(p) => read_into(p.start, p.end - p.start, ahead),
                None => Ok(()),
            },
            || check_blobs(encryption, base, piece, current),
        );
        hasher.update(current);
        damaged.extend(found);
        next?;
        std::mem::swap(current, ahead);
    }
    hasher.update(&trailer);
    hasher.update(&footer);
    check.content_mismatch = PackId(*hasher.finalize().as_bytes()) != check.pack;
    check.damaged = damaged.into_iter().collect();
    Ok(())
}

/// The blobs of a piece that do not decode to their id, with the reason. A delta chunk whose
/// base cannot be read does not decode either: it is reported with that reason. The piece's
/// bases are fetched together before any delta is decoded.
fn check_blobs(
    encryption: &Encryption,
    base: BaseReader<'_>,
    piece: &Piece<'_>,
    bytes: &[u8],
) -> Vec<(BlobId, String)> {
    let ids: Vec<BlobId> = piece
        .entries
        .iter()
        .filter_map(|e| e.encoding.base())
        .collect();
    let fetched = if ids.is_empty() {
        BaseSet::none()
    } else {
        base.fetch(ids)
    };
    let base = |id: BlobId| fetched.get(id, |id| base.read(id));
    piece
        .entries
        .par_iter()
        .filter_map(|e| {
            let start = (e.offset - piece.start) as usize;
            let stored = &bytes[start..start + e.stored_len as usize];
            let base_raw = match e.encoding.base().map(&base) {
                Some(Err(why)) => {
                    return Some((
                        e.id,
                        format!("{} delta: base unreadable: {why}", e.kind.name()),
                    ))
                }
                Some(Ok(raw)) => Some(raw),
                None => None,
            };
            let base_raw = base_raw.as_deref().map(Vec::as_slice);
            pack::check_blob(
                encryption, e.id, e.kind, e.encoding, e.raw_len, stored, base_raw,
            )
            .err()
            .map(|err| (e.id, format!("{} {}", e.kind.name(), err)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobKind, Encoding};

    fn blob(offset: u64, stored_len: u32) -> BlobEntry {
        BlobEntry {
            id: BlobId([0; 32]),
            kind: BlobKind::Chunk,
            encoding: Encoding::Raw,
            offset,
            stored_len,
            raw_len: stored_len,
        }
    }

    #[test]
    fn pieces_cover_the_blob_area_and_end_at_blob_ends() {
        let mib = 1u32 << 20;
        let h = HEADER_LEN as u64;
        let entries = [
            blob(h, mib),
            blob(h + mib as u64, 3 * mib), // reaches 4 MiB: the first piece ends here
            blob(h + 4 * mib as u64 + 7, 6 * mib), // after a 7-byte gap; larger than a piece
            blob(h + 10 * mib as u64 + 7, 10),
        ];
        let area_end = h + 10 * mib as u64 + 17;
        let got: Vec<(u64, u64, usize)> = pieces(&entries, area_end)
            .iter()
            .map(|p| (p.start, p.end, p.entries.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (h, h + 4 * mib as u64, 2),
                (h + 4 * mib as u64, h + 10 * mib as u64 + 7, 1),
                (h + 10 * mib as u64 + 7, area_end, 1),
            ]
        );
        // No blobs: one piece over whatever lies between header and trailer.
        let got: Vec<(u64, u64)> = pieces(&[], h + 5)
            .iter()
            .map(|p| (p.start, p.end))
            .collect();
        assert_eq!(got, vec![(h, h + 5)]);
        assert!(pieces(&[], h).is_empty());
    }
}
