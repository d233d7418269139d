//! Index segments: the trailers of a set of packs gathered into one object, so that a cache on
//! another host (or a rebuilt one) takes in many packs with one read instead of two range reads
//! per pack (format-spec/11-remote.md).
//!
//! ```text
//! sealed file (magic VAULTIDX), payload (sealed in an encrypted repository):
//!   pack_count u32
//!   per pack: pack id[32] | pack size u64 | trailer_len u32 | trailer (plain, as in a pack)
//! ```
//! Named by the BLAKE3 of the whole file, stored as `index/<id>`. A segment is a cache of what
//! the packs say: the listing of `packs/` stays the truth, and a pack a segment names but the
//! listing does not (deleted by a prune) is ignored.

use super::pack::{decode_trailer_in, encode_trailer, BlobEntry, FOOTER_LEN};
use super::{check_limit, sealed, DecodeError, Put, Reader, OBJECT_VERSION};
use crate::id::PackId;
use crate::keys::{self, Encryption};
use crate::limits::MAX_BLOBS_PER_PACK;

pub const SEGMENT_MAGIC: [u8; 8] = *b"VAULTIDX";

/// Blobs one segment describes at most, so that it stays well under the sealed-file limit
/// (52 bytes each: about 10 MiB).
pub const MAX_SEGMENT_BLOBS: usize = 200_000;

/// Packs one segment describes at most.
pub const MAX_SEGMENT_PACKS: u32 = 100_000;

/// One pack as a segment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPack {
    pub id: PackId,
    pub size: u64,
    pub entries: Vec<BlobEntry>,
}

/// Returns the segment file and its id (BLAKE3 of the file).
pub fn encode(encryption: &Encryption, packs: &[SegmentPack]) -> ([u8; 32], Vec<u8>) {
    let mut payload = Vec::new();
    payload.put_u32(packs.len() as u32);
    for pack in packs {
        let trailer = encode_trailer(&pack.entries);
        payload.extend_from_slice(&pack.id.0);
        payload.put_u64(pack.size);
        payload.put_u32(trailer.len() as u32);
        payload.extend_from_slice(&trailer);
    }
    let ad = keys::file_ad(&SEGMENT_MAGIC, OBJECT_VERSION);
    let file = sealed::encode(
        SEGMENT_MAGIC,
        OBJECT_VERSION,
        &encryption.seal(&ad, payload),
    );
    (*blake3::hash(&file).as_bytes(), file)
}

/// Decodes a segment; every trailer is checked as a pack's own would be (entries in order,
/// inside the blob area of a pack of the stated size).
pub fn decode(encryption: &Encryption, data: &[u8]) -> Result<Vec<SegmentPack>, DecodeError> {
    let sealed_payload = sealed::decode(SEGMENT_MAGIC, OBJECT_VERSION, data)?;
    let ad = keys::file_ad(&SEGMENT_MAGIC, OBJECT_VERSION);
    let mut scratch = Vec::new();
    let payload = encryption.open(&ad, sealed_payload, &mut scratch)?;
    let mut r = Reader::new(payload);
    let count = r.u32()?;
    check_limit("segment pack count", count as u64, MAX_SEGMENT_PACKS as u64)?;
    let mut packs = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        let id = PackId(r.array()?);
        let size = r.u64()?;
        let trailer_len = r.u32()? as usize;
        check_limit(
            "segment trailer length",
            trailer_len as u64,
            (4 + 32 + MAX_BLOBS_PER_PACK as usize * super::pack::ENTRY_LEN) as u64,
        )?;
        let trailer = r.bytes(trailer_len)?;
        // Where the pack's blob area ends: before its stored (sealed) trailer and the footer.
        let stored_trailer = encryption.sealed_len(trailer_len) + FOOTER_LEN;
        let blob_end = size
            .checked_sub(stored_trailer as u64)
            .ok_or_else(|| DecodeError::invalid("segment", "pack size smaller than its trailer"))?;
        let entries = decode_trailer_in(trailer, blob_end, encryption.is_on())?;
        packs.push(SegmentPack { id, size, entries });
    }
    r.finish()?;
    Ok(packs)
}

/// Splits `packs` into groups that each fit one segment.
pub fn groups(packs: &[SegmentPack]) -> Vec<&[SegmentPack]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut blobs = 0;
    for (i, pack) in packs.iter().enumerate() {
        if i > start
            && (blobs + pack.entries.len() > MAX_SEGMENT_BLOBS
                || i - start >= MAX_SEGMENT_PACKS as usize)
        {
            out.push(&packs[start..i]);
            start = i;
            blobs = 0;
        }
        blobs += pack.entries.len();
    }
    if start < packs.len() {
        out.push(&packs[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobKind, Encoding, HEADER_LEN};
    use crate::id::BlobId;

    fn pack(n: u8, blobs: u32) -> SegmentPack {
        let entries: Vec<BlobEntry> = (0..blobs)
            .map(|i| BlobEntry {
                id: BlobId([n ^ i as u8; 32]),
                kind: BlobKind::Chunk,
                encoding: Encoding::Zstd,
                offset: HEADER_LEN as u64 + i as u64 * 100,
                stored_len: 100,
                raw_len: 300,
            })
            .collect();
        let trailer = encode_trailer(&entries).len();
        SegmentPack {
            id: PackId([n; 32]),
            size: (HEADER_LEN + blobs as usize * 100 + trailer + FOOTER_LEN) as u64,
            entries,
        }
    }

    #[test]
    fn round_trip_and_damage_is_detected() {
        let packs = vec![pack(1, 3), pack(2, 1), pack(3, 0)];
        let (id, file) = encode(&Encryption::none(), &packs);
        assert_eq!(&id, blake3::hash(&file).as_bytes());
        assert_eq!(decode(&Encryption::none(), &file).unwrap(), packs);
        for i in (0..file.len()).step_by(7) {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(decode(&Encryption::none(), &bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn a_pack_too_small_for_its_entries_is_refused() {
        let mut p = pack(1, 3);
        p.size -= 1;
        let (_, file) = encode(&Encryption::none(), &[p]);
        assert!(decode(&Encryption::none(), &file).is_err());
    }

    #[test]
    fn groups_respect_the_limits() {
        let packs: Vec<SegmentPack> = (0..5).map(|n| pack(n, 90_000)).collect();
        let groups = groups(&packs);
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        assert!(groups
            .iter()
            .all(|g| g.iter().map(|p| p.entries.len()).sum::<usize>() <= MAX_SEGMENT_BLOBS));
    }
}
