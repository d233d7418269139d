//! Writing file content: chunks fetched and checked in parallel batches, written in order;
//! all-zero chunks become holes, so sparse files are restored sparse.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use rayon::prelude::*;

use super::content::for_each_batch;
use crate::error::{IoContext, Result};
use crate::format::pack::BlobKind;
use crate::format::tree::FileData;
use crate::progress::Progress;
use crate::repo::Repository;

/// Chunks fetched in parallel before they are written in order.
pub const BATCH: usize = 32;

/// Whether every byte is zero (16 bytes at a time).
pub fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && words.remainder().iter().all(|&b| b == 0)
}

/// Fetches every chunk of `data` (checking each digest) and hands them to `sink` in order.
pub fn fetch_content(
    repo: &Repository,
    data: &FileData,
    mut sink: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<()> {
    for_each_batch(repo, data, BATCH, |refs| {
        let chunks: Vec<Vec<u8>> = refs
            .par_iter()
            .map(|r| {
                let reader = repo.index().reader()?;
                repo.read_blob(&reader, r.id.into(), BlobKind::Chunk)
            })
            .collect::<Result<_>>()?;
        for chunk in chunks {
            sink(chunk)?;
        }
        Ok(())
    })
}

/// Holes are made at this granularity (the common filesystem block size).
const HOLE_BLOCK: u64 = 4096;

/// Writes chunks at increasing offsets, turning all-zero aligned blocks into holes.
struct SparseWriter<'a> {
    file: &'a mut File,
    path: &'a Path,
    /// Offset the next chunk starts at.
    offset: u64,
    /// Where the file's cursor is.
    cursor: u64,
    written: u64,
}

impl SparseWriter<'_> {
    fn write_run(&mut self, at: u64, data: &[u8]) -> Result<()> {
        if self.cursor != at {
            self.file.seek(SeekFrom::Start(at)).at(self.path)?;
        }
        self.file.write_all(data).at(self.path)?;
        self.cursor = at + data.len() as u64;
        self.written += data.len() as u64;
        Ok(())
    }

    fn push(&mut self, chunk: &[u8]) -> Result<()> {
        let base = self.offset;
        let mut run_start: Option<usize> = None;
        let mut pos = 0usize;
        while pos < chunk.len() {
            let to_boundary = (HOLE_BLOCK - (base + pos as u64) % HOLE_BLOCK) as usize;
            let end = (pos + to_boundary).min(chunk.len());
            // Only whole blocks become holes; a partial block is cheaper to write than to track.
            let whole = end - pos == HOLE_BLOCK as usize;
            if whole && is_zero(&chunk[pos..end]) {
                if let Some(start) = run_start.take() {
                    self.write_run(base + start as u64, &chunk[start..pos])?;
                }
            } else if run_start.is_none() {
                run_start = Some(pos);
            }
            pos = end;
        }
        if let Some(start) = run_start {
            self.write_run(base + start as u64, &chunk[start..])?;
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }
}

/// Writes a file's content into `file` (freshly created, empty). Returns bytes written (holes
/// excluded).
pub fn write_content(
    repo: &Repository,
    file: &mut File,
    path: &Path,
    data: &FileData,
    progress: &dyn Progress,
) -> Result<u64> {
    let mut writer = SparseWriter {
        file,
        path,
        offset: 0,
        cursor: 0,
        written: 0,
    };
    fetch_content(repo, data, |chunk| {
        writer.push(&chunk)?;
        progress.bytes(chunk.len() as u64);
        Ok(())
    })?;
    let written = writer.written;
    // Trailing holes are made by the final length.
    file.set_len(data.size).at(path)?;
    Ok(written)
}
