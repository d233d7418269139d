//! redb table definitions and their fixed-size value encodings.

use redb::TableDefinition;

use crate::format::pack::{BlobEntry, BlobKind, Encoding};
use crate::id::{BlobId, PackId};

/// blob id -> [`BlobValue`] (22 bytes).
pub const BLOBS: TableDefinition<[u8; 32], [u8; 22]> = TableDefinition::new("blobs");
/// pack number -> [`PackValue`] (44 bytes). Pack numbers keep blob values small.
pub const PACKS: TableDefinition<u32, [u8; 44]> = TableDefinition::new("packs");
/// pack id -> pack number.
pub const PACK_NUMBERS: TableDefinition<[u8; 32], u32> = TableDefinition::new("pack_numbers");
/// pack id -> unix time in nanoseconds when `verify --read-data` last read the whole pack and found it clean.
pub const PACK_VERIFIED: TableDefinition<[u8; 32], u64> = TableDefinition::new("pack_verified");
/// blob id -> pack id where verify found that copy damaged. The copy is never indexed again (not
/// even by a rebuild), so the next snapshot that meets the data stores a good copy.
pub const DAMAGED: TableDefinition<[u8; 32], [u8; 32]> = TableDefinition::new("damaged");
/// snapshot id -> 0: snapshots a verify found damaged, until a verify finds them whole again
/// (added to layout 3 without a bump: a cache without it only misses "whole again" reports).
pub const DAMAGED_SNAPSHOTS: TableDefinition<[u8; 32], u8> =
    TableDefinition::new("damaged_snapshots");
/// pack id -> 0: packs a prune plan condemned. Their blobs are never indexed; their disappearance
/// is expected and does not trigger a rebuild.
pub const CONDEMNED: TableDefinition<[u8; 32], u8> = TableDefinition::new("condemned");
/// plan id -> 0: prune plans this cache has applied.
pub const PLANS: TableDefinition<[u8; 32], u8> = TableDefinition::new("plans");
/// segment id -> 0: index segments (`index/<id>`) whose packs this cache has taken in. Emptied
/// with the location tables, so a rebuild reads them again.
pub const SEGMENTS: TableDefinition<[u8; 32], u8> = TableDefinition::new("segments");
/// blake3(source repository id | source blob id) -> id of the same blob in this repository:
/// what `vault copy` learned re-identifying blobs of a repository with other id keys, so the
/// next copy skips what it copied before without reading it again. A hint: used only when this
/// repository's index has the target id.
pub const COPIED: TableDefinition<[u8; 32], [u8; 32]> = TableDefinition::new("copied");
/// delta chunk id -> its base chunk's id (format version 5): written with the delta's `blobs`
/// entry, in the same transaction, and read only for an entry whose encoding is a delta (a row
/// whose entry went is never consulted).
pub const DELTA_BASES: TableDefinition<[u8; 32], [u8; 32]> = TableDefinition::new("delta_bases");
/// super-feature -> id of a chunk stored whole that has it: where a new chunk finds a similar
/// one to be stored as a delta of (write/similar.rs). A hint, never trusted: a candidate is
/// used only if `blobs` has it as a whole chunk. Not rebuilt from the repository (losing it
/// costs compression, not data).
/// Named `similar-2` since super-features stopped depending on positions in the chunk; the
/// first table of that name held the earlier features and is dropped on open.
pub const SIMILAR: TableDefinition<u64, [u8; 32]> = TableDefinition::new("similar-2");
/// The table of the first super-features (nothing looks them up any more).
pub const SIMILAR_OLD: TableDefinition<u64, [u8; 32]> = TableDefinition::new("similar");
/// Cache bookkeeping: `layout` (u64 version of this table layout).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Version of the table layout above; a cache with another layout is rebuilt.
pub const LAYOUT_VERSION: u64 = 4;

/// Where a blob lives: pack number, offset, lengths, kind and encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobValue {
    pub pack: u32,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub kind: BlobKind,
    pub encoding: Encoding,
}

impl BlobValue {
    /// Whether an encoded value is a delta chunk's (its base is in [`DELTA_BASES`]).
    pub fn is_delta(v: &[u8; 22]) -> bool {
        v[21] == crate::format::pack::DELTA_CODE
    }

    /// The pack number of an encoded value.
    pub fn pack_of(v: &[u8; 22]) -> u32 {
        u32::from_le_bytes(v[0..4].try_into().expect("4 bytes"))
    }

    pub fn from_entry(pack: u32, e: &BlobEntry) -> Self {
        BlobValue {
            pack,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
            kind: e.kind,
            encoding: e.encoding,
        }
    }

    pub fn encode(&self) -> [u8; 22] {
        let mut out = [0u8; 22];
        out[0..4].copy_from_slice(&self.pack.to_le_bytes());
        out[4..12].copy_from_slice(&self.offset.to_le_bytes());
        out[12..16].copy_from_slice(&self.stored_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.raw_len.to_le_bytes());
        out[20] = self.kind as u8;
        out[21] = self.encoding.code();
        out
    }

    /// Decodes a value; a delta's `base` comes from [`DELTA_BASES`].
    pub fn decode(v: &[u8; 22], base: Option<BlobId>) -> Option<Self> {
        Some(BlobValue {
            pack: u32::from_le_bytes(v[0..4].try_into().ok()?),
            offset: u64::from_le_bytes(v[4..12].try_into().ok()?),
            stored_len: u32::from_le_bytes(v[12..16].try_into().ok()?),
            raw_len: u32::from_le_bytes(v[16..20].try_into().ok()?),
            kind: BlobKind::from_u8(v[20])?,
            encoding: Encoding::from_code(v[21], base)?,
        })
    }
}

/// A pack's id, size and blob count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackValue {
    pub id: PackId,
    pub size: u64,
    pub blobs: u32,
}

impl PackValue {
    pub fn encode(&self) -> [u8; 44] {
        let mut out = [0u8; 44];
        out[0..32].copy_from_slice(&self.id.0);
        out[32..40].copy_from_slice(&self.size.to_le_bytes());
        out[40..44].copy_from_slice(&self.blobs.to_le_bytes());
        out
    }

    pub fn decode(v: &[u8; 44]) -> Self {
        PackValue {
            id: PackId(v[0..32].try_into().expect("32 bytes")),
            size: u64::from_le_bytes(v[32..40].try_into().expect("8 bytes")),
            blobs: u32::from_le_bytes(v[40..44].try_into().expect("4 bytes")),
        }
    }
}

pub fn key(id: &BlobId) -> [u8; 32] {
    id.0
}
