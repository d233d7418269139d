//! Resemblance detection: a chunk's raw bytes -> a few *super-features*, equal for chunks that
//! are mostly the same bytes. A new chunk whose super-feature matches a stored chunk's is
//! stored as a delta of it (format-spec/04-packs.md §4.9, 03-chunking.md §3.7).
//!
//! How (N-transform sampling, Broder's min-wise hashing as used by resemblance detection): a
//! gear rolling hash runs over the chunk and one window in 32 is sampled (content-defined:
//! where the hash's top bits are zero); feature `j` is the largest of a keyed mix of the
//! sampled hashes. Which windows a chunk holds decides its features, not where they sit, so a
//! chunk whose boundaries moved (a cut point gone or new, the chunk now half of one stored
//! chunk and half of the next) still shares features with both. Each feature is hashed under a
//! key with its number into a *super-feature*; the stored chunk that shares the most is the
//! base.
//!
//! The first version cut the chunk into 12 equal parts and took each part's largest hash
//! (sub-chunk sampling, as in Finesse, FAST 2019): cheaper, but positional. Measured on a
//! 64 MiB dump with 2% of rows updated at random places a day, 129 of the 168 chunks that found
//! no base were over 80% lines of the day before, their boundaries shifted; with these features
//! only the appended rows find none, and day 1 stores 0.76 as much (benches/README.md §10).
//!
//! Grouping several features into one super-feature makes a match surer but rarer: one
//! feature per super-feature found a base for more changed chunks and stored 0.6 as many bytes
//! per day as groups of three (03-chunking.md §3.7).
//!
//! Keyed: the gear table, the transforms and the group hash derive from the repository's
//! chunk-id key, so in an encrypted repository the features (kept only in the local index
//! cache) say nothing an attacker could test a guessed content against.
//!
//! Input: raw chunk bytes. Output: [`SUPER_FEATURES`] u64s. Cost: one table lookup, shift and
//! add per byte, and 12 mixes per sampled window.

use crate::keys::Encryption;

/// Features per chunk.
pub const FEATURES: usize = 12;
/// Super-features per chunk: one per feature.
pub const SUPER_FEATURES: usize = FEATURES;

/// Chunks shorter than this are not worth a delta (the base id costs 32 bytes).
pub const MIN_LEN: usize = 1 << 10;
/// Chunks longer than this (the coarse profile's, for media) are not looked at: only the fine
/// profile's chunks of dumps, logs and files changed in place change a little from day to day.
pub const MAX_LEN: usize = 256 << 10;

/// Whether a chunk of `len` bytes gets super-features.
pub fn eligible(len: usize) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&len)
}

/// The keyed feature function of one repository.
pub struct Similarity {
    gear: [u64; 256],
    /// One keyed transform per feature (xor-ed into a window's hash before mixing).
    transforms: [u64; FEATURES],
    key: [u8; 32],
}

/// A window is sampled when the top `SAMPLE_BITS` bits of its gear hash are zero: one window in
/// 32, about 500 samples in a 16 KiB chunk and 32 in the smallest eligible one.
const SAMPLE_BITS: u32 = 5;

