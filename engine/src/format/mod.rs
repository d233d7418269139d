//! Pure codecs: bytes <-> structs for every on-disk structure. No I/O.
//!
//! Every `decode` takes a byte slice, never panics, and checks each length it reads against
//! [`crate::limits`] before allocating. All integers are little-endian. The byte layouts are
//! specified in `format-spec/`; a change here changes the spec, its test vectors and the fuzz
//! targets in the same commit.

pub mod config;
pub mod manifest;
pub mod pack;
pub mod plan;
pub mod sealed;
pub mod segment;
pub mod tree;

/// The repository format version this code writes into new repositories (the config's
/// `version`, and the pack header's).
/// Version 2: tree and chunk-list ids hash in their own BLAKE3 domains.
/// Version 4: encrypted repositories (keys/, sealed blobs, trailers, manifests and plans).
/// Version 5: delta chunks (pack entries with encoding 2 and a base, format-spec 04 §4.9).
pub const FORMAT_VERSION: u32 = 5;

/// The oldest repository format version this code reads and writes (it writes a repository's
/// own version: no delta chunks into a version 4 repository).
pub const OLDEST_VERSION: u32 = 4;

/// The layout version of manifests, plans, index segments, key files and the sealed trailer's
/// associated data: version 5 changed none of them, so they carry 4 in every repository.
pub const OBJECT_VERSION: u32 = 4;

/// Whether this code reads repositories of format `version`.
pub fn supported(version: u32) -> bool {
    (OLDEST_VERSION..=FORMAT_VERSION).contains(&version)
}

/// Why a byte string is not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("bad magic bytes")]
    BadMagic,
    #[error("checksum mismatch")]
    Checksum,
    #[error("authentication failed (modified, or sealed with another key)")]
    Authentication,
    #[error("unsupported version {0}")]
    Version(u32),
    #[error("{what} is {value}, over the limit of {limit}")]
    TooLarge {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

impl DecodeError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        DecodeError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

pub(crate) fn check_limit(what: &'static str, value: u64, limit: u64) -> Result<(), DecodeError> {
    if value > limit {
        Err(DecodeError::TooLarge { what, value, limit })
    } else {
        Ok(())
    }
}

/// A bounds-checked little-endian cursor over a byte slice.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// Little-endian appends onto a `Vec<u8>`.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_i64(&mut self, v: i64);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v)
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes())
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes())
    }
}
