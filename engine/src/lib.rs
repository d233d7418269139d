//! vault's engine: a content-addressed, deduplicating backup repository.
//!
//! ```text
//! sources ─► snapshot/ : walk → read → chunk → hash ─┐
//!                                          tree ────┴─► write/ : dedup → compress → seal ─► pack ─► index
//!                                                                                                  │
//!                                                                    manifest (written last) ◄────┘
//! repository ─► restore/ : manifest → trees → chunk lists → chunks (digest-checked) → target
//! ```
//!
//! Layers (dependencies point down only):
//! - operations: [`snapshot`], [`restore`], [`verify`], [`browse`] (ls, find, diff, stats)
//! - state: [`repo`] (config, opening, reading objects), [`write`] (the one blob write path:
//!   dedup, compress, seal, pack, commit; invariants I1–I3), [`index`] (wraps redb completely)
//! - codecs: [`format`] (pure bytes <-> structs), [`storage`] (the [`storage::Backend`] trait);
//!   these two never import each other
//! - foundation: [`id`], [`error`], [`limits`], [`meta`], [`progress`], [`host`]
//! - [`report`]: every report as the JSON document `--json` prints
//!
//! The engine returns data (`*Report`, `*Summary`) and typed [`Error`]s; it never prints.

pub mod blobs;
pub mod browse;
pub mod chunk;
pub mod copy;
pub mod edit;
pub mod error;
pub mod export;
pub mod forget;
pub mod format;
pub mod host;
pub mod id;
pub mod index;
pub mod keys;
pub mod limits;
pub mod meta;
#[cfg(feature = "mount")]
pub mod mount;
pub mod ops;
pub mod progress;
pub mod prune;
pub mod repo;
pub mod report;
pub mod restore;
pub mod retention;
pub mod snapshot;
pub mod storage;
#[cfg(test)]
mod test_data;
pub mod verify;
pub mod write;

pub use error::{Error, ErrorKind, Result};
pub use format::config::{ChunkerConfig, ChunkerParams, Compression};
pub use format::manifest::{Manifest, SnapshotSummary, SourceProblem};
pub use id::{ChunkId, PackId, SnapshotId, TreeId};
pub use progress::{NoProgress, Progress};
pub use repo::{InitOptions, Repository, SnapshotFilter, SnapshotInfo};
pub use restore::{RestoreOptions, RestoreReport};
pub use snapshot::{SnapshotOptions, SnapshotReport, StreamSource};

/// Configures the global thread pool: worker stacks deep enough to walk trees nested
/// [`limits::MAX_TREE_DEPTH`] levels. Call once at program start; later calls change nothing.
pub fn init_thread_pool() {
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(256 << 20)
        .build_global();
}
