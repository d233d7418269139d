//! Compress and seal: raw blob bytes -> stored bytes. Input: a new blob (raw bytes, kind, id).
//! Output: ([`Encoding`], the bytes a pack stores: compressed or raw, then sealed in an
//! encrypted repository). Blobs that zstd cannot shrink by at least 1/32 are stored raw, so media
//! and already-compressed files are not decompressed on restore. A large blob is first tried on
//! a sample (three slices: start, middle, end); when zstd cannot shrink the sample, the blob is
//! stored raw without a full attempt, which for incompressible data costs about as much as
//! compressing it.

use std::cell::RefCell;

use crate::format::config::Compression;
use crate::format::pack::{blob_ad, BlobKind, Encoding, BASE_LEN};
use crate::id::BlobId;
use crate::keys::Encryption;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// zstd's minimum match length (its largest for the fast strategies).
const MIN_MATCH: u32 = 7;

/// Blobs at least this long are sampled before they are compressed.
const SAMPLED_FROM: usize = 256 << 10;
/// Bytes of each of the three sample slices.
const SAMPLE: usize = 16 << 10;

/// Whether zstd shrinks `raw` by at least 1/32: `Some(compressed)` if so.
fn try_compress(compressor: &mut zstd::bulk::Compressor<'static>, raw: &[u8]) -> Option<Vec<u8>> {
    // Output larger than this is not worth keeping: fail fast instead of finishing it.
    let limit = raw.len() - raw.len() / 32;
    let mut out = Vec::with_capacity(limit);
    compressor
        .compress_to_buffer(raw, &mut out)
        .ok()
        .map(|_| out)
}

/// Whether three slices of `raw` (start, middle, end) compress by at least 1/32 together.
fn sample_compresses(compressor: &mut zstd::bulk::Compressor<'static>, raw: &[u8]) -> bool {
    let middle = (raw.len() - SAMPLE) / 2;
    let slices = [0, middle, raw.len() - SAMPLE].map(|start| &raw[start..start + SAMPLE]);
    let stored: usize = slices
        .iter()
        .map(|s| try_compress(compressor, s).map_or(s.len(), |c| c.len()))
        .sum();
    stored <= 3 * SAMPLE - 3 * SAMPLE / 32
}

/// [`compress`], then [`seal`]: the bytes a pack stores for the blob.
pub fn encode_blob(
    raw: &[u8],
    compression: Compression,
    encryption: &Encryption,
    kind: BlobKind,
    id: BlobId,
) -> (Encoding, Vec<u8>) {
    let (encoding, bytes) = compress(raw, compression);
    (
        encoding,
        seal(bytes, encryption, kind, encoding, id, raw.len()),
    )
}

/// In an encrypted repository, seals encoded bytes (associated data: kind, encoding, raw
/// length, id, and a delta's base); else returns them as they are.
pub fn seal(
    encoded: Vec<u8>,
    encryption: &Encryption,
    kind: BlobKind,
    encoding: Encoding,
    id: BlobId,
    raw_len: usize,
) -> Vec<u8> {
    let ad = blob_ad(kind, encoding, raw_len as u32, &id);
    encryption.seal(&ad, encoded)
}

thread_local! {
    static DELTA_COMPRESSOR: RefCell<Option<zstd::zstd_safe::CCtx<'static>>> = const { RefCell::new(None) };
}

/// A delta is kept only when it is at most this fraction of the chunk compressed alone
/// (numerator over [`KEEP_DENOMINATOR`]), counting the 32 bytes of its base id: a delta costs a
/// read of its base on restore.
pub const KEEP_NUMERATOR: usize = 3;
/// The lowest zstd level deltas are compressed at.
pub const DELTA_LEVEL: i32 = 3;
pub const KEEP_DENOMINATOR: usize = 4;

/// `raw` compressed as one zstd frame with `dictionary` (a base chunk's raw bytes, see
/// [`crate::format::pack::usable_base`]) as raw-content dictionary, at the repository's level;
/// `Some` only when it is clearly smaller than `alone`, the bytes the chunk takes on its own.
pub fn encode_delta(
    raw: &[u8],
    dictionary: &[u8],
    compression: Compression,
    alone: usize,
) -> Option<Vec<u8>> {
    let Compression::Zstd { level } = compression else {
        return None;
    };
    // Level 3 at least: measured on the uniform-update dump series, a delta at level 3 is
    // 0.85 as large as at level 1, and deltas are small inputs (benches/README.md).
    let level = level.max(DELTA_LEVEL);
    let limit = (alone * KEEP_NUMERATOR / KEEP_DENOMINATOR).checked_sub(BASE_LEN)?;
    DELTA_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cctx = slot.get_or_insert_with(zstd::zstd_safe::CCtx::create);
        // Output over the limit is not worth keeping: zstd stops when the buffer is full.
        let mut out = Vec::with_capacity(limit);
        cctx.compress_using_dict(&mut out, raw, dictionary, level)
            .ok()
            .map(|_| out)
    })
}

pub fn compress(raw: &[u8], compression: Compression) -> (Encoding, Vec<u8>) {
    let Compression::Zstd { level } = compression else {
        return (Encoding::Raw, raw.to_vec());
    };
    if raw.len() < 64 {
        return (Encoding::Raw, raw.to_vec());
    }
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level)
                .and_then(|mut c| {
                    // Level 1 on inputs up to 16 KiB (stream chunks) would match from 6 bytes:
                    // 12% more instructions on SQL dumps for 2% smaller output
                    // (format-spec/04-packs.md 4.5).
                    c.set_parameter(zstd::zstd_safe::CParameter::MinMatch(MIN_MATCH))?;
                    Ok(c)
                })
                .ok()
                .map(|c| (level, c));
        }
        let (_, compressor) = slot.as_mut()?;
        if raw.len() >= SAMPLED_FROM && !sample_compresses(compressor, raw) {
            return None;
        }
        try_compress(compressor, raw)
    });
    match compressed {
        Some(out) => (Encoding::Zstd, out),
        None => (Encoding::Raw, raw.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::noise;

    #[test]
    fn compressible_is_compressed_and_random_is_raw() {
        let text = b"INSERT INTO t VALUES (1, 'hello');\n".repeat(200);
        let (enc, out) = compress(&text, Compression::Zstd { level: 1 });
        assert_eq!(enc, Encoding::Zstd);
        assert!(out.len() < text.len() / 4);
        let mut x = 1u64;
        let noise: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (enc, out) = compress(&noise, Compression::Zstd { level: 1 });
        assert_eq!(enc, Encoding::Raw);
        assert_eq!(out, noise);
    }

    #[test]
    fn large_blobs_are_sampled_where_it_cannot_lose_much() {
        let level1 = Compression::Zstd { level: 1 };
        // Incompressible throughout: raw, decided on the sample.
        let random = noise(1 << 20, 7);
        assert_eq!(compress(&random, level1).0, Encoding::Raw);
        // Text throughout: compressed.
        let text = b"{\"id\": 17, \"name\": \"asset\", \"tags\": [\"a\", \"b\"]}\n".repeat(30_000);
        let (enc, out) = compress(&text, level1);
        assert_eq!(enc, Encoding::Zstd);
        assert!(out.len() < text.len() / 4);
        // Random first half, text second half: one slice of the sample compresses, so the
        // whole blob is compressed.
        let mut mixed = noise(600 << 10, 9);
        mixed.extend_from_slice(&text[..600 << 10]);
        let (enc, out) = compress(&mixed, level1);
        assert_eq!(enc, Encoding::Zstd);
        assert!(out.len() < mixed.len() * 3 / 4);
    }
}
