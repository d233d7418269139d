//! Delta restore of one file: what of an existing file at the target path can stay.
//!
//! The existing file is cut with the repository's file chunker (so content that moved keeps its
//! chunk boundaries) and every piece hashed under the repository's chunk id key. Each chunk of
//! the snapshot's file then gets a [`Source`]: already in place at its offset, present elsewhere
//! in the existing file, or to be fetched from the repository. A file with few moved chunks is
//! patched in place (only the other chunks are written); otherwise it is rebuilt into a
//! temporary file beside it from the reusable chunks plus the repository, then renamed over it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::chunk::Chunker;
use crate::error::{IoContext, Result};
use crate::format::config::ChunkerProfile;
use crate::format::tree::FileData;
use crate::id::ChunkId;
use crate::repo::content::{for_each_batch, BATCH};
use crate::repo::Repository;

/// Where one chunk of the file being restored comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The existing file already holds it at the chunk's offset.
    InPlace,
    /// The existing file holds it at this offset.
    Old(u64),
    /// Read from the repository (or, in a bulk restore, from a file restored earlier).
    Fetch,
}

/// The chunks of an existing file.
pub struct OldFile {
    pub file: File,
    pub len: u64,
    by_id: HashMap<ChunkId, u64>,
    by_offset: HashMap<u64, (ChunkId, u32)>,
}

impl OldFile {
    /// Reads and chunks the existing file (opened without following symlinks).
    /// Cut with the chunker parameters the snapshot's file was cut with (`profile`).
    pub fn scan(repo: &Repository, file: File, path: &Path, profile: u8) -> Result<OldFile> {
        let params = match ChunkerProfile::from_u8(profile) {
            Some(ChunkerProfile::Stream) => repo.config().chunker.stream,
            _ => repo.config().chunker.file,
        };
        let chunker = Chunker::new(params, repo.encryption());
        let len = file.metadata().at(path)?.len();
        let mut by_id = HashMap::new();
        let mut by_offset = HashMap::new();
        let window = chunker.window_size();
        let mut buf: Vec<u8> = Vec::with_capacity(window);
        let mut base = 0u64;
        let mut reader = &file;
        let mut eof = false;
        while !eof || !buf.is_empty() {
            if !eof {
                let have = buf.len();
                buf.resize(window, 0);
                let mut filled = have;
                while filled < window {
                    let n = reader.read(&mut buf[filled..]).at(path)?;
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
            }
            let cuts = chunker.cut(&buf, eof);
            if cuts.is_empty() && !eof {
                // Cannot happen with a window of three maximum chunks; guard against a loop.
                eof = true;
                continue;
            }
            let mut at = 0usize;
            for len in cuts {
                let piece = &buf[at..at + len as usize];
                let id = repo.encryption().chunk_id(piece);
                by_id.entry(id).or_insert(base + at as u64);
                by_offset.insert(base + at as u64, (id, len));
                at += len as usize;
            }
            buf.drain(..at);
            base += at as u64;
            if eof && at == 0 {
                break;
            }
        }
        Ok(OldFile {
            file,
            len,
            by_id,
            by_offset,
        })
    }

    /// Whether the existing file holds chunk `id` (`len` bytes) at `offset`: by the cut points,
    /// or else by hashing those bytes (other chunker parameters, a copied snapshot).
    fn holds_at(&self, repo: &Repository, id: ChunkId, len: u32, offset: u64) -> Result<bool> {
        if self.by_offset.get(&offset) == Some(&(id, len)) {
            return Ok(true);
        }
        if offset + len as u64 > self.len {
            return Ok(false);
        }
        let mut bytes = vec![0u8; len as usize];
        match self.file.read_exact_at(&mut bytes, offset) {
            Ok(()) => Ok(repo.encryption().chunk_id(&bytes) == id),
            Err(_) => Ok(false),
        }
    }

    /// Reads `len` bytes at `offset` and checks they are chunk `id`.
    pub fn read_chunk(
        &self,
        repo: &Repository,
        id: ChunkId,
        len: u32,
        offset: u64,
    ) -> Option<Vec<u8>> {
        let mut bytes = vec![0u8; len as usize];
        self.file.read_exact_at(&mut bytes, offset).ok()?;
        (repo.encryption().chunk_id(&bytes) == id).then_some(bytes)
    }
}

/// A file's plan: one source per chunk, in content order.
pub struct Plan {
    pub sources: Vec<Source>,
    pub in_place_bytes: u64,
    pub moved_bytes: u64,
    pub fetch_bytes: u64,
}

impl Plan {
    /// Patch in place when little has moved: moved chunks are then fetched (their old bytes may
    /// be overwritten before they are read), which is cheaper than rewriting the whole file
    /// while they are few.
    pub fn in_place(&self, size: u64) -> bool {
        self.moved_bytes <= size / 8
    }

    pub fn unchanged(&self, size: u64, old_len: u64) -> bool {
        self.moved_bytes == 0 && self.fetch_bytes == 0 && size == old_len
    }
}

/// The sources of every chunk of `data` given the existing file.
pub fn plan(repo: &Repository, data: &FileData, old: &OldFile) -> Result<Plan> {
    let mut plan = Plan {
        sources: Vec::new(),
        in_place_bytes: 0,
        moved_bytes: 0,
        fetch_bytes: 0,
    };
    let mut offset = 0u64;
    for_each_batch(repo, data, BATCH, |refs| {
        for r in refs {
            let source = if old.holds_at(repo, r.id, r.len, offset)? {
                plan.in_place_bytes += r.len as u64;
                Source::InPlace
            } else if let Some(&at) = old.by_id.get(&r.id) {
                plan.moved_bytes += r.len as u64;
                Source::Old(at)
            } else {
                plan.fetch_bytes += r.len as u64;
                Source::Fetch
            };
            plan.sources.push(source);
            offset += r.len as u64;
        }
        Ok(())
    })?;
    Ok(plan)
}
