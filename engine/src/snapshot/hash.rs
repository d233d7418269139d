//! Stage 4, hash: the BLAKE3 digest of a chunk. Input: a window and its cut lengths. Output: each
//! chunk's bytes and [`ChunkId`], computed where the chunk is stored next (so its bytes are still
//! in cache when they are compressed).

use crate::id::ChunkId;
use crate::keys::Encryption;

/// Offsets of each chunk (prefix sums of the lengths).
pub fn offsets(lengths: &[u32]) -> Vec<usize> {
    let mut pos = 0usize;
    lengths
        .iter()
        .map(|&l| {
            let start = pos;
            pos += l as usize;
            start
        })
        .collect()
}

/// Chunk `i` of a window and its id.
pub fn chunk<'d>(
    encryption: &Encryption,
    data: &'d [u8],
    offsets: &[usize],
    lengths: &[u32],
    i: usize,
) -> (&'d [u8], ChunkId) {
    let raw = &data[offsets[i]..offsets[i] + lengths[i] as usize];
    (raw, encryption.chunk_id(raw))
}
