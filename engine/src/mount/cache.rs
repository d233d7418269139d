//! Random access to file content for the mount: decoded chunks and chunk lists kept in an LRU
//! with a byte budget, and `read(offset, size)` served from whole cached chunks.
//!
//! Input: a file's [`FileData`] and a byte range. Output: the bytes of the range.
//!
//! How: a file whose content is in chunk lists is found at an offset by binary search over the
//! lists' recorded sizes (no list read), then over the chunk offsets of that one list (read once
//! through [`content::read_list`] and cached): O(log n) however large the file. Chunks missing
//! from the cache are read through [`content::read_chunks`], the one content read path (every
//! chunk checked against its id), together with the chunks that follow them up to
//! [`READ_AHEAD`] bytes, so a sequential reader fetches in batches like `vault dump`.
//!
//! Invariants: memory stays within the byte budget plus the chunks of requests in flight; a
//! cached chunk was checked when it was read; nothing is ever written.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::format::tree::{ChunkRef, Content, FileData};
use crate::id::{ChunkId, ListId};
use crate::repo::{content, Repository};

/// Bytes read after a missed chunk, in the same batch (the next reads of a sequential reader).
const READ_AHEAD: u64 = 8 << 20;

/// What the cache holds: a chunk's bytes, or a chunk list with each chunk's offset in the list.
#[derive(Clone)]
enum Cached {
    Chunk(Arc<[u8]>),
    List(Arc<[(u64, ChunkRef)]>),
}

