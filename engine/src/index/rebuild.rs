//! Bringing the index in line with the packs in the repository.
//!
//! [`sync`] lists the packs, reads the trailers of those the index does not know, and adds them.
//! When a known pack has vanished (deleted by a prune on another host, or by hand) the index is
//! rebuilt from scratch, so that a blob stored twice is found in its surviving pack.

use std::collections::HashSet;

use rayon::prelude::*;

use super::Index;
use crate::error::{Error, Result};
use crate::format::pack::{self, BlobEntry, FOOTER_LEN};
use crate::id::PackId;
use crate::keys::Encryption;
use crate::storage::{Backend, ObjectKind};

/// What a sync or rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub packs_added: u64,
    pub packs_vanished: u64,
    pub rebuilt: bool,
    /// Packs whose trailer could not be read or decoded: (pack name, reason).
    pub unreadable: Vec<(String, String)>,
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
    let wanted: Vec<(PackId, u64)> = present
        .into_iter()
        .filter(|(id, _)| !condemned.contains(id) && (rebuild || !known.contains_key(id)))
        .collect();
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
