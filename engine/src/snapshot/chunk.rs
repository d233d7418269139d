//! Stage 3, chunk: content-defined cut points (FastCDC v2020) over a window.
//! Input: a [`super::read::Window`]. Output: chunk lengths covering a prefix of the window.

use fastcdc::v2020::FastCDC;

use crate::format::config::ChunkerParams;

#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkerParams,
}

impl Chunker {
    pub fn new(params: ChunkerParams) -> Self {
        Chunker { params }
    }

    /// Window size that guarantees progress: at least three maximum chunks.
    pub fn window_size(&self) -> usize {
        (4usize << 20).max(3 * self.params.max as usize)
    }

    /// Lengths of the complete chunks at the start of `data`. Unless `eof`, the last piece is not
    /// a chunk yet (more bytes may extend it) and is left for the next window.
    pub fn cut(&self, data: &[u8], eof: bool) -> Vec<u32> {
        if data.is_empty() {
            return Vec::new();
        }
        let p = self.params;
        let mut lengths: Vec<u32> =
            FastCDC::new(data, p.min as usize, p.avg as usize, p.max as usize)
                .map(|c| c.length as u32)
                .collect();
        if !eof {
            lengths.pop();
        }
        lengths
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params() -> ChunkerParams {
        ChunkerParams {
            min: 256,
            avg: 1024,
            max: 4096,
        }
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    proptest! {
        /// Cutting in windows with carried tails gives the same chunks as cutting all at once.
        #[test]
        fn windowed_cuts_equal_whole_cuts(len in 0usize..60_000, window in 12_288usize..20_000, seed in any::<u64>()) {
            let data = pseudo_random(len, seed);
            let chunker = Chunker::new(params());
            let whole = chunker.cut(&data, true);
            let mut windowed = Vec::new();
            let mut pos = 0;
            loop {
                let end = (pos + window).min(data.len());
                let eof = end == data.len();
                let cuts = chunker.cut(&data[pos..end], eof);
                pos += cuts.iter().map(|&c| c as usize).sum::<usize>();
                windowed.extend(cuts);
                if eof { break; }
            }
            prop_assert_eq!(pos, data.len());
            prop_assert_eq!(windowed, whole);
        }
    }
}
