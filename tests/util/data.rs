//! Deterministic data generators: seeded random and compressible bytes, SQL dumps.

use super::*;

// ------------------------------------------------------------------------------------------------
// Deterministic data
// ------------------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, seeded, good enough for test data.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the slight modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in chunks.by_ref() {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// `len` incompressible pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

const WORDS: [&str; 64] = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "red",
    "green",
    "blue",
    "yellow",
    "black",
    "white",
    "north",
    "south",
    "east",
    "west",
    "spring",
    "summer",
    "autumn",
    "winter",
    "apple",
    "pear",
    "plum",
    "cherry",
    "lemon",
    "mango",
    "olive",
    "grape",
    "river",
    "lake",
    "ocean",
    "forest",
    "desert",
    "valley",
    "mountain",
    "island",
    "shipped",
    "pending",
    "cancelled",
    "refunded",
    "paid",
    "open",
    "closed",
    "archived",
];

/// `len` bytes of word salad (compresses well, but not trivially).
pub fn compressible_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut v = Vec::with_capacity(len + 16);
    while v.len() < len {
        let r = rng.next_u64();
        v.extend_from_slice(WORDS[(r & 63) as usize].as_bytes());
        v.push(if r >> 60 == 0 { b'\n' } else { b' ' });
    }
    v.truncate(len);
    v
}

/// Writes `len` bytes of data made by `gen(seed_of_block, block_len)` in 1 MiB blocks, so big
/// files never sit in memory whole.
pub fn write_generated(path: &Path, seed: u64, len: u64, gen: fn(u64, usize) -> Vec<u8>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let mut f = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut left = len;
    let mut block = 0u64;
    while left > 0 {
        let n = left.min(1 << 20) as usize;
        f.write_all(&gen(seed.wrapping_mul(1_000_003).wrapping_add(block), n))
            .unwrap();
        left -= n as u64;
        block += 1;
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn push_2digits(out: &mut Vec<u8>, n: u64) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// A deterministic pseudo-SQL dump (`INSERT INTO ... VALUES (...);` lines, with a header and a
/// `CREATE TABLE` every 50,000 rows), generated on the fly as a [`Read`]. Line `i` depends only
/// on `(seed, i)`, so a variant with some lines edited in place and lines appended is easy to
/// describe: see [`SqlDump::edited`] and [`SqlDump::lines`].
pub struct SqlDump {
    seed: u64,
    next_line: u64,
    end_line: u64,
    /// Lines in these ranges are generated from a different seed (an edit in place).
    edits: Vec<(std::ops::Range<u64>, u64)>,
    byte_limit: u64,
    produced: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl SqlDump {
    /// An endless dump; bound it with [`Self::bytes`] or [`Self::lines`].
    pub fn new(seed: u64) -> SqlDump {
        SqlDump {
            seed,
            next_line: 0,
            end_line: u64::MAX,
            edits: Vec::new(),
            byte_limit: u64::MAX,
            produced: 0,
            buf: Vec::with_capacity(1 << 17),
            pos: 0,
        }
    }

    /// Stops after exactly `n` bytes (possibly mid-line).
    pub fn bytes(mut self, n: u64) -> SqlDump {
        self.byte_limit = n;
        self
    }

    /// Stops after `n` lines.
    pub fn lines(mut self, n: u64) -> SqlDump {
        self.end_line = n;
        self
    }

    /// Lines in `range` are regenerated from `seed` (different content, same position).
    pub fn edited(mut self, range: std::ops::Range<u64>, seed: u64) -> SqlDump {
        self.edits.push((range, seed));
        self
    }

    /// Appends line `i` to `out`.
    pub fn line(&self, i: u64, out: &mut Vec<u8>) {
        let seed = self
            .edits
            .iter()
            .find(|(r, _)| r.contains(&i))
            .map_or(self.seed, |(_, s)| *s);
        let mut rng = Rng::new(seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407));
        if i == 0 {
            out.extend_from_slice(
                b"-- vault test dump\nSET NAMES utf8mb4;\nSET foreign_key_checks = 0;\n",
            );
        }
        if i.is_multiple_of(50_000) {
            out.extend_from_slice(b"\nCREATE TABLE `orders_");
            push_decimal(out, i / 50_000);
            out.extend_from_slice(
                b"` (\n  `id` bigint NOT NULL,\n  `customer` int NOT NULL,\n  `note` text,\n  `email` varchar(255),\n  `created` datetime,\n  `amount` decimal(12,2),\n  `status` varchar(16),\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n",
            );
        }
        let r = rng.next_u64();
        out.extend_from_slice(b"INSERT INTO `orders_");
        push_decimal(out, i / 50_000);
        out.extend_from_slice(b"` VALUES (");
        push_decimal(out, i + 1);
        out.push(b',');
        push_decimal(out, r % 100_000);
        out.extend_from_slice(b",'");
        let words = 2 + (r >> 20) % 6;
        for w in 0..words {
            if w > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[(rng.next_u64() & 63) as usize].as_bytes());
        }
        out.extend_from_slice(b"','");
        let r2 = rng.next_u64();
        out.extend_from_slice(WORDS[(r2 & 63) as usize].as_bytes());
        out.push(b'.');
        push_decimal(out, (r2 >> 8) % 10_000);
        out.push(b'@');
        out.extend_from_slice(WORDS[((r2 >> 24) & 63) as usize].as_bytes());
        out.extend_from_slice(b".example','20");
        push_2digits(out, 10 + (r2 >> 32) % 16);
        out.push(b'-');
        push_2digits(out, 1 + (r2 >> 36) % 12);
        out.push(b'-');
        push_2digits(out, 1 + (r2 >> 40) % 28);
        out.push(b' ');
        push_2digits(out, (r2 >> 45) % 24);
        out.push(b':');
        push_2digits(out, (r2 >> 50) % 60);
        out.push(b':');
        push_2digits(out, (r2 >> 56) % 60);
        out.extend_from_slice(b"',");
        let r3 = rng.next_u64();
        push_decimal(out, r3 % 100_000);
        out.push(b'.');
        push_2digits(out, (r3 >> 20) % 100);
        out.extend_from_slice(b",'");
        out.extend_from_slice(WORDS[56 + ((r3 >> 30) % 8) as usize].as_bytes());
        out.extend_from_slice(b"');\n");
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        while self.buf.len() < (1 << 16) && self.next_line < self.end_line {
            let mut out = std::mem::take(&mut self.buf);
            self.line(self.next_line, &mut out);
            self.buf = out;
            self.next_line += 1;
        }
    }
}

impl Read for SqlDump {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.produced >= self.byte_limit {
            return Ok(0);
        }
        if self.pos == self.buf.len() {
            self.refill();
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = (self.buf.len() - self.pos)
            .min(out.len())
            .min((self.byte_limit - self.produced).min(usize::MAX as u64) as usize);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}
