//! Prune, the repack: live blobs of wasteful packs -> new packs. Input: the [`Account`].
//! Output: the packs to condemn and the new packs, committed and described by index segments
//! (through [`crate::write::PackWriter`], invariant I1), not yet indexed: the caller indexes
//! them once its plan is durable. Also used by the sweep to rescue blobs.

use std::collections::{HashMap, HashSet};

use super::account::Account;
use super::PruneReport;
use crate::error::Result;
use crate::format::pack;
use crate::id::{BlobId, PackId};
use crate::index::BlobLocation;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::storage::ObjectKind;
use crate::write::{PackWriter, WrittenPack};

/// Copies the live blobs of the packs to repack into new packs, checked on the way; returns the
/// packs to condemn (those to delete, and those repacked) and the packs written.
pub(super) fn repack(
    repo: &Repository,
    account: &mut Account,
    progress: &dyn Progress,
    report: &mut PruneReport,
) -> Result<(Vec<PackId>, Vec<WrittenPack>)> {
    let mut writer = PackWriter::new(&repo.write_destination());
    let mut condemned: Vec<PackId> = std::mem::take(&mut account.delete);
    let packs = &account.packs;
    let repack = &account.repack;
    progress.total(repack.len() as u64, repack.iter().map(|p| packs[p]).sum());
    copy_packs(
        repo,
        repack,
        &mut account.live_in,
        &mut writer,
        |pack, copied| {
            progress.bytes(packs[&pack]);
            match copied {
                true => condemned.push(pack),
                false => report.packs_kept_damaged.push(pack),
            }
        },
    )?;
    report.packs_repacked -= report.packs_kept_damaged.len() as u64;
    let written = writer.finish()?;
    // Copying can reproduce a pack byte for byte (same blobs, same order): then it is the same
    // object, and must not be deleted.
    let written_ids: HashSet<PackId> = written.iter().map(|(p, _, _)| *p).collect();
    condemned.retain(|p| !written_ids.contains(p));
    Ok((condemned, written))
}

/// A pack read whole to copy blobs out of it.
struct ReadPack {
    data: Vec<u8>,
    /// Its bytes hash to its name: every stored byte is as written.
    intact: bool,
}

/// Reads a pack whole into `buf` and checks it against its name (one BLAKE3 pass). `None` for
/// no pack.
fn read_pack(
    repo: &Repository,
    pack: Option<&PackId>,
    mut buf: Vec<u8>,
) -> Option<Result<ReadPack>> {
    let pack = pack?;
    Some(
        repo.backend()
            .read_into(ObjectKind::Pack, &pack.to_hex(), &mut buf)
            .map(|()| ReadPack {
                intact: PackId::digest(&buf) == *pack,
                data: buf,
            }),
    )
}

/// Copies blobs of one pack into new packs. A pack that matches its name is copied from as it
/// is (the writer checked each blob against its id when it made the pack, and no byte has
/// changed since); otherwise each blob is checked (decompressed, its digest compared) and the
/// copy stops at the first that fails, returning false. In an encrypted repository every blob
/// is sealed again by the writer (authenticated, not decompressed).
fn copy_blobs(
    repo: &Repository,
    pack: &ReadPack,
    blobs: &[(BlobId, BlobLocation)],
    writer: &mut PackWriter<'_>,
) -> Result<bool> {
    for (id, loc) in blobs {
        let start = loc.offset as usize;
        let Some(stored) = pack.data.get(start..start + loc.stored_len as usize) else {
            return Ok(false);
        };
        if !pack.intact && !blob_checks(repo, writer, *id, loc, stored) {
            return Ok(false);
        }
        if !writer.add_stored(*id, loc.kind, loc.encoding, loc.raw_len, stored)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a blob of a damaged pack still decodes to its id (a delta chunk with its base: a
/// base that cannot be read counts as a failed check, so the pack is kept).
fn blob_checks(
    repo: &Repository,
    writer: &PackWriter<'_>,
    id: BlobId,
    loc: &BlobLocation,
    stored: &[u8],
) -> bool {
    let base = match loc.encoding.base() {
        Some(base) => match repo.read_base(base) {
            Ok(raw) => Some(raw),
            Err(_) => return false,
        },
        None => None,
    };
    pack::check_blob(
        writer.encryption(),
        id,
        loc.kind,
        loc.encoding,
        loc.raw_len,
        stored,
        base.as_deref().map(Vec::as_slice),
    )
    .is_ok()
}

/// Copies the live blobs of `packs`, in order, reading the next pack while the current one's
/// blobs are written. Calls `done(pack, copied)` for each (false: a blob failed its check).
pub(super) fn copy_packs(
    repo: &Repository,
    packs: &[PackId],
    blobs: &mut HashMap<PackId, Vec<(BlobId, BlobLocation)>>,
    writer: &mut PackWriter<'_>,
    mut done: impl FnMut(PackId, bool),
) -> Result<()> {
    // Two buffers, reused: the pack being copied and the one being read.
    let mut spare = Vec::new();
    let mut next = read_pack(repo, packs.first(), Vec::new());
    for (i, pack) in packs.iter().enumerate() {
        let current = next.take().expect("read ahead")?;
        let live = blobs.remove(pack).unwrap_or_default();
        let buffer = std::mem::take(&mut spare);
        let (ahead, copied) = rayon::join(
            || read_pack(repo, packs.get(i + 1), buffer),
            || copy_blobs(repo, &current, &live, writer),
        );
        next = ahead;
        spare = current.data;
        done(*pack, copied?);
    }
    Ok(())
}
