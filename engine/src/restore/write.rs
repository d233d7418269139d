//! Writing file content. The chunks of a batch are grouped into *runs*: consecutive chunks whose
//! blobs lie back to back in one pack (as a snapshot writes a file's new chunks), read with one
//! range read. Runs are fetched, checked and written at their offsets in parallel (positional
//! writes, in any order); all-zero blocks become holes, so sparse files are restored sparse.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::content::for_each_batch;
use crate::error::{IoContext, Result};
use crate::format::pack::BlobKind;
use crate::format::tree::{ChunkRef, FileData};
use crate::id::BlobId;
use crate::index::BlobLocation;
use crate::progress::Progress;
use crate::repo::Repository;

/// Chunk references looked up together (one index read transaction).
pub const BATCH: usize = 256;

/// Stored bytes read with one range read at most.
const RUN_BYTES: u64 = 4 << 20;

/// Whether every byte is zero (16 bytes at a time).
pub fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && words.remainder().iter().all(|&b| b == 0)
}

/// The index locations of a batch of chunk references, looked up with one reader.
fn locate_batch(repo: &Repository, refs: &[ChunkRef]) -> Result<Vec<BlobLocation>> {
    let reader = repo.index().reader()?;
    refs.iter()
        .map(|r| repo.locate(&reader, r.id.into(), BlobKind::Chunk))
        .collect()
}

/// Splits a batch into runs: index ranges of chunks back to back in one pack, at most
/// [`RUN_BYTES`] stored bytes each (a single larger blob is a run of its own).
fn runs(locations: &[BlobLocation]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=locations.len() {
        let split = i == locations.len() || {
            let (prev, next) = (&locations[i - 1], &locations[i]);
            next.pack != prev.pack
                || next.offset != prev.offset + prev.stored_len as u64
                || next.offset + next.stored_len as u64 - locations[start].offset > RUN_BYTES
        };
        if split {
            out.push(start..i);
            start = i;
        }
    }
    out
}

/// A batch's chunk references with their locations, grouped into runs, and each run's offset in
/// the file (relative to the batch).
struct Batch<'r> {
    refs: &'r [ChunkRef],
    locations: Vec<BlobLocation>,
    runs: Vec<(Range<usize>, u64)>,
}

impl<'r> Batch<'r> {
    fn new(repo: &Repository, refs: &'r [ChunkRef]) -> Result<Self> {
        let locations = locate_batch(repo, refs)?;
        let mut at = 0u64;
        let runs = runs(&locations)
            .into_iter()
            .map(|range| {
                let start = at;
                at += refs[range.clone()]
                    .iter()
                    .map(|r| r.len as u64)
                    .sum::<u64>();
                (range, start)
            })
            .collect();
        Ok(Batch {
            refs,
            locations,
            runs,
        })
    }

    /// The raw bytes of one run, every chunk checked (digest and length).
    fn fetch(&self, repo: &Repository, range: &Range<usize>) -> Result<Vec<u8>> {
        let refs = &self.refs[range.clone()];
        let ids: Vec<BlobId> = refs.iter().map(|r| r.id.into()).collect();
        let lens: Vec<u32> = refs.iter().map(|r| r.len).collect();
        repo.read_run(
            &ids,
            BlobKind::Chunk,
            &self.locations[range.clone()],
            Some(&lens),
        )
    }

    fn bytes(&self) -> u64 {
        self.refs.iter().map(|r| r.len as u64).sum()
    }
}

/// Fetches every chunk of `data` (checking each digest) and hands the content to `sink` in
/// order, in pieces of one or more chunks.
pub fn fetch_content(
    repo: &Repository,
    data: &FileData,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for_each_batch(repo, data, BATCH, |refs| {
        let batch = Batch::new(repo, refs)?;
        let pieces: Vec<Vec<u8>> = batch
            .runs
            .par_iter()
            .map(|(range, _)| batch.fetch(repo, range))
            .collect::<Result<_>>()?;
        pieces.iter().try_for_each(|p| sink(p))
    })
}

/// Holes are made at this granularity (the common filesystem block size).
const HOLE_BLOCK: u64 = 4096;

/// Writes `bytes` at file offset `at`, leaving whole all-zero blocks (aligned to the file) as
/// holes. Returns the bytes written.
fn write_sparse_at(file: &File, path: &Path, at: u64, bytes: &[u8]) -> Result<u64> {
    let mut written = 0u64;
    let mut run_start: Option<usize> = None;
    let mut pos = 0usize;
    let mut write_run = |start: usize, end: usize| -> Result<()> {
        file.write_all_at(&bytes[start..end], at + start as u64)
            .at(path)?;
        written += (end - start) as u64;
        Ok(())
    };
    while pos < bytes.len() {
        let to_boundary = (HOLE_BLOCK - (at + pos as u64) % HOLE_BLOCK) as usize;
        let end = (pos + to_boundary).min(bytes.len());
        // Only whole blocks become holes; a partial block is cheaper to write than to track.
        let whole = end - pos == HOLE_BLOCK as usize;
        if whole && is_zero(&bytes[pos..end]) {
            if let Some(start) = run_start.take() {
                write_run(start, pos)?;
            }
        } else if run_start.is_none() {
            run_start = Some(pos);
        }
        pos = end;
    }
    if let Some(start) = run_start {
        write_run(start, bytes.len())?;
    }
    Ok(written)
}

/// Writes a file's content into `file` (freshly created, empty). Returns bytes written (holes
/// excluded). Runs land at the offsets their chunk references give, so they are fetched and
/// written in parallel, in any order; the final length makes the trailing hole, if any.
pub fn write_content(
    repo: &Repository,
    file: &File,
    path: &Path,
    data: &FileData,
    progress: &dyn Progress,
) -> Result<u64> {
    let written = AtomicU64::new(0);
    let mut offset = 0u64;
    for_each_batch(repo, data, BATCH, |refs| {
        let batch = Batch::new(repo, refs)?;
        batch.runs.par_iter().try_for_each(|(range, at)| {
            let bytes = batch.fetch(repo, range)?;
            let n = write_sparse_at(file, path, offset + at, &bytes)?;
            written.fetch_add(n, Ordering::Relaxed);
            progress.bytes(bytes.len() as u64);
            Ok(())
        })?;
        offset += batch.bytes();
        Ok(())
    })?;
    file.set_len(data.size).at(path)?;
    Ok(written.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::Encoding;
    use crate::id::PackId;

    fn at(pack: u8, offset: u64, stored_len: u32) -> BlobLocation {
        BlobLocation {
            pack: PackId([pack; 32]),
            offset,
            stored_len,
            raw_len: stored_len,
            kind: BlobKind::Chunk,
            encoding: Encoding::Raw,
        }
    }

    #[test]
    fn runs_split_at_gaps_packs_and_the_size_bound() {
        let mib = 1 << 20;
        let locations = [
            at(1, 12, 100),
            at(1, 112, 50),                       // back to back with the first
            at(1, 500, 10),                       // a gap
            at(2, 510, 10),                       // another pack
            at(2, 520, mib),                      // back to back
            at(2, 520 + mib as u64, 3 * mib),     // would pass 4 MiB
            at(2, 520 + 4 * mib as u64, 5 * mib), // larger than the bound on its own
        ];
        assert_eq!(runs(&locations), vec![0..2, 2..3, 3..5, 5..6, 6..7]);
        assert_eq!(runs(&[]), Vec::<Range<usize>>::new());
    }
}
