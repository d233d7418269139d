//! Resemblance detection: a chunk's raw bytes -> a few *super-features*, equal for chunks that
//! are mostly the same bytes. A new chunk whose super-feature matches a stored chunk's is
//! stored as a delta of it (format-spec/04-packs.md §4.9, 03-chunking.md §3.7).
//!
//! How (sub-chunk sampling, as in Finesse, FAST 2019): a gear rolling hash runs over the chunk;
//! the chunk is cut into [`FEATURES`] equal parts and each part's feature is the largest hash
//! value in it, a sample of its content that an edit elsewhere does not move. Each feature is
//! hashed under a key with its part's number into a *super-feature*. Two chunks share one when
//! that part is alike in both: a dump chunk with a few rows changed keeps most of them, and the
//! stored chunk that shares the most is the base.
//!
//! Grouping several features into one super-feature (Finesse groups three or four) makes a
//! match surer but rarer: measured on a dump with 2% of its rows updated at random places
//! (benches/README.md, 2026-12-07), one feature per super-feature found a base for 93% of the
//! changed chunks against 78% with groups of three, and stored 0.6 as many bytes per day.
//!
//! Keyed: the gear table and the group hash derive from the repository's chunk-id key, so in an
//! encrypted repository the features (kept only in the local index cache) say nothing an
//! attacker could test a guessed content against.
//!
//! Input: raw chunk bytes. Output: `[u64; SUPER_FEATURES]`. Cost: one table lookup, shift, add
//! and compare per byte.

use crate::keys::Encryption;

/// Parts a chunk is cut into, one feature each.
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
    key: [u8; 32],
}

impl Similarity {
    /// The features of the repository whose blob ids `encryption` computes (keyed in an
    /// encrypted repository, fixed otherwise).
    pub fn new(encryption: &Encryption) -> Self {
        let key = encryption
            .blob_id(
                crate::id::BlobKind::Chunk,
                b"vault 2026-12-07 similarity features",
            )
            .0;
        let mut table = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(&key)
            .update(b"gear")
            .finalize_xof()
            .fill(&mut table);
        let mut gear = [0u64; 256];
        for (g, bytes) in gear.iter_mut().zip(table.chunks_exact(8)) {
            *g = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        Similarity { gear, key }
    }

    /// The super-features of `raw` (an [`eligible`] chunk).
    pub fn super_features(&self, raw: &[u8]) -> Vec<u64> {
        let features = self.features(raw);
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

    /// Each part's largest gear hash.
    fn features(&self, raw: &[u8]) -> [u64; FEATURES] {
        let mut features = [0u64; FEATURES];
        let mut hash = 0u64;
        let mut start = 0;
        for (i, feature) in features.iter_mut().enumerate() {
            let end = raw.len() * (i + 1) / FEATURES;
            let mut best = 0u64;
            for &b in &raw[start..end] {
                hash = (hash << 1).wrapping_add(self.gear[b as usize]);
                best = best.max(hash);
            }
            *feature = best;
            start = end;
        }
        features
    }
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
