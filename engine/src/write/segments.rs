//! Index segments, the write side: what committed packs say, stored as `index/<id>` objects
//! so that other caches take many packs in with one read (format-spec/11-remote.md).
//!
//! Input: committed packs (durable, invariant I1) as [`SegmentPack`]s. Output: segment objects
//! in the backend, recorded as read in this cache's index. A segment describes only durable
//! packs (I2 holds for every cache that reads it); [`compact_segments`] writes its
//! replacements durably before it deletes what they replace. Reading segments is
//! `index/rebuild.rs`'s.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::format::segment::{self, SegmentPack};
use crate::id::PackId;
use crate::index::rebuild::{read_segment, segment_id};
use crate::index::Index;
use crate::keys::Encryption;
use crate::storage::{Backend, ObjectKind};

/// Stores `packs` (committed, durable) as index segments and records them as read by `index`
/// (whose cache knows these packs already). Returns the segment ids.
pub fn write_segments(
    index: &Index,
    backend: &dyn Backend,
    encryption: &Encryption,
    packs: &[SegmentPack],
) -> Result<Vec<[u8; 32]>> {
    let mut ids = Vec::new();
    for group in segment::groups(packs) {
        let (id, file) = segment::encode(encryption, group);
        match backend.write(ObjectKind::Index, &hex::encode(id), &file) {
            Ok(()) | Err(Error::AlreadyExists { .. }) => ids.push(id),
            Err(e) => return Err(e),
        }
    }
    index.record_segments(&ids, &[])?;
    Ok(ids)
}

/// What [`compact_segments`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub segments_before: u64,
    pub segments_written: u64,
    pub segments_deleted: u64,
}

/// Segments holding fewer blobs than this are merged by [`compact_segments`].
const SMALL_SEGMENT_BLOBS: usize = segment::MAX_SEGMENT_BLOBS / 4;

/// Rewrites the segments that describe deleted packs, and merges small ones, after a prune:
/// the merged segments (only packs the listing still has) are durable before the old ones are
/// deleted, so every listed pack a segment described is described by one at every moment.
/// Memory stays bounded: segments are read one at a time and merged into at most one segment's
/// worth of packs before that is written. A segment that cannot be read is left alone.
pub fn compact_segments(
    index: &Index,
    backend: &dyn Backend,
    encryption: &Encryption,
) -> Result<CompactReport> {
    let listed: HashSet<PackId> = backend
        .list(ObjectKind::Pack)?
        .iter()
        .filter_map(|info| PackId::from_hex(&info.name))
        .collect();
    let segments: Vec<[u8; 32]> = backend
        .list(ObjectKind::Index)?
        .iter()
        .filter_map(|info| segment_id(&info.name))
        .collect();
    let mut report = CompactReport {
        segments_before: segments.len() as u64,
        ..Default::default()
    };
    let mut merged: Vec<SegmentPack> = Vec::new();
    let mut merged_blobs = 0usize;
    let mut replaced: Vec<[u8; 32]> = Vec::new();
    // Whether a segment waiting to be replaced describes a deleted pack.
    let mut stale = false;
    let flush = |merged: &mut Vec<SegmentPack>,
                 merged_blobs: &mut usize,
                 replaced: &mut Vec<[u8; 32]>,
                 report: &mut CompactReport|
     -> Result<()> {
        let mut written = Vec::new();
        if !merged.is_empty() {
            written = write_segments(index, backend, encryption, merged)?;
        }
        // A rewrite equal to an old segment is that segment (same bytes, same name): it stays.
        replaced.retain(|id| !written.contains(id));
        report.segments_written += written.len() as u64;
        // The replacements are durable: the old segments can go.
        for id in replaced.iter() {
            match backend.delete(ObjectKind::Index, &hex::encode(id)) {
                Ok(()) => report.segments_deleted += 1,
                Err(e) if crate::storage::is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        index.record_segments(&[], replaced)?;
        merged.clear();
        replaced.clear();
        *merged_blobs = 0;
        Ok(())
    };
    for id in segments {
        let Ok(packs) = read_segment(backend, encryption, &id) else {
            continue;
        };
        let blobs: usize = packs.iter().map(|p| p.entries.len()).sum();
        let kept: Vec<SegmentPack> = packs
            .into_iter()
            .filter(|p| listed.contains(&p.id))
            .collect();
        let kept_blobs: usize = kept.iter().map(|p| p.entries.len()).sum();
        if kept_blobs == blobs && blobs >= SMALL_SEGMENT_BLOBS {
            continue;
        }
        if merged_blobs + kept_blobs > segment::MAX_SEGMENT_BLOBS {
            flush(&mut merged, &mut merged_blobs, &mut replaced, &mut report)?;
            stale = false;
        }
        stale |= kept_blobs != blobs;
        merged_blobs += kept_blobs;
        merged.extend(kept);
        replaced.push(id);
    }
    // A lone small segment that describes no deleted pack is not worth rewriting.
    if replaced.len() > 1 || stale {
        flush(&mut merged, &mut merged_blobs, &mut replaced, &mut report)?;
    }
    Ok(report)
}