impl Similarity {
    pub fn new(encryption: &Encryption) -> Self {
        let key = encryption
            .blob_id(
                crate::id::BlobKind::Chunk,
                b"vault 2026-12-07 similarity features",
            )
            .0;
        let mut table = [0u8; 256 * 8];
        let mut xof = blake3::Hasher::new_keyed(&key)
            .update(b"gear")
            .finalize_xof();
        xof.fill(&mut table);
        let mut gear = [0u64; 256];
        for (g, bytes) in gear.iter_mut().zip(table.chunks_exact(8)) {
            *g = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        let mut words = [0u8; FEATURES * 8];
        xof.fill(&mut words);
        let mut transforms = [0u64; FEATURES];
        for (t, bytes) in transforms.iter_mut().zip(words.chunks_exact(8)) {
            *t = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        Similarity {
            gear,
            transforms,
            key,
        }
    }

    /// The chunk's super-features; empty when it has no sampled window (then it finds no base
    /// and is no one's).
    pub fn super_features(&self, raw: &[u8]) -> Vec<u64> {
        let Some(features) = self.features(raw) else {
            return Vec::new();
        };
        (0..SUPER_FEATURES)
            .map(|j| {
                let mut block = [0u8; 12];
                block[..4].copy_from_slice(&(j as u32).to_le_bytes());
                block[4..].copy_from_slice(&features[j].to_le_bytes());
                let digest = blake3::keyed_hash(&self.key, &block);
                u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"))
            })
            .collect()
    }

    /// Feature `j`: the largest `mix(h ^ t_j)` over the sampled windows' hashes `h`. Where a
    /// window sits in the chunk does not matter, only which windows the chunk holds: two chunks
    /// share feature `j` with a probability close to the share of windows they have in common
    /// (min-wise hashing), also when their boundaries moved.
    fn features(&self, raw: &[u8]) -> Option<[u64; FEATURES]> {
        let mut features = [0u64; FEATURES];
        let mut hash = 0u64;
        let mut sampled = false;
        for &b in raw {
            hash = (hash << 1).wrapping_add(self.gear[b as usize]);
            if hash >> (64 - SAMPLE_BITS) == 0 {
                sampled = true;
                for (feature, t) in features.iter_mut().zip(&self.transforms) {
                    *feature = (*feature).max(mix(hash ^ t));
                }
            }
        }
        sampled.then_some(features)
    }
}

/// A bijective 64-bit mixer (the finalizer of SplitMix64): every output bit depends on every
/// input bit, so the largest output is a fair sample of the inputs.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::noise;

    fn rows(n: usize, seed: u64) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                format!("{}\tuser{}@example.com\tpublished\tv{seed}\n", i, i * 7).into_bytes()
            })
            .collect()
    }

    #[test]
    fn a_chunk_with_one_row_changed_shares_super_features_and_other_content_does_not() {
        let s = Similarity::new(&Encryption::none());
        let base = rows(400, 0);
        let mut edited = base.clone();
        let at = edited.len() / 2;
        edited.splice(at..at + 10, b"CHANGED ROW\n".iter().copied());
        let a = s.super_features(&base);
        let b = s.super_features(&edited);
        let shared = a.iter().filter(|f| b.contains(f)).count();
        assert!(
            shared >= SUPER_FEATURES / 2,
            "{shared} of {SUPER_FEATURES} shared"
        );
        let other = s.super_features(&noise(base.len(), 7));
        assert_eq!(a.iter().filter(|f| other.contains(f)).count(), 0);
    }

    #[test]
    fn a_chunk_whose_boundaries_moved_shares_super_features_with_both_neighbours() {
        let s = Similarity::new(&Encryption::none());
        let a = rows(300, 3);
        let b = rows(300, 4);
        // The tail half of `a` and the head half of `b`: what a chunk becomes when the cut
        // point between them disappears and new ones appear in their middles.
        let mut joined = a[a.len() / 2..].to_vec();
        joined.extend_from_slice(&b[..b.len() / 2]);
        let j = s.super_features(&joined);
        let with_a = s
            .super_features(&a)
            .iter()
            .filter(|f| j.contains(f))
            .count();
        let with_b = s
            .super_features(&b)
            .iter()
            .filter(|f| j.contains(f))
            .count();
        assert!(
            with_a + with_b >= SUPER_FEATURES / 2 && with_a.max(with_b) >= 3,
            "shared {with_a} with a and {with_b} with b of {SUPER_FEATURES}"
        );
    }

    #[test]
    fn content_with_no_sampled_window_has_no_super_features() {
        let s = Similarity::new(&Encryption::none());
        assert!(s.super_features(b"").is_empty());
        assert_eq!(s.super_features(&rows(40, 1)).len(), SUPER_FEATURES);
    }

    #[test]
    fn features_are_keyed() {
        let plain = Similarity::new(&Encryption::none());
        let keyed = Similarity::new(&Encryption::with_keys(crate::keys::MasterKeys::random()));
        let data = rows(300, 1);
        assert_ne!(plain.super_features(&data), keyed.super_features(&data));
        assert_eq!(
            plain.super_features(&data),
            Similarity::new(&Encryption::none()).super_features(&data)
        );
    }
}
