//! Seeded byte buffers for the stage benchmarks: a plain-SQL dump (compressible, like the
//! database half of an application backup) and random bytes (incompressible, like its media).

use crate::dumpgen::{Database, Rng};

/// The first `bytes` bytes of a generated plain-SQL dump (compresses about 3-4x with zstd 1).
pub fn sql(bytes: usize) -> Vec<u8> {
    // A database's dump is a little larger than the size it is asked for; pad the request.
    let mut dump = Database::new(bytes as u64 + (1 << 20)).dump_bytes();
    while dump.len() < bytes {
        let more = dump.clone();
        dump.extend_from_slice(&more);
    }
    dump.truncate(bytes);
    dump
}

/// `bytes` pseudo-random bytes from `seed` (incompressible).
pub fn random(bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(bytes + 8);
    while out.len() < bytes {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(bytes);
    out
}

/// Fills `out` with `len` bytes of text that compresses like application data (JSON, CSS,
/// SVG): rows from a small pool, each prefixed by a fresh number.
pub fn text_into(out: &mut Vec<u8>, len: usize, rng: &mut Rng) {
    let pool: Vec<String> = (0..64)
        .map(|i| crate::dumpgen::row(rng.next() % 1_000_000 + i, 0, rng))
        .collect();
    let end = out.len() + len;
    while out.len() < end {
        let r = rng.next();
        out.extend_from_slice(format!("{{\"n\":{},\"row\":\"", r % 1_000_003).as_bytes());
        out.extend_from_slice(pool[(r >> 40) as usize % pool.len()].trim_end().as_bytes());
        out.extend_from_slice(b"\"}\n");
    }
    out.truncate(end);
}
