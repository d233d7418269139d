//! Helpers shared by the fuzz targets and the seed extractor.
//!
//! Most of vault's formats end in a BLAKE3 checksum. A coverage-guided fuzzer cannot forge one,
//! so a target that only fed its input to a decoder would spend nearly every run in the
//! checksum comparison and never reach the code behind it. The `fix_*` functions below return a
//! copy of the input with its checksum (and, for sealed files, its length field) recomputed; the
//! targets decode both the input as it is (to fuzz the envelope checks) and the fixed copy (to
//! fuzz what lies behind them).

use vault_engine::format::pack::{self, BlobEntry, Encoding, FOOTER_LEN, HEADER_LEN};
use vault_engine::limits::{MAX_BLOBS_PER_PACK, MAX_BLOB_SIZE};

/// Length of a BLAKE3 checksum.
pub const CHECKSUM_LEN: usize = 32;
/// `magic[8] | version u32 | payload_len u32` in front of a sealed file's payload.
pub const SEALED_HEADER_LEN: usize = 16;

/// BLAKE3 of `data` (the engine's own hash, so the fuzz crate needs no extra dependency).
pub fn blake3(data: &[u8]) -> [u8; 32] {
    vault_engine::PackId::digest(data).0
}

/// A sealed file with its payload length field set to the payload actually present and its
/// checksum recomputed. `None` if the input is too short to hold the fixed fields.
pub fn fix_sealed(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < SEALED_HEADER_LEN + CHECKSUM_LEN {
        return None;
    }
    let mut out = data.to_vec();
    let payload_len = (out.len() - SEALED_HEADER_LEN - CHECKSUM_LEN) as u32;
    out[12..16].copy_from_slice(&payload_len.to_le_bytes());
    let body = out.len() - CHECKSUM_LEN;
    let sum = blake3(&out[..body]);
    out[body..].copy_from_slice(&sum);
    Some(out)
}

/// A trailer (`count | entries | checksum`) with its checksum recomputed.
pub fn fix_trailer(trailer: &[u8]) -> Option<Vec<u8>> {
    if trailer.len() < 4 + CHECKSUM_LEN {
        return None;
    }
    let mut out = trailer.to_vec();
    let body = out.len() - CHECKSUM_LEN;
    let sum = blake3(&out[..body]);
    out[body..].copy_from_slice(&sum);
    Some(out)
}

/// Where the footer of a whole pack says its trailer is, if the footer is well-formed and the
/// trailer fits in the pack.
pub fn trailer_range(data: &[u8]) -> Option<std::ops::Range<usize>> {
    if data.len() < HEADER_LEN + FOOTER_LEN {
        return None;
    }
    let footer = &data[data.len() - FOOTER_LEN..];
    let trailer_len = pack::decode_footer(footer, data.len() as u64).ok()? as usize;
    let end = data.len() - FOOTER_LEN;
    Some(end - trailer_len..end)
}

/// A whole pack with its trailer checksum recomputed (the trailer located through the footer).
pub fn fix_pack_trailer(data: &[u8]) -> Option<Vec<u8>> {
    let range = trailer_range(data)?;
    let fixed = fix_trailer(&data[range.clone()])?;
    let mut out = data.to_vec();
    out[range].copy_from_slice(&fixed);
    Some(out)
}

/// Asserts what `decode_trailer` promises about entries it accepted from a trailer of
/// `trailer_len` bytes in a pack of `pack_size` bytes: within limits, inside the blob area, in
/// order, without overlap, raw blobs stored at their raw length.
pub fn assert_entries_valid(entries: &[BlobEntry], trailer_len: usize, pack_size: u64) {
    assert!(entries.len() as u64 <= MAX_BLOBS_PER_PACK as u64);
    let blob_end = pack_size - (trailer_len + FOOTER_LEN) as u64;
    let mut next_free = HEADER_LEN as u64;
    for e in entries {
        assert!(e.raw_len <= MAX_BLOB_SIZE, "raw_len over the limit: {e:?}");
        assert!(
            e.offset >= next_free,
            "entry overlaps its predecessor: {e:?}"
        );
        let end = e.offset + e.stored_len as u64;
        assert!(
            end <= blob_end,
            "entry outside the blob area ({blob_end}): {e:?}"
        );
        if e.encoding == Encoding::Raw {
            assert_eq!(e.stored_len, e.raw_len, "raw entry with two lengths: {e:?}");
        }
        next_free = end;
    }
}

/// The stored bytes of `entry` in the whole pack `data`; panics if the entry lies outside it
/// (which an entry accepted by `decode_pack` never does).
pub fn stored_bytes<'a>(data: &'a [u8], entry: &BlobEntry) -> &'a [u8] {
    let start = usize::try_from(entry.offset).expect("offset fits usize");
    let end = start + entry.stored_len as usize;
    data.get(start..end).unwrap_or_else(|| {
        panic!(
            "entry {entry:?} lies outside a pack of {} bytes",
            data.len()
        )
    })
}
