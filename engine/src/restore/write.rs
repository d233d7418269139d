//! Writing file content. The chunks of a batch are grouped into *spans*: chunks whose blobs lie
//! close together in one pack (as a snapshot writes a file's new chunks: back to back, or in an
//! encrypted repository shuffled within a window), read with one range read. Spans are fetched,
//! checked and written at their offsets in parallel (positional writes, in any order); all-zero
//! blocks become holes, so sparse files are restored sparse.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::content::for_each_batch;
use super::delta::{OldFile, Source};
use crate::error::{IoContext, Result};
use crate::format::pack::BlobKind;
use crate::format::tree::{ChunkRef, FileData};
use crate::id::{BlobId, ChunkId, PackId};
use crate::index::BlobLocation;
use crate::progress::Progress;
use crate::repo::Repository;

/// Chunk references looked up together (one index read transaction).
pub const BATCH: usize = 256;

/// Stands in for the location of a chunk that is not read from the repository.
const UNUSED: BlobLocation = BlobLocation {
    pack: PackId([0; 32]),
    offset: 0,
    stored_len: 0,
    raw_len: 0,
    kind: BlobKind::Chunk,
    encoding: crate::format::pack::Encoding::Raw,
};

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
/// Only the chunks at `need` are looked up.
fn locate_batch(
    repo: &Repository,
    refs: &[ChunkRef],
    need: &[usize],
) -> Result<Vec<Option<BlobLocation>>> {
    let reader = repo.index().reader()?;
    let mut out = vec![None; refs.len()];
    for &i in need {
        out[i] = Some(repo.locate(&reader, refs[i].id.into(), BlobKind::Chunk)?);
    }
    Ok(out)
}

/// Groups a batch's chunks into spans: each the indices of chunks in one pack in pack order,
/// none farther than [`SPAN_GAP`] from the previous, at most [`SPAN_BYTES`] from the first's
/// start to the last's end (a single larger blob is a span of its own). Chunks stored once but
/// referenced twice are read twice.
#[cfg(test)]
fn spans(locations: &[BlobLocation]) -> Vec<Vec<usize>> {
    let all: Vec<usize> = (0..locations.len()).collect();
    spans_of(locations, all)
}

/// [`spans`] of the chunks at `order` only.
fn spans_of(locations: &[BlobLocation], mut order: Vec<usize>) -> Vec<Vec<usize>> {
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
    /// Looked up for the chunks that are read from the repository only.
    locations: Vec<Option<BlobLocation>>,
    spans: Vec<Vec<usize>>,
    offsets: Vec<u64>,
}

impl<'r> Batch<'r> {
    /// The chunks at `need` are looked up and grouped into spans.
    fn new(repo: &Repository, refs: &'r [ChunkRef], need: &[usize]) -> Result<Self> {
        let locations = locate_batch(repo, refs, need)?;
        let mut at = 0u64;
        let offsets = refs
            .iter()
            .map(|r| {
                let start = at;
                at += r.len as u64;
                start
            })
            .collect();
        let spans = {
            let placeholder = |i: usize| locations[i].unwrap_or(UNUSED);
            let dense: Vec<BlobLocation> = (0..refs.len()).map(placeholder).collect();
            spans_of(&dense, need.to_vec())
        };
        Ok(Batch {
            refs,
            spans,
            locations,
            offsets,
        })
    }