impl Cached {
    fn bytes(&self) -> u64 {
        match self {
            Cached::Chunk(b) => b.len() as u64,
            Cached::List(l) => (l.len() * std::mem::size_of::<(u64, ChunkRef)>()) as u64,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Chunk(ChunkId),
    List(ListId),
}

/// A least-recently-used map with a byte budget.
struct Lru {
    budget: u64,
    used: u64,
    tick: u64,
    entries: HashMap<Key, (Cached, u64)>,
    /// Last use -> key, oldest first.
    order: BTreeMap<u64, Key>,
}

impl Lru {
    fn get(&mut self, key: Key) -> Option<Cached> {
        let (value, used) = self.entries.get_mut(&key)?;
        self.order.remove(used);
        self.tick += 1;
        *used = self.tick;
        self.order.insert(self.tick, key);
        Some(value.clone())
    }

    fn put(&mut self, key: Key, value: Cached) {
        let size = value.bytes();
        if size > self.budget || self.entries.contains_key(&key) {
            return;
        }
        while self.used + size > self.budget {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((gone, _)) = self.entries.remove(&oldest) {
                self.used -= gone.bytes();
            }
        }
        self.tick += 1;
        self.used += size;
        self.order.insert(self.tick, key);
        self.entries.insert(key, (value, self.tick));
    }
}

/// Decoded chunks and chunk lists shared by every reader of the mount.
pub struct ChunkCache {
    lru: Mutex<Lru>,
}

/// One chunk of a read: its reference and its offset in the file.
#[derive(Clone, Copy)]
struct Placed {
    at: u64,
    chunk: ChunkRef,
}

impl ChunkCache {
    /// A cache holding at most `budget` bytes of chunks and chunk lists.
    pub fn new(budget: u64) -> ChunkCache {
        ChunkCache {
            lru: Mutex::new(Lru {
                budget,
                used: 0,
                tick: 0,
                entries: HashMap::new(),
                order: BTreeMap::new(),
            }),
        }
    }

    fn get(&self, key: Key) -> Option<Cached> {
        self.lru.lock().expect("cache lock").get(key)
    }

    fn put(&self, key: Key, value: Cached) {
        self.lru.lock().expect("cache lock").put(key, value);
    }

    /// Bytes held now (for tests of the budget).
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.lru.lock().expect("cache lock").used
    }

    /// The bytes `[offset, offset + size)` of `data`, cut to its size.
    pub fn read(
        &self,
        repo: &Repository,
        data: &FileData,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>> {
        let end = offset.saturating_add(size).min(data.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let wanted = self.chunks_from(repo, data, offset, end)?;
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = 0;
        while i < wanted.len() {
            let placed = wanted[i];
            if placed.at >= end {
                break;
            }
            let bytes = match self.get(Key::Chunk(placed.chunk.id)) {
                Some(Cached::Chunk(bytes)) => bytes,
                _ => {
                    self.fetch(repo, &wanted[i..])?;
                    match self.get(Key::Chunk(placed.chunk.id)) {
                        Some(Cached::Chunk(bytes)) => bytes,
                        // Larger than the whole budget: read it alone, uncached.
                        _ => Arc::from(Self::read_one(repo, placed.chunk)?),
                    }
                }
            };
            let lo = offset.max(placed.at) - placed.at;
            let hi = end.min(placed.at + bytes.len() as u64) - placed.at;
            out.extend_from_slice(&bytes[lo as usize..hi as usize]);
            i += 1;
        }
        Ok(out)
    }

    /// The chunks covering `[offset, end)`, then the ones after it up to [`READ_AHEAD`] bytes
    /// past `end` (candidates for reading ahead), each with its file offset.
    fn chunks_from(
        &self,
        repo: &Repository,
        data: &FileData,
        offset: u64,
        end: u64,
    ) -> Result<Vec<Placed>> {
        let stop = end.saturating_add(READ_AHEAD);
        let mut out = Vec::new();
        match &data.content {
            Content::Inline(refs) => {
                let mut at = 0u64;
                for r in refs {
                    if at >= stop {
                        break;
                    }
                    if at + r.len as u64 > offset {
                        out.push(Placed { at, chunk: *r });
                    }
                    at += r.len as u64;
                }
            }
            Content::Lists(lists) => {
                // Binary search over the lists' recorded sizes: the list holding `offset`.
                let mut starts = Vec::with_capacity(lists.len());
                let mut at = 0u64;
                for list in lists {
                    starts.push(at);
                    at += list.size;
                }
                let first = starts.partition_point(|&s| s <= offset).saturating_sub(1);
                for (list, &base) in lists.iter().zip(&starts).skip(first) {
                    if base >= stop {
                        break;
                    }
                    let chunks = self.list(repo, list)?;
                    // Binary search over the list's chunk offsets: the chunk holding `offset`.
                    let from = chunks
                        .partition_point(|(o, _)| base + o <= offset)
                        .saturating_sub(1);
                    for &(o, chunk) in &chunks[from..] {
                        if base + o >= stop {
                            break;
                        }
                        if base + o + chunk.len as u64 > offset {
                            out.push(Placed {
                                at: base + o,
                                chunk,
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// A chunk list's chunks with their offsets in the list, from the cache or read.
    fn list(
        &self,
        repo: &Repository,
        list: &crate::format::tree::ListRef,
    ) -> Result<Arc<[(u64, ChunkRef)]>> {
        if let Some(Cached::List(chunks)) = self.get(Key::List(list.id)) {
            return Ok(chunks);
        }
        let mut at = 0u64;
        let chunks: Arc<[(u64, ChunkRef)]> = content::read_list(repo, list)?
            .into_iter()
            .map(|r| {
                let here = at;
                at += r.len as u64;
                (here, r)
            })
            .collect();
        self.put(Key::List(list.id), Cached::List(chunks.clone()));
        Ok(chunks)
    }

    /// Reads the first of `candidates` and those after it not cached yet, up to [`READ_AHEAD`]
    /// bytes, in one batch through the content read path, and caches each chunk.
    fn fetch(&self, repo: &Repository, candidates: &[Placed]) -> Result<()> {
        let mut refs: Vec<ChunkRef> = Vec::new();
        let mut bytes = 0u64;
        for (i, placed) in candidates.iter().enumerate() {
            if bytes >= READ_AHEAD {
                break;
            }
            let cached = i > 0 && self.get(Key::Chunk(placed.chunk.id)).is_some();
            if cached || refs.iter().any(|r| r.id == placed.chunk.id) {
                continue;
            }
            refs.push(placed.chunk);
            bytes += placed.chunk.len as u64;
        }
        // The pieces hold one or more whole chunks in the order of `refs`: cut them apart.
        let mut next = 0usize;
        let mut partial: Vec<u8> = Vec::new();
        content::read_chunks(repo, &refs, |mut piece| {
            while !piece.is_empty() {
                let want = refs[next].len as usize - partial.len();
                let take = want.min(piece.len());
                partial.extend_from_slice(&piece[..take]);
                piece = &piece[take..];
                if partial.len() == refs[next].len as usize {
                    let chunk: Arc<[u8]> = Arc::from(std::mem::take(&mut partial));
                    self.put(Key::Chunk(refs[next].id), Cached::Chunk(chunk));
                    next += 1;
                }
            }
            Ok(())
        })
    }

    fn read_one(repo: &Repository, chunk: ChunkRef) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(chunk.len as usize);
        content::read_chunks(repo, &[chunk], |piece| {
            out.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u8, len: usize) -> (Key, Cached) {
        (
            Key::Chunk(ChunkId([n; 32])),
            Cached::Chunk(Arc::from(vec![n; len])),
        )
    }

    #[test]
    fn the_lru_keeps_its_budget_and_evicts_the_least_recently_used() {
        let cache = ChunkCache::new(100);
        for n in 0..3 {
            let (k, v) = chunk(n, 40);
            cache.put(k, v);
        }
        // 0 is evicted to make room for 2; 1 is then used, so 3 evicts 2, not 1.
        assert_eq!(cache.used(), 80);
        assert!(cache.get(chunk(0, 0).0).is_none());
        assert!(cache.get(chunk(1, 0).0).is_some());
        let (k, v) = chunk(3, 40);
        cache.put(k, v);
        assert!(cache.get(chunk(1, 0).0).is_some());
        assert!(cache.get(chunk(2, 0).0).is_none());
        assert!(cache.used() <= 100);
        // Larger than the whole budget: not cached.
        let (k, v) = chunk(4, 101);
        cache.put(k, v);
        assert!(cache.get(k).is_none());
    }
}
