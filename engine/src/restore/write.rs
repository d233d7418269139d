//! Writing file content: the chunks of a batch are fetched, checked and written at their offsets
//! in parallel (positional writes, in any order); all-zero blocks become holes, so sparse files
//! are restored sparse.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::content::for_each_batch;
use crate::error::{Error, IoContext, Result};
use crate::format::pack::BlobKind;
use crate::format::tree::{ChunkRef, FileData};
use crate::index::BlobLocation;
use crate::progress::Progress;
use crate::repo::Repository;

/// Chunk references looked up together (one index read transaction) and then fetched in
/// parallel.
pub const BATCH: usize = 64;

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

/// Reads and checks one chunk, including its length against the reference.
fn fetch_chunk(repo: &Repository, r: &ChunkRef, loc: &BlobLocation) -> Result<Vec<u8>> {
    let chunk = repo.read_located(r.id.into(), BlobKind::Chunk, loc)?;
    if chunk.len() != r.len as usize {
        return Err(Error::Corrupt {
            object: format!("chunk {}", r.id.to_hex()),
            reason: format!(
                "{} bytes long, but the file's chunk list says {}",
                chunk.len(),
                r.len
            ),
        });
    }
    Ok(chunk)
}

/// Fetches every chunk of `data` (checking each digest) and hands them to `sink` in order.
pub fn fetch_content(
    repo: &Repository,
    data: &FileData,
    mut sink: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<()> {
    for_each_batch(repo, data, BATCH, |refs| {
        let locations = locate_batch(repo, refs)?;
        let chunks: Vec<Vec<u8>> = refs
            .par_iter()
            .zip(&locations)
            .map(|(r, loc)| fetch_chunk(repo, r, loc))
            .collect::<Result<_>>()?;
        chunks.into_iter().try_for_each(&mut sink)
    })
}

/// Holes are made at this granularity (the common filesystem block size).
const HOLE_BLOCK: u64 = 4096;

/// Writes `chunk` at file offset `at`, leaving whole all-zero blocks (aligned to the file) as
/// holes. Returns the bytes written.
fn write_sparse_at(file: &File, path: &Path, at: u64, chunk: &[u8]) -> Result<u64> {
    let mut written = 0u64;
    let mut run_start: Option<usize> = None;
    let mut pos = 0usize;
    let mut write_run = |start: usize, end: usize| -> Result<()> {
        file.write_all_at(&chunk[start..end], at + start as u64)
            .at(path)?;
        written += (end - start) as u64;
        Ok(())
    };
    while pos < chunk.len() {
        let to_boundary = (HOLE_BLOCK - (at + pos as u64) % HOLE_BLOCK) as usize;
        let end = (pos + to_boundary).min(chunk.len());
        // Only whole blocks become holes; a partial block is cheaper to write than to track.
        let whole = end - pos == HOLE_BLOCK as usize;
        if whole && is_zero(&chunk[pos..end]) {
            if let Some(start) = run_start.take() {
                write_run(start, pos)?;
            }
        } else if run_start.is_none() {
            run_start = Some(pos);
        }
        pos = end;
    }
    if let Some(start) = run_start {
        write_run(start, chunk.len())?;
    }
    Ok(written)
}

/// Writes a file's content into `file` (freshly created, empty). Returns bytes written (holes
/// excluded). Chunks land at the offsets their references give, so they are fetched and written
/// in parallel, in any order; the final length makes the trailing hole, if any.
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
        let locations = locate_batch(repo, refs)?;
        let starts: Vec<u64> = refs
            .iter()
            .map(|r| {
                let at = offset;
                offset += r.len as u64;
                at
            })
            .collect();
        refs.par_iter()
            .zip(&locations)
            .zip(&starts)
            .try_for_each(|((r, loc), &at)| {
                let chunk = fetch_chunk(repo, r, loc)?;
                written.fetch_add(write_sparse_at(file, path, at, &chunk)?, Ordering::Relaxed);
                progress.bytes(chunk.len() as u64);
                Ok(())
            })
    })?;
    file.set_len(data.size).at(path)?;
    Ok(written.into_inner())
}