    /// The raw bytes of a span's chunks, in span order, every chunk checked (id and length).
    fn fetch(&self, repo: &Repository, span: &[usize]) -> Result<Vec<u8>> {
        let ids: Vec<BlobId> = span.iter().map(|&i| self.refs[i].id.into()).collect();
        let lens: Vec<u32> = span.iter().map(|&i| self.refs[i].len).collect();
        let locations: Vec<BlobLocation> = span
            .iter()
            .map(|&i| self.locations[i].expect("spans hold looked-up chunks"))
            .collect();
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
}

/// Fetches every chunk of `data` (checking each digest) and hands the content to `sink` in
/// order, in pieces of one or more chunks.
pub fn fetch_content(
    repo: &Repository,
    data: &FileData,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for_each_batch(repo, data, BATCH, |refs| {
        let all: Vec<usize> = (0..refs.len()).collect();
        let batch = Batch::new(repo, refs, &all)?;
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

/// Writes `bytes` at file offset `at` into a new file, skipping every all-zero piece of a block
/// (aligned to the file), so whole zero blocks stay holes. Returns the bytes written.
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
        // Zeros need not be written into a new file: a whole zero block stays a hole, and the
        // zero part of a block that the neighbouring piece shares is zero already. (Fine chunks
        // of a zero run start and end inside blocks.)
        if is_zero(&bytes[pos..end]) {
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

/// Chunks written so far in this run, by id: where a later file (another target of a bulk
/// restore) can copy them from instead of reading the repository again.
#[derive(Default)]
pub struct RestoredChunks(Mutex<HashMap<ChunkId, (Arc<PathBuf>, u64)>>);

impl RestoredChunks {
    fn record(&self, id: ChunkId, path: &Arc<PathBuf>, offset: u64) {
        self.0
            .lock()
            .unwrap()
            .entry(id)
            .or_insert_with(|| (path.clone(), offset));
    }

    fn find(&self, id: &ChunkId) -> Option<(Arc<PathBuf>, u64)> {
        self.0.lock().unwrap().get(id).cloned()
    }

    /// The chunk's bytes from the file it was restored into, if they are still there.
    fn read(&self, repo: &Repository, id: ChunkId, len: u32) -> Option<Vec<u8>> {
        let (path, offset) = self.find(&id)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&*path)
            .ok()?;
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, offset).ok()?;
        (repo.encryption().chunk_id(&bytes) == id).then_some(bytes)
    }
}

/// What a file write may take from disk instead of the repository. With `old`, the file is
/// being rebuilt into a new file: [`Source::InPlace`] chunks are copied from `old` at their own
/// offset; without it the file written *is* the old one and they are skipped.
#[derive(Default, Clone, Copy)]
pub struct Reuse<'a> {
    /// One source per chunk (delta restore); none means every chunk is fetched.
    pub plan: Option<&'a [Source]>,
    /// The existing file the plan's [`Source::Old`] offsets are in.
    pub old: Option<&'a OldFile>,
    /// Chunks restored earlier in this run (bulk restore).
    pub restored: Option<&'a RestoredChunks>,
    /// The file's final path, recorded in `restored`.
    pub path: Option<&'a Arc<PathBuf>>,
}

/// Bytes of one file write.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteStats {
    /// Written to disk (holes and chunks already in place excluded).
    pub written: u64,
    /// Read from the repository.
    pub fetched: u64,
    /// Taken from disk: already in place, or copied from the existing file or an earlier target.
    pub reused: u64,
}

enum Work {
    Span(Vec<usize>),
    Local(usize),
}

/// Writes a file's content into `file`. Returns its byte counts. Chunks land at the offsets
/// their chunk references give, so spans are fetched and written in parallel, in any order;
/// the final length makes the trailing hole, if any. With a plan, chunks already in place are
/// skipped and chunks on disk copied (each checked against its id, else fetched).
pub fn write_content(
    repo: &Repository,
    file: &File,
    path: &Path,
    data: &FileData,
    progress: &dyn Progress,
    reuse: Reuse<'_>,
) -> Result<WriteStats> {
    let written = AtomicU64::new(0);
    let fetched = AtomicU64::new(0);
    let reused = AtomicU64::new(0);
    let mut offset = 0u64;
    let mut index = 0usize;
    for_each_batch(repo, data, BATCH, |refs| {
        let sources: Vec<Source> = match reuse.plan {
            Some(plan) => plan[index..index + refs.len()].to_vec(),
            None => vec![Source::Fetch; refs.len()],
        };
        let mut fetch = Vec::new();
        let mut work = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            match source {
                // Rebuilding into a new file: copied from the old one at the same offset.
                Source::InPlace if reuse.old.is_some() => work.push(Work::Local(i)),
                Source::InPlace => {
                    reused.fetch_add(refs[i].len as u64, Ordering::Relaxed);
                    if let (Some(restored), Some(p)) = (reuse.restored, reuse.path) {
                        restored.record(refs[i].id, p, offset + batch_offset(refs, i));
                    }
                }
                Source::Old(_) => work.push(Work::Local(i)),
                Source::Fetch
                    if reuse
                        .restored
                        .is_some_and(|r| r.find(&refs[i].id).is_some()) =>
                {
                    work.push(Work::Local(i))
                }
                Source::Fetch => fetch.push(i),
            }
        }
        let batch = Batch::new(repo, refs, &fetch)?;
        work.extend(batch.spans.iter().cloned().map(Work::Span));
        // Patching the existing file in place: zeros must overwrite what is there, so no holes.
        let in_place = reuse.plan.is_some() && reuse.old.is_none();
        let write_piece = |at: u64, piece: &[u8]| -> Result<()> {
            let n = if in_place {
                file.write_all_at(piece, offset + at).at(path)?;
                piece.len() as u64
            } else {
                write_sparse_at(file, path, offset + at, piece)?
            };
            written.fetch_add(n, Ordering::Relaxed);
            Ok(())
        };
        let record = |i: usize| {
            if let (Some(restored), Some(p)) = (reuse.restored, reuse.path) {
                restored.record(refs[i].id, p, offset + batch.offsets[i]);
            }
        };
        work.par_iter().try_for_each(|item| {
            let span = match item {
                Work::Span(span) => span.clone(),
                Work::Local(i) => {
                    let r = &refs[*i];
                    let local = match sources[*i] {
                        Source::Old(at) => {
                            reuse.old.and_then(|o| o.read_chunk(repo, r.id, r.len, at))
                        }
                        Source::InPlace => reuse.old.and_then(|o| {
                            o.read_chunk(repo, r.id, r.len, offset + batch.offsets[*i])
                        }),
                        _ => reuse.restored.and_then(|x| x.read(repo, r.id, r.len)),
                    };
                    if let Some(bytes) = local {
                        write_piece(batch.offsets[*i], &bytes)?;
                        reused.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        progress.bytes(bytes.len() as u64);
                        record(*i);
                        return Ok(());
                    }
                    // Gone or changed since it was planned: from the repository after all.
                    vec![*i]
                }
            };
            let located;
            let batch = if span.iter().all(|&i| batch.locations[i].is_some()) {
                &batch
            } else {
                located = Batch::new(repo, refs, &span)?;
                &located
            };
            let bytes = batch.fetch(repo, &span)?;
            for (at, piece) in batch.pieces(&span, &bytes) {
                write_piece(at, piece)?;
            }
            fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            progress.bytes(bytes.len() as u64);
            span.iter().for_each(|&i| record(i));
            Ok(())
        })?;
        offset += refs.iter().map(|r| r.len as u64).sum::<u64>();
        index += refs.len();
        Ok(())
    })?;
    file.set_len(data.size).at(path)?;
    Ok(WriteStats {
        written: written.into_inner(),
        fetched: fetched.into_inner(),
        reused: reused.into_inner(),
    })
}

/// Offset of chunk `i` within its batch.
fn batch_offset(refs: &[ChunkRef], i: usize) -> u64 {
    refs[..i].iter().map(|r| r.len as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::Encoding;

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
