//! The structural pack checks: every listed pack's trailer must decode and agree with the
//! index, and every index segment must decode and agree with the trailers of the packs it
//! describes.

use std::collections::HashMap;

use rayon::prelude::*;

use super::problems::Problems;
use super::report::ProblemKind;
use crate::error::Result;
use crate::format::pack::BlobEntry;
use crate::format::segment::SegmentPack;
use crate::id::PackId;
use crate::index::rebuild::{read_segment, read_trailer};
use crate::repo::Repository;
use crate::storage::ObjectKind;

/// The packs a run found listed, with their trailers as read.
pub(super) struct Packs {
    /// Every listed pack named by a pack id, with its size.
    pub(super) listed: Vec<(PackId, u64)>,
    /// Each listed pack's trailer, or why it could not be read.
    pub(super) trailers: Vec<(PackId, Result<Vec<BlobEntry>>)>,
}

impl Packs {
    /// The trailers that could be read.
    pub(super) fn readable(&self) -> HashMap<PackId, &Vec<BlobEntry>> {
        self.trailers
            .iter()
            .filter_map(|(id, t)| t.as_ref().ok().map(|e| (*id, e)))
            .collect()
    }
}

/// Lists the packs and reads every trailer (in parallel).
pub(super) fn read_trailers(repo: &Repository) -> Result<Packs> {
    let listed: Vec<(PackId, u64)> = repo
        .backend()
        .list(ObjectKind::Pack)?
        .iter()
        .filter_map(|o| PackId::from_hex(&o.name).map(|id| (id, o.size)))
        .collect();
    let trailers = listed
        .par_iter()
        .map(|(id, size)| {
            (
                *id,
                read_trailer(repo.backend().as_ref(), repo.encryption(), id, *size),
            )
        })
        .collect();
    Ok(Packs { listed, trailers })
}

/// Every trailer must decode and agree with the index.
pub(super) fn check_trailers(
    repo: &Repository,
    packs: &Packs,
    problems: &mut Problems,
) -> Result<()> {
    let reader = repo.index().reader()?;
    for (pack, trailer) in &packs.trailers {
        match trailer {
            Err(e) => {
                problems.add(
                    ProblemKind::PackUnreadable,
                    pack.to_hex(),
                    Some(*pack),
                    None,
                    e.to_string(),
                );
            }
            Ok(entries) => {
                for e in entries {
                    if let Some(loc) = reader.lookup(&e.id)? {
                        if loc.pack == *pack
                            && (loc.offset, loc.stored_len, loc.raw_len)
                                != (e.offset, e.stored_len, e.raw_len)
                        {
                            problems.add(
                                ProblemKind::TrailerMismatch,
                                pack.to_hex(),
                                Some(*pack),
                                None,
                                format!(
                                    "index and trailer disagree on blob {}; run `vault index rebuild`",
                                    e.id.to_hex()
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Index segments: each must decode and agree with the trailers of the packs it describes
/// that are still listed (format-spec/11-remote.md 11.4).
pub(super) fn check_segments(
    repo: &Repository,
    packs: &Packs,
    problems: &mut Problems,
) -> Result<()> {
    let by_pack: HashMap<PackId, (u64, &Vec<BlobEntry>)> = packs
        .trailers
        .iter()
        .zip(&packs.listed)
        .filter_map(|((id, t), (_, size))| t.as_ref().ok().map(|e| (*id, (*size, e))))
        .collect();
    let segments: Vec<String> = repo
        .backend()
        .list(ObjectKind::Index)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    let decoded: Vec<(String, Result<Vec<SegmentPack>>)> = segments
        .par_iter()
        .map(|name| {
            let mut id = [0u8; 32];
            let result = match hex::decode_to_slice(name, &mut id) {
                Ok(()) => read_segment(repo.backend().as_ref(), repo.encryption(), &id),
                Err(_) => Err(crate::Error::invalid(
                    "index segment",
                    "name is not a segment id",
                )),
            };
            (name.clone(), result)
        })
        .collect();
    for (name, result) in decoded {
        let described = match result {
            Ok(described) => described,
            Err(e) => {
                problems.add(
                    ProblemKind::IndexSegmentDamaged,
                    name,
                    None,
                    None,
                    e.to_string(),
                );
                continue;
            }
        };
        for pack in described {
            match by_pack.get(&pack.id) {
                Some((size, entries)) if *size != pack.size || **entries != pack.entries => {
                    problems.add(
                        ProblemKind::IndexSegmentMismatch,
                        name.clone(),
                        Some(pack.id),
                        None,
                        format!("it disagrees with the trailer of pack {}; the trailer is used, and the next prune rewrites the segment", pack.id.to_hex()),
                    );
                }
                _ => {}
            }
        }
    }
    Ok(())
}
