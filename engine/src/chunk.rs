//! Content-defined cut points (FastCDC v2020) over a window: stage 3 of the snapshot pipeline,
//! and how a delta restore re-cuts a file already at the target. A foundation module: it knows
//! the chunker parameters and the repository's gear table, nothing of snapshots or restores.
//! Input: a window of bytes (`snapshot::read::Window`). Output: chunk lengths covering a prefix
//! of the window.
//! In an encrypted repository the gear table is derived from the repository's id key, so that
//! the cut points (chunk sizes) of known content cannot be predicted without the key.

use fastcdc::v2020::{cut_gear, select_masks, FastCDC, Normalization};

use crate::format::config::ChunkerParams;
use crate::keys::Encryption;

#[derive(Debug, Clone)]
pub struct Chunker {
    params: ChunkerParams,
    encryption: Encryption,
}

impl Chunker {
    /// Cuts with the standard gear table, or the keyed one of an encrypted repository.
    pub fn new(params: ChunkerParams, encryption: &Encryption) -> Self {
        Chunker {
            params,
            encryption: encryption.clone(),
        }
    }

    /// The parameters it cuts with.
    pub fn params(&self) -> ChunkerParams {
        self.params
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
        let mut lengths: Vec<u32> = match self.encryption.gear() {
            None => FastCDC::new(data, p.min as usize, p.avg as usize, p.max as usize)
                .map(|c| c.length as u32)
                .collect(),
            Some((gear, gear_ls)) => cut_with(data, p, gear, gear_ls),
        };
        if !eof {
            lengths.pop();
        }
        lengths
    }
}

/// FastCDC v2020 at normalization level 1 (what [`FastCDC::new`] uses) with the given gear
/// tables.
fn cut_with(data: &[u8], p: ChunkerParams, gear: &[u64; 256], gear_ls: &[u64; 256]) -> Vec<u32> {
    let (mask_s, mask_l) = select_masks(p.avg as usize, Normalization::Level1);
    let mut lengths = Vec::with_capacity(data.len() / p.avg as usize + 2);
    let mut pos = 0;
    while pos < data.len() {
        let (_, len) = cut_gear(
            &data[pos..],
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
            gear,
            gear_ls,
        );
        lengths.push(len as u32);
        pos += len;
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::noise;
    use proptest::prelude::*;

    #[test]
    fn own_loop_with_the_standard_tables_cuts_like_fastcdc() {
        let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
        let (gear, gear_ls): (&[u64; 256], &[u64; 256]) = (
            gear[..].try_into().unwrap(),
            gear_ls[..].try_into().unwrap(),
        );
        for (i, (g, l)) in gear.iter().zip(gear_ls).enumerate() {
            assert_eq!(g << 1, *l, "gear_ls[{i}] is gear[{i}] << 1");
        }
        let data = noise(300_000, 5);
        let standard = Chunker::new(params(), &Encryption::none()).cut(&data, true);
        assert_eq!(cut_with(&data, params(), gear, gear_ls), standard);
        // A keyed table cuts elsewhere, and differently per key.
        let keyed = |_| {
            Chunker::new(
                params(),
                &Encryption::with_keys(crate::keys::MasterKeys::random()),
            )
            .cut(&data, true)
        };
        let (a, b) = (keyed(1), keyed(2));
        assert_ne!(a, standard);
        assert_ne!(a, b);
        assert_eq!(a.iter().map(|&l| l as usize).sum::<usize>(), data.len());
    }

    fn params() -> ChunkerParams {
        ChunkerParams {
            min: 256,
            avg: 1024,
            max: 4096,
        }
    }

    proptest! {
        /// Cutting in windows with carried tails gives the same chunks as cutting all at once.
        #[test]
        fn windowed_cuts_equal_whole_cuts(len in 0usize..60_000, window in 12_288usize..20_000, seed in any::<u64>()) {
            let data = noise(len, seed);
            let chunker = Chunker::new(params(), &Encryption::none());
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
