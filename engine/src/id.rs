//! Typed 32-byte identifiers.
//!
//! Every object in a repository is named by a 32-byte digest. The newtypes keep a chunk id from
//! being passed where a pack id is expected; [`BlobId`] is the kind-neutral name a pack trailer
//! and the index use for any blob (a chunk, a tree or a chunk list).
//!
//! Ids serialize (serde) as their 64 lower-case hex digits, so reports stay readable as JSON;
//! [`short`](PackId::short) is the 16-digit form for human output.

use std::fmt;

/// Length in bytes of every identifier.
pub const ID_LEN: usize = 32;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The raw digest bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }

            /// Lower-case hexadecimal, 64 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses exactly 64 hexadecimal characters.
            pub fn from_hex(text: &str) -> Option<Self> {
                let mut bytes = [0u8; ID_LEN];
                hex::decode_to_slice(text, &mut bytes).ok()?;
                Some(Self(bytes))
            }

            /// The first 8 bytes as 16 hex characters, for human output.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..8])
            }

            /// The first `digits` hex characters (all 64 at most), for human output.
            pub fn prefix(&self, digits: usize) -> String {
                let mut text = self.to_hex();
                text.truncate(digits);
                text
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::from_hex(&text).ok_or_else(|| {
                    serde::de::Error::custom(concat!(stringify!($name), ": expected 64 hex digits"))
                })
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

define_id!(
    /// Name of any blob stored in a pack: the digest of its uncompressed bytes in its kind's domain.
    BlobId
);
define_id!(
    /// A content chunk: BLAKE3 of the chunk's bytes.
    ChunkId
);
define_id!(
    /// A tree object (one directory): BLAKE3 of its encoded bytes in the tree domain.
    TreeId
);
define_id!(
    /// A chunk list (part of a large file's content list): BLAKE3 of its encoded bytes in the list domain.
    ListId
);
define_id!(
    /// A pack file: BLAKE3 of the whole file.
    PackId
);
define_id!(
    /// A snapshot manifest: BLAKE3 of the whole manifest file.
    SnapshotId
);
define_id!(
    /// A repository: 32 random bytes chosen at `init`.
    RepositoryId
);
define_id!(
    /// A key file of an encrypted repository: BLAKE3 of the whole file (its name in `keys/`).
    KeyId
);

macro_rules! blob_conversions {
    ($($name:ident),*) => {$(
        impl From<$name> for BlobId {
            fn from(id: $name) -> BlobId {
                BlobId(id.0)
            }
        }
    )*};
}
blob_conversions!(ChunkId, TreeId, ListId);

/// BLAKE3 key-derivation context for tree ids. Trees and chunk lists are hashed in their own
/// domains so that no chunk (whose id is the plain BLAKE3 of arbitrary content) can ever share an
/// id with a tree or a list of the same bytes.
pub const TREE_CONTEXT: &str = "vault 2026-11-22 tree id";
/// BLAKE3 key-derivation context for chunk-list ids.
pub const LIST_CONTEXT: &str = "vault 2026-11-22 chunk list id";

fn derive(context: &str, data: &[u8]) -> [u8; ID_LEN] {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    hasher.update(data);
    *hasher.finalize().as_bytes()
}

impl ChunkId {
    /// Plain BLAKE3 of the chunk's bytes.
    pub fn digest(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
}

impl TreeId {
    /// BLAKE3 in the [`TREE_CONTEXT`] domain of the tree's encoding.
    pub fn digest(data: &[u8]) -> Self {
        Self(derive(TREE_CONTEXT, data))
    }
}

impl ListId {
    /// BLAKE3 in the [`LIST_CONTEXT`] domain of the chunk list's encoding.
    pub fn digest(data: &[u8]) -> Self {
        Self(derive(LIST_CONTEXT, data))
    }
}

impl PackId {
    /// Digest of a whole pack file.
    pub fn digest(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
}

impl SnapshotId {
    /// Digest of a whole manifest file.
    pub fn digest(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
}

impl RepositoryId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; ID_LEN];
        getrandom::fill(&mut bytes).expect("the operating system random source failed");
        Self(bytes)
    }
}

/// Resolves a user-supplied id or unique prefix (at least 4 hex characters) against a list.
pub fn resolve_prefix<T: Copy>(
    prefix: &str,
    candidates: impl IntoIterator<Item = T>,
    hex_of: impl Fn(&T) -> String,
) -> PrefixMatch<T> {
    let wanted = prefix.to_ascii_lowercase();
    if wanted.len() < 4 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return PrefixMatch::Invalid;
    }
    let mut found = None;
    for candidate in candidates {
        if hex_of(&candidate).starts_with(&wanted) {
            if found.is_some() {
                return PrefixMatch::Ambiguous;
            }
            found = Some(candidate);
        }
    }
    match found {
        Some(id) => PrefixMatch::One(id),
        None => PrefixMatch::None,
    }
}

/// Result of [`resolve_prefix`].
#[derive(Debug, PartialEq, Eq)]
pub enum PrefixMatch<T> {
    One(T),
    None,
    Ambiguous,
    Invalid,
}

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A piece of file content.
    Chunk = 0,
    /// A tree object (one directory).
    Tree = 1,
    /// A chunk list (part of a large file's content list).
    List = 2,
}

impl BlobKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Chunk),
            1 => Some(Self::Tree),
            2 => Some(Self::List),
            _ => None,
        }
    }

    /// The id of a blob of this kind with these raw bytes.
    pub fn digest(self, raw: &[u8]) -> BlobId {
        match self {
            Self::Chunk => ChunkId::digest(raw).into(),
            Self::Tree => TreeId::digest(raw).into(),
            Self::List => ListId::digest(raw).into(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Chunk => "chunk",
            Self::Tree => "tree",
            Self::List => "chunk list",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_hash_in_separate_domains() {
        let bytes = b"\x01\x00\x00\x00\x00";
        let chunk = BlobId::from(ChunkId::digest(bytes));
        assert_ne!(chunk, BlobId::from(TreeId::digest(bytes)));
        assert_ne!(chunk, BlobId::from(ListId::digest(bytes)));
        assert_ne!(
            BlobId::from(TreeId::digest(bytes)),
            BlobId::from(ListId::digest(bytes))
        );
    }

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::digest(b"hello");
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(ChunkId::from_hex("zz"), None);
    }

    #[test]
    fn serializes_as_hex() {
        let id = PackId::digest(b"pack");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
        assert_eq!(serde_json::from_str::<PackId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<PackId>("\"abc\"").is_err());
    }

    #[test]
    fn prefix_resolution() {
        let a = SnapshotId([0xab; 32]);
        let b = SnapshotId([0xac; 32]);
        let all = [a, b];
        assert_eq!(
            resolve_prefix("abab", all, |i| i.to_hex()),
            PrefixMatch::One(a)
        );
        assert_eq!(
            resolve_prefix("aaaa", all, |i| i.to_hex()),
            PrefixMatch::None
        );
        assert_eq!(
            resolve_prefix("ab", all, |i| i.to_hex()),
            PrefixMatch::Invalid
        );
        let c = SnapshotId([0xab; 32]);
        assert_eq!(
            resolve_prefix("abab", [a, c], |i| i.to_hex()),
            PrefixMatch::Ambiguous
        );
    }
}
