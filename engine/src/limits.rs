//! Every bound a decoder or a pipeline stage enforces.
//!
//! Lengths read from a repository are checked against these before anything is allocated, so a
//! damaged or hostile repository yields an error, never an allocation failure or a hang.

/// Largest pack file a reader accepts (and the writer ever produces).
pub const MAX_PACK_SIZE: u64 = 4 << 30;
/// Most blobs one pack trailer may list.
pub const MAX_BLOBS_PER_PACK: u32 = 1 << 20;
/// Largest uncompressed blob (a chunk, tree or chunk list).
pub const MAX_BLOB_SIZE: u32 = 256 << 20;
/// Largest sealed file: config, snapshot manifest or prune plan.
pub const MAX_SEALED_FILE_SIZE: u64 = 16 << 20;
/// Most entries in one tree object (one directory).
pub const MAX_TREE_ENTRIES: u32 = 4_000_000;
/// Longest entry name (bytes), as on Linux.
pub const MAX_NAME_LEN: usize = 255;
/// Longest symlink target (bytes).
pub const MAX_SYMLINK_TARGET: usize = 65_535;
/// Longest user or group name recorded.
pub const MAX_OWNER_NAME: usize = 255;
/// Most chunk references held inline in a file entry; beyond this the content goes to lists.
pub const INLINE_CHUNKS: usize = 64;
/// Most chunk references in one chunk-list blob.
pub const CHUNKS_PER_LIST: usize = 8_192;
/// Most chunk-list references in one file entry (with 8192 chunks per list this allows files of
/// millions of GiB at the default chunk sizes).
pub const MAX_LISTS_PER_FILE: u32 = 1 << 20;
/// Deepest directory nesting a restore or verify follows in a snapshot tree.
pub const MAX_TREE_DEPTH: usize = 4_096;
/// Chunker bounds accepted at `init` (FastCDC v2020's own limits).
pub const CHUNK_MIN_LOWEST: u32 = 64;
pub const CHUNK_MIN_HIGHEST: u32 = 1 << 20;
pub const CHUNK_AVG_LOWEST: u32 = 256;
pub const CHUNK_AVG_HIGHEST: u32 = 4 << 20;
pub const CHUNK_MAX_LOWEST: u32 = 1024;
pub const CHUNK_MAX_HIGHEST: u32 = 16 << 20;
/// Pack target sizes accepted in a config.
pub const PACK_TARGET_LOWEST: u32 = 1 << 20;
pub const PACK_TARGET_HIGHEST: u32 = 1 << 30;
