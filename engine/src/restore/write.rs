//! Writing file content into a file at the target.
//!
//! Input: a file entry's content, the open file, and what may be taken from disk instead of
//! the repository ([`Reuse`]). Output: the file's bytes at their offsets, and [`WriteStats`].
//! Chunks are read through [`crate::repo::content`] (spans, coalesced range reads, every blob
//! checked); each span is written at its offsets as soon as it is fetched (positional writes,
//! spans in parallel and in any order), so no span's bytes are copied again. While one batch is
//! written, the next is looked up and its delta bases fetched. All-zero blocks become holes, so
//! sparse files are restored sparse; the final length makes a trailing hole.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::delta::{OldFile, Source};
use crate::error::{IoContext, Result};
use crate::format::tree::{ChunkRef, FileData};
use crate::id::ChunkId;
use crate::progress::Progress;
use crate::repo::content::{for_each_list, Batch, BATCH};
use crate::repo::Repository;

/// Whether every byte is zero (16 bytes at a time).
pub fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && words.remainder().iter().all(|&b| b == 0)
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

/// One file being written: where, what may come from disk, and the byte counts so far.
struct FileWrite<'a> {
    repo: &'a Repository,
    file: &'a File,
    path: &'a Path,
    progress: &'a dyn Progress,
    reuse: Reuse<'a>,
    written: AtomicU64,
    fetched: AtomicU64,
    reused: AtomicU64,
}

/// A batch looked up and its delta bases fetched, ready to be written.
struct Prepared<'r> {
    refs: &'r [ChunkRef],
    /// Where each chunk comes from (a delta restore's plan, else all fetched).
    sources: Vec<Source>,
    work: Vec<Work>,
    batch: Batch<'r>,
    /// File offset of the batch's first chunk.
    offset: u64,
}

/// Writes a file's content into `file`. Returns its byte counts. Chunks land at the offsets
/// their chunk references give, so spans are fetched and written in parallel, in any order;
/// the final length makes the trailing hole, if any. With a plan, chunks already in place are
/// skipped and chunks on disk copied (each checked against its id, else fetched).
///
/// Batches overlap: while one batch's spans are read, decoded, checked and written, the next
/// is looked up in the index and its delta bases fetched, so the cores do not wait on either
/// step (memory: two batches' bases at most). A bulk restore, whose later chunks may come from
/// what earlier batches wrote, prepares each batch after the previous one is written.
pub fn write_content(
    repo: &Repository,
    file: &File,
    path: &Path,
    data: &FileData,
    progress: &dyn Progress,
    reuse: Reuse<'_>,
) -> Result<WriteStats> {
    let writing = FileWrite {
        repo,
        file,
        path,
        progress,
        reuse,
        written: AtomicU64::new(0),
        fetched: AtomicU64::new(0),
        reused: AtomicU64::new(0),
    };
    let ahead = reuse.restored.is_none();
    let mut offset = 0u64;
    let mut index = 0usize;
    for_each_list(repo, data, |list| {
        let mut batches = list.chunks(BATCH).peekable();
        let mut next = match batches.next() {
            Some(refs) => Some(writing.prepare(refs, index, offset)?),
            None => None,
        };
        while let Some(current) = next.take() {
            index += current.refs.len();
            offset += current.refs.iter().map(|r| r.len as u64).sum::<u64>();
            let following = batches.next();
            let prepare = || following.map(|refs| writing.prepare(refs, index, offset));
            if ahead && following.is_some() {
                let (done, prepared) = rayon::join(|| writing.write(&current), prepare);
                done?;
                next = prepared.transpose()?;
            } else {
                writing.write(&current)?;
                next = prepare().transpose()?;
            }
        }
        Ok(())
    })?;
    file.set_len(data.size).at(path)?;
    Ok(WriteStats {
        written: writing.written.into_inner(),
        fetched: writing.fetched.into_inner(),
        reused: writing.reused.into_inner(),
    })
}

impl FileWrite<'_> {
    /// Decides where each chunk of `refs` (chunk `index` of the file onwards, at file offset
    /// `offset`) comes from, looks up those to fetch and fetches their delta bases.
    fn prepare<'r>(&self, refs: &'r [ChunkRef], index: usize, offset: u64) -> Result<Prepared<'r>> {
        let reuse = &self.reuse;
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
                    self.reused.fetch_add(refs[i].len as u64, Ordering::Relaxed);
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
        let batch = Batch::new(self.repo, refs, &fetch)?;
        work.extend(batch.spans.iter().cloned().map(Work::Span));
        Ok(Prepared {
            refs,
            sources,
            work,
            batch,
            offset,
        })
    }

    /// Writes a prepared batch: its spans and local copies in parallel, in any order.
    fn write(&self, prepared: &Prepared<'_>) -> Result<()> {
        let Prepared {
            refs,
            sources,
            work,
            batch,
            offset,
        } = prepared;
        let (repo, reuse, offset) = (self.repo, &self.reuse, *offset);
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
                        self.write_piece(offset + batch.offsets[*i], &bytes)?;
                        self.reused.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        self.progress.bytes(bytes.len() as u64);
                        record(*i);
                        return Ok(());
                    }
                    // Gone or changed since it was planned: from the repository after all.
                    vec![*i]
                }
            };
            let located;
            let batch = if batch.located(&span) {
                batch
            } else {
                located = Batch::new(repo, refs, &span)?;
                &located
            };
            let bytes = batch.fetch(repo, &span)?;
            for (at, piece) in batch.pieces(&span, &bytes) {
                self.write_piece(offset + at, piece)?;
            }
            self.fetched
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.progress.bytes(bytes.len() as u64);
            span.iter().for_each(|&i| record(i));
            Ok(())
        })
    }

    /// Writes `piece` at file offset `at`. Patching the existing file in place, zeros must
    /// overwrite what is there, so no holes; a new file skips zero blocks (holes).
    fn write_piece(&self, at: u64, piece: &[u8]) -> Result<()> {
        let in_place = self.reuse.plan.is_some() && self.reuse.old.is_none();
        let n = if in_place {
            self.file.write_all_at(piece, at).at(self.path)?;
            piece.len() as u64
        } else {
            write_sparse_at(self.file, self.path, at, piece)?
        };
        self.written.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// Offset of chunk `i` within its batch.
fn batch_offset(refs: &[ChunkRef], i: usize) -> u64 {
    refs[..i].iter().map(|r| r.len as u64).sum()
}
