//! Bringing the index in line with the packs in the repository.
//!
//! [`sync`] lists the packs and the index segments, takes in the packs the index does not know
//! from the segments not read yet (one read for many packs), then reads the trailers of those
//! still unknown, and adds them. When a known pack has vanished (deleted by a prune on another
//! host, or by hand) the index is rebuilt from scratch, so that a blob stored twice is found in
//! its surviving pack. Writing segments is the write path's (`crate::write::segments`).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::Index;
use crate::error::{Error, Result};
use crate::format::pack::{self, BlobEntry, FOOTER_LEN};
use crate::format::segment::{self, SegmentPack};
use crate::id::PackId;
use crate::keys::Encryption;
use crate::storage::{Backend, ObjectKind};

/// What a sync or rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub packs_added: u64,
    /// Of `packs_added`, those taken from index segments rather than their own trailers.
    pub packs_from_segments: u64,
    pub packs_vanished: u64,
    pub rebuilt: bool,
    /// Packs whose trailer could not be read or decoded: (pack name, reason).
    pub unreadable: Vec<(String, String)>,
    /// Index segments that could not be read or decoded (their packs are then read from their
    /// trailers): (segment name, the error, which names the segment).
    pub segments_unreadable: Vec<(String, String)>,
}

/// Reads and decodes the trailer of a pack of `size` bytes (two range reads).
/// In an encrypted repository the trailer is opened with `encryption`.
pub fn read_trailer(
    backend: &dyn Backend,
    encryption: &Encryption,
    pack: &PackId,
    size: u64,
) -> Result<Vec<BlobEntry>> {
    let name = pack.to_hex();
    let object = format!("pack {name}");
    if size < (pack::HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(Error::Corrupt {
            object,
            reason: format!("only {size} bytes long"),
        });
    }
    let footer = backend.read_range(
        ObjectKind::Pack,
        &name,
        size - FOOTER_LEN as u64,
        FOOTER_LEN as u64,
    )?;
    let trailer_len =
        pack::decode_footer(&footer, size).map_err(|e| Error::damaged(object.clone(), e))?;
    let start = size - FOOTER_LEN as u64 - trailer_len as u64;
    let trailer = backend.read_range(ObjectKind::Pack, &name, start, trailer_len as u64)?;
    pack::open_trailer(encryption, &trailer, size).map_err(|e| Error::damaged(object, e))
}

/// Brings the index up to date with the repository's packs. `full` forces a rebuild.
pub fn sync(
    index: &Index,
    backend: &dyn Backend,
    encryption: &Encryption,
    full: bool,
) -> Result<SyncReport> {
    let listed = backend.list(ObjectKind::Pack)?;
    let mut report = SyncReport::default();
    let mut present = Vec::with_capacity(listed.len());
    for info in &listed {
        match PackId::from_hex(&info.name) {
            Some(id) => present.push((id, info.size)),
            None => report
                .unreadable
                .push((info.name.clone(), "name is not a pack id".into())),
        }
    }
    let known = index.packs()?;
    let condemned = index.condemned()?;
    let present_ids: HashSet<PackId> = present.iter().map(|(id, _)| *id).collect();
    // Condemned packs are expected to go (a prune deletes them); any other pack that vanished
    // may have held the indexed copy of a blob that exists elsewhere, so the index is rebuilt.
    let gone_condemned: Vec<PackId> = condemned
        .iter()
        .filter(|id| !present_ids.contains(id))
        .copied()
        .collect();
    index.drop_packs(&gone_condemned)?;
    report.packs_vanished = known
        .keys()
        .filter(|id| !present_ids.contains(id) && !condemned.contains(id))
        .count() as u64;
    let rebuild = full || report.packs_vanished > 0;
    if rebuild {
        index.clear()?;
        report.rebuilt = true;
    }
    let mut wanted: Vec<(PackId, u64)> = present
        .into_iter()
        .filter(|(id, _)| !condemned.contains(id) && (rebuild || !known.contains_key(id)))
        .collect();
    if !wanted.is_empty() {
        wanted = take_from_segments(index, backend, encryption, wanted, &mut report)?;
    }
    // Trailers are read in parallel and committed in batches, so a crash loses little work.
    for batch in wanted.chunks(256) {
        let results: Vec<_> = batch
            .par_iter()
            .map(|(id, size)| (*id, *size, read_trailer(backend, encryption, id, *size)))
            .collect();
        let mut good = Vec::with_capacity(results.len());
        for (id, size, result) in results {
            match result {
                Ok(entries) => good.push((id, size, entries)),
                Err(e) => report.unreadable.push((id.to_hex(), e.to_string())),
            }
        }
        report.packs_added += good.len() as u64;
        index.add_packs(&good)?;
    }
    Ok(report)
}

/// Adds the `wanted` packs that unread index segments describe (with the size the listing
/// gives); returns the packs still wanted. Every segment listed is recorded as read; a segment
/// that cannot be read or decoded is reported and its packs are left to their trailers.
fn take_from_segments(
    index: &Index,
    backend: &dyn Backend,
    encryption: &Encryption,
    wanted: Vec<(PackId, u64)>,
    report: &mut SyncReport,
) -> Result<Vec<(PackId, u64)>> {
    let listed = backend.list(ObjectKind::Index)?;
    let done = index.segments_read()?;
    let listed_ids: HashSet<[u8; 32]> = listed
        .iter()
        .filter_map(|info| segment_id(&info.name))
        .collect();
    let gone: Vec<[u8; 32]> = done.difference(&listed_ids).copied().collect();
    let unread: Vec<[u8; 32]> = listed_ids.difference(&done).copied().collect();
    let mut still: HashMap<PackId, u64> = wanted.into_iter().collect();
    for batch in unread.chunks(64) {
        let decoded: Vec<_> = batch
            .par_iter()
            .map(|id| (*id, read_segment(backend, encryption, id)))
            .collect();
        let mut read = Vec::with_capacity(batch.len());
        let mut good = Vec::new();
        for (id, result) in decoded {
            match result {
                Ok(packs) => {
                    read.push(id);
                    for pack in packs {
                        if still.get(&pack.id) == Some(&pack.size) {
                            still.remove(&pack.id);
                            good.push((pack.id, pack.size, pack.entries));
                        }
                    }
                }
                Err(e) => report
                    .segments_unreadable
                    .push((hex::encode(id), e.to_string())),
            }
        }
        report.packs_added += good.len() as u64;
        report.packs_from_segments += good.len() as u64;
        index.add_packs(&good)?;
        index.record_segments(&read, &[])?;
    }
    if !gone.is_empty() {
        index.record_segments(&[], &gone)?;
    }
    let mut rest: Vec<(PackId, u64)> = still.into_iter().collect();
    rest.sort_unstable();
    Ok(rest)
}

pub(crate) fn segment_id(name: &str) -> Option<[u8; 32]> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(name, &mut id).ok()?;
    Some(id)
}

/// Reads and decodes `index/<id>`, checking that its name is its digest.
pub fn read_segment(
    backend: &dyn Backend,
    encryption: &Encryption,
    id: &[u8; 32],
) -> Result<Vec<SegmentPack>> {
    let name = hex::encode(id);
    let object = format!("index segment {name}");
    let bytes = backend.read(ObjectKind::Index, &name)?;
    if blake3::hash(&bytes).as_bytes() != id {
        return Err(Error::Corrupt {
            object,
            reason: "its content does not match its name".into(),
        });
    }
    segment::decode(encryption, &bytes).map_err(|e| Error::damaged(object, e))
}
