//! Writing file content. The chunks of a batch are grouped into *spans*: chunks whose blobs lie
//! close together in one pack (as a snapshot writes a file's new chunks: back to back, or in an
//! encrypted repository shuffled within a window), read with one range read. Spans are fetched,
//! checked and written at their offsets in parallel (positional writes, in any order); all-zero
//! blocks become holes, so sparse files are restored sparse.

use std::fs::File;
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
const SPAN_BYTES: u64 = 4 << 20;
/// Bytes between two needed blobs that a span reads rather than splitting in two.
const SPAN_GAP: u64 = 256 << 10;

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

/// Groups a batch's chunks into spans: each the indices of chunks in one pack in pack order,
/// none farther than [`SPAN_GAP`] from the previous, at most [`SPAN_BYTES`] from the first's
/// start to the last's end (a single larger blob is a span of its own). Chunks stored once but
/// referenced twice are read twice.
fn spans(locations: &[BlobLocation]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..locations.len()).collect();
    order.sort_by_key(|&i| (locations[i].pack, locations[i].offset));
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let here = &locations[i];
        let joins = out.last().is_some_and(|span| {
            let (first, prev) = (
                &locations[span[0]],
                &locations[*span.last().expect("non-empty")],
            );
            let prev_end = prev.offset + prev.stored_len as u64;
            here.pack == prev.pack
                && here.offset >= prev_end
                && here.offset - prev_end <= SPAN_GAP
                && here.offset + here.stored_len as u64 - first.offset <= SPAN_BYTES
        });
        match out.last_mut() {
            Some(span) if joins => span.push(i),
            _ => out.push(vec![i]),
        }
    }
    out
}

/// A batch's chunk references with their locations, grouped into spans, and each chunk's offset
/// in the file (relative to the batch).
struct Batch<'r> {
    refs: &'r [ChunkRef],
    locations: Vec<BlobLocation>,
    spans: Vec<Vec<usize>>,
    offsets: Vec<u64>,
}

impl<'r> Batch<'r> {
    fn new(repo: &Repository, refs: &'r [ChunkRef]) -> Result<Self> {
        let locations = locate_batch(repo, refs)?;
        let mut at = 0u64;
        let offsets = refs
            .iter()
            .map(|r| {
                let start = at;
                at += r.len as u64;
                start
            })
            .collect();
        Ok(Batch {
            refs,
            spans: spans(&locations),
            locations,
            offsets,
        })
    }

    /// The raw bytes of a span's chunks, in span order, every chunk checked (id and length).
    fn fetch(&self, repo: &Repository, span: &[usize]) -> Result<Vec<u8>> {
        let ids: Vec<BlobId> = span.iter().map(|&i| self.refs[i].id.into()).collect();
        let lens: Vec<u32> = span.iter().map(|&i| self.refs[i].len).collect();
        let locations: Vec<BlobLocation> = span.iter().map(|&i| self.locations[i]).collect();
        repo.read_run(&ids, BlobKind::Chunk, &locations, Some(&lens))
    }

    /// A fetched span cut into pieces that are contiguous in the file: (file offset, bytes).
    fn pieces<'b>(&self, span: &[usize], bytes: &'b [u8]) -> Vec<(u64, &'b [u8])> {
        let mut out: Vec<(u64, &'b [u8])> = Vec::new();
        let mut pos = 0usize;
        let mut prev: Option<usize> = None;
        for &i in span {
            let len = self.refs[i].len as usize;
            match out.last_mut() {
                Some((_, piece)) if prev.is_some_and(|p| p + 1 == i) => {
                    *piece = &bytes[pos - piece.len()..pos + len];
                }
                _ => out.push((self.offsets[i], &bytes[pos..pos + len])),
            }
            pos += len;
            prev = Some(i);
        }
        out
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
        let fetched: Vec<Vec<u8>> = batch
            .spans
            .par_iter()
            .map(|span| batch.fetch(repo, span))
            .collect::<Result<_>>()?;
        // In file order: each chunk's bytes, wherever its span put them.
        let mut pieces: Vec<(u64, &[u8])> = batch
            .spans
            .iter()
            .zip(&fetched)
            .flat_map(|(span, bytes)| batch.pieces(span, bytes))
            .collect();
        pieces.sort_unstable_by_key(|(at, _)| *at);
        pieces.iter().try_for_each(|(_, p)| sink(p))
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
/// excluded). Chunks land at the offsets their chunk references give, so spans are fetched and
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
        batch.spans.par_iter().try_for_each(|span| {
            let bytes = batch.fetch(repo, span)?;
            for (at, piece) in batch.pieces(span, &bytes) {
                let n = write_sparse_at(file, path, offset + at, piece)?;
                written.fetch_add(n, Ordering::Relaxed);
            }
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
    fn spans_follow_pack_order_and_split_at_gaps_packs_and_the_size_bound() {
        let mib = 1 << 20;
        let locations = [
            at(1, 12, 100),
            at(1, 112, 50),                       // back to back with the first
            at(1, 112 + 50 + 300 * 1024, 10),     // a gap over SPAN_GAP
            at(2, 510, 10),                       // another pack
            at(2, 520, mib),                      // back to back
            at(2, 520 + mib as u64, 3 * mib),     // would pass 4 MiB
            at(2, 520 + 4 * mib as u64, 5 * mib), // larger than the bound on its own
        ];
        assert_eq!(
            spans(&locations),
            vec![vec![0, 1], vec![2], vec![3, 4], vec![5], vec![6]]
        );
        assert_eq!(spans(&[]), Vec::<Vec<usize>>::new());
        // Shuffled: file order 0,1,2 stored as 2,0,1 with small gaps: one span in pack order.
        let shuffled = [at(3, 300, 100), at(3, 450, 100), at(3, 12, 200)];
        assert_eq!(spans(&shuffled), vec![vec![2, 0, 1]]);
    }

    #[test]
    fn pieces_merge_chunks_contiguous_in_the_file() {
        let refs: Vec<ChunkRef> = [3u32, 4, 5]
            .iter()
            .map(|&len| ChunkRef {
                id: crate::id::ChunkId([0; 32]),
                len,
            })
            .collect();
        let batch = Batch {
            refs: &refs,
            locations: Vec::new(),
            spans: Vec::new(),
            offsets: vec![0, 3, 7],
        };
        // Span order 2, 0, 1: chunk 2's bytes first, then 0 and 1 (contiguous in the file).
        let bytes = b"cccccaaabbbb";
        assert_eq!(
            batch.pieces(&[2, 0, 1], bytes),
            vec![(7, &b"ccccc"[..]), (0, &b"aaabbbb"[..])]
        );
    }
}
