//! Stage 6, compress: raw blob bytes -> stored bytes. Input: a new blob. Output:
//! ([`Encoding`], bytes). Blobs that zstd cannot shrink by at least 1/32 are stored raw, so media
//! and already-compressed files cost one failed attempt, not a second decompression on restore.

use std::cell::RefCell;

use crate::format::config::Compression;
use crate::format::pack::Encoding;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
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
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        let (_, compressor) = slot.as_mut()?;
        // Output larger than this is not worth keeping: fail fast instead of finishing it.
        let limit = raw.len() - raw.len() / 32;
        let mut out = Vec::with_capacity(limit);
        compressor
            .compress_to_buffer(raw, &mut out)
            .ok()
            .map(|_| out)
    });
    match compressed {
        Some(out) => (Encoding::Zstd, out),
        None => (Encoding::Raw, raw.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
