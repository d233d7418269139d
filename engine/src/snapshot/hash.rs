//! Stage 4, hash: the BLAKE3 digest of every chunk of a window, in parallel.
//! Input: a window and its cut lengths. Output: [`ChunkId`]s in order.

use rayon::prelude::*;

use crate::id::ChunkId;

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

pub fn hash_chunks(data: &[u8], offsets: &[usize], lengths: &[u32]) -> Vec<ChunkId> {
    offsets
        .par_iter()
        .zip(lengths.par_iter())
        .map(|(&start, &len)| ChunkId::digest(&data[start..start + len as usize]))
        .collect()
}
