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

/// Writes a file's content into `file` (freshly created, empty). Returns bytes written.
pub fn write_content(
    repo: &Repository,
    file: &mut File,
    path: &Path,
    data: &FileData,
    progress: &dyn Progress,
) -> Result<u64> {
    let mut written = 0u64;
    let mut offset = 0u64;
    let mut pending_hole = false;
    fetch_content(repo, data, |chunk| {
        let len = chunk.len() as u64;
        if is_zero(&chunk) {
            pending_hole = true;
        } else {
            if pending_hole {
                file.seek(SeekFrom::Start(offset)).at(path)?;
                pending_hole = false;
            }
            file.write_all(&chunk).at(path)?;
            written += len;
        }
        offset += len;
        progress.bytes(len);
        Ok(())
    })?;
    // Trailing holes (and holes at all, if the file ended in one) are made by the final length.
    file.set_len(data.size).at(path)?;
    Ok(written)
}
