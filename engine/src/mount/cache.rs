//! Decoded chunks for the mount's readers: an LRU with a byte budget, the chunks being fetched
//! (in flight), and where a file's chunks lie.
//!
//! Input: a file's [`FileData`], byte ranges of it, and claims on the chunks to fetch. Output:
//! the chunks covering a range ([`Store::locate`]) and each chunk's bytes, cached or once its
//! fetch has ended ([`Store::wait_for`]).
//!
//! How: a file whose content is in chunk lists is found at an offset by binary search over the
//! lists' recorded sizes (no list read), then over the chunk offsets of that one list (read once
//! through [`content::read_list`] and cached): O(log n) however large the file (inline content
//! holds at most 64 chunks). Chunks are read through [`content::read_chunks`], the one content
//! read path (every chunk checked against its id). Whoever fetches a chunk first claims it
//! ([`Store::claim`]): a chunk is then in flight until [`Store::fetch`] caches it or gives it
//! up, and every other reader of it waits for that rather than fetching it again.
//!
//! Invariants: memory stays within the byte budget plus the chunks in flight; a cached chunk
//! was checked when it was read; a claimed chunk is always settled (cached or given up, and the
//! waiters woken), whatever the fetch's outcome; nothing is ever written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::Result;
use crate::format::tree::{ChunkRef, Content, FileData, ListRef};
use crate::id::{ChunkId, ListId};
use crate::repo::{content, Repository};

/// A decoded chunk, shared by the cache and the replies that use it (never copied again).
pub type Bytes = Arc<Vec<u8>>;

/// What the cache holds: a chunk's bytes, or a chunk list with each chunk's offset in the list.
#[derive(Clone)]
enum Cached {
    Chunk(Bytes),
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

    fn contains(&self, key: Key) -> bool {
        self.entries.contains_key(&key)
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

struct State {
    lru: Lru,
    /// Chunks claimed by a fetch that has not ended yet.
    in_flight: HashSet<ChunkId>,
    in_flight_bytes: u64,
}

/// Decoded chunks and chunk lists shared by every reader of the mount, and the chunks in flight.
pub struct Store {
    state: Mutex<State>,
    /// Signalled whenever chunks in flight are settled (cached or given up).
    settled: Condvar,
}

/// One chunk of a file: its reference and its offset in the file.
#[derive(Clone, Copy)]
pub struct Placed {
    pub at: u64,
    pub chunk: ChunkRef,
}

impl Placed {
    pub fn end(&self) -> u64 {
        self.at + self.chunk.len as u64
    }
}

impl Store {
    /// A store caching at most `budget` bytes of chunks and chunk lists.
    pub fn new(budget: u64) -> Store {
        Store {
            state: Mutex::new(State {
                lru: Lru {
                    budget,
                    used: 0,
                    tick: 0,
                    entries: HashMap::new(),
                    order: BTreeMap::new(),
                },
                in_flight: HashSet::new(),
                in_flight_bytes: 0,
            }),
            settled: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("chunk store lock")
    }

    pub fn budget(&self) -> u64 {
        self.lock().lru.budget
    }

    /// Bytes of the chunks in flight.
    pub fn in_flight_bytes(&self) -> u64 {
        self.lock().in_flight_bytes
    }

    /// Bytes held now (for tests of the budget).
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.lock().lru.used
    }

    /// The bytes of chunk `id`: cached now, or once the fetch in flight for it has ended.
    /// `None` when it is neither cached nor in flight (the caller fetches it).
    pub fn wait_for(&self, id: ChunkId) -> Option<Bytes> {
        let mut state = self.lock();
        loop {
            if let Some(Cached::Chunk(bytes)) = state.lru.get(Key::Chunk(id)) {
                return Some(bytes);
            }
            if !state.in_flight.contains(&id) {
                return None;
            }
            state = self.settled.wait(state).expect("chunk store lock");
        }
    }

    /// Claims those of `chunks` that are neither cached nor in flight (each once): they are in
    /// flight from now on, and the caller must hand them to [`Store::fetch`] or
    /// [`Store::give_up`].
    pub fn claim(&self, chunks: impl IntoIterator<Item = ChunkRef>) -> Vec<ChunkRef> {
        let mut state = self.lock();
        let mut claimed = Vec::new();
        for chunk in chunks {
            if state.lru.contains(Key::Chunk(chunk.id)) || !state.in_flight.insert(chunk.id) {
                continue;
            }
            state.in_flight_bytes += chunk.len as u64;
            claimed.push(chunk);
        }
        claimed
    }

    /// Ends the claim on `chunk`, caching `bytes` when there are some, and wakes the waiters.
    fn settle(&self, chunk: ChunkRef, bytes: Option<Bytes>) {
        let mut state = self.lock();
        if state.in_flight.remove(&chunk.id) {
            state.in_flight_bytes -= chunk.len as u64;
        }
        if let Some(bytes) = bytes {
            state.lru.put(Key::Chunk(chunk.id), Cached::Chunk(bytes));
        }
        drop(state);
        self.settled.notify_all();
    }

    /// Gives up claimed chunks without reading them (a read-ahead no longer wanted).
    pub fn give_up(&self, claimed: &[ChunkRef]) {
        for &chunk in claimed {
            self.settle(chunk, None);
        }
    }

    /// Reads the claimed chunks `claimed` in one batch through the content read path and
    /// caches each as it is complete. Every claim is settled when this returns, also on error
    /// (the chunks not read are given up: their readers fetch them again and meet the error).
    pub fn fetch(&self, repo: &Repository, claimed: &[ChunkRef]) -> Result<()> {
        if claimed.is_empty() {
            return Ok(());
        }
        // The pieces hold one or more whole chunks in the order of `claimed`: cut them apart.
        let mut next = 0usize;
        let mut partial: Vec<u8> = Vec::new();
        let result = content::read_chunks(repo, claimed, |mut piece| {
            while !piece.is_empty() && next < claimed.len() {
                let len = claimed[next].len as usize;
                let take = (len - partial.len()).min(piece.len());
                if partial.capacity() == 0 {
                    partial.reserve_exact(len);
                }
                partial.extend_from_slice(&piece[..take]);
                piece = &piece[take..];
                if partial.len() == len {
                    self.settle(claimed[next], Some(Arc::new(std::mem::take(&mut partial))));
                    next += 1;
                }
            }
            Ok(())
        });
        self.give_up(&claimed[next..]);
        result
    }

    /// The chunks overlapping `[from, to)` of `data`, in file order, each with its offset.
    pub fn locate(
        &self,
        repo: &Repository,
        data: &FileData,
        from: u64,
        to: u64,
    ) -> Result<Vec<Placed>> {
        let mut out = Vec::new();
        match &data.content {
            Content::Inline(refs) => {
                let mut at = 0u64;
                for &chunk in refs {
                    if at >= to {
                        break;
                    }
                    let placed = Placed { at, chunk };
                    if placed.end() > from {
                        out.push(placed);
                    }
                    at = placed.end();
                }
            }
            Content::Lists(lists) => {
                // Binary search over the lists' recorded sizes: the list holding `from`.
                let mut starts = Vec::with_capacity(lists.len());
                let mut at = 0u64;
                for list in lists {
                    starts.push(at);
                    at += list.size;
                }
                let first = starts.partition_point(|&s| s <= from).saturating_sub(1);
                for (list, &base) in lists.iter().zip(&starts).skip(first) {
                    if base >= to {
                        break;
                    }
                    let chunks = self.list(repo, list)?;
                    // Binary search over the list's chunk offsets: the chunk holding `from`.
                    let start = chunks
                        .partition_point(|(o, _)| base + o <= from)
                        .saturating_sub(1);
                    for &(o, chunk) in &chunks[start..] {
                        let placed = Placed {
                            at: base + o,
                            chunk,
                        };
                        if placed.at >= to {
                            break;
                        }
                        if placed.end() > from {
                            out.push(placed);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// A chunk list's chunks with their offsets in the list, from the cache or read.
    fn list(&self, repo: &Repository, list: &ListRef) -> Result<Arc<[(u64, ChunkRef)]>> {
        if let Some(Cached::List(chunks)) = self.lock().lru.get(Key::List(list.id)) {
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
        self.lock()
            .lru
            .put(Key::List(list.id), Cached::List(chunks.clone()));
        Ok(chunks)
    }
}

/// Reads one chunk alone, uncached (one larger than the whole budget).
pub fn read_one(repo: &Repository, chunk: ChunkRef) -> Result<Bytes> {
    let mut out = Vec::with_capacity(chunk.len as usize);
    content::read_chunks(repo, &[chunk], |piece| {
        out.extend_from_slice(piece);
        Ok(())
    })?;
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u8, len: usize) -> (Key, Cached) {
        (
            Key::Chunk(ChunkId([n; 32])),
            Cached::Chunk(Arc::new(vec![n; len])),
        )
    }

    fn put(store: &Store, (key, value): (Key, Cached)) {
        store.lock().lru.put(key, value);
    }

    fn has(store: &Store, n: u8) -> bool {
        store.lock().lru.get(chunk(n, 0).0).is_some()
    }

    #[test]
    fn the_lru_keeps_its_budget_and_evicts_the_least_recently_used() {
        let store = Store::new(100);
        for n in 0..3 {
            put(&store, chunk(n, 40));
        }
        // 0 is evicted to make room for 2; 1 is then used, so 3 evicts 2, not 1.
        assert_eq!(store.used(), 80);
        assert!(!has(&store, 0));
        assert!(has(&store, 1));
        put(&store, chunk(3, 40));
        assert!(has(&store, 1));
        assert!(!has(&store, 2));
        assert!(store.used() <= 100);
        // Larger than the whole budget: not cached.
        put(&store, chunk(4, 101));
        assert!(!has(&store, 4));
    }

    #[test]
    fn a_claimed_chunk_is_claimed_once_and_its_waiters_wake_when_it_settles() {
        let store = Arc::new(Store::new(1000));
        let one = ChunkRef {
            id: ChunkId([1; 32]),
            len: 10,
        };
        let two = ChunkRef {
            id: ChunkId([2; 32]),
            len: 20,
        };
        assert_eq!(store.claim([one, two, one]).len(), 2);
        assert_eq!(store.in_flight_bytes(), 30);
        // Claimed already: nobody else gets them.
        assert!(store.claim([one, two]).is_empty());
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || store.wait_for(one.id).map(|b| b.len()))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a waiter returned while in flight");
        store.settle(one, Some(Arc::new(vec![1; 10])));
        assert_eq!(waiter.join().unwrap(), Some(10));
        // Given up: neither cached nor in flight, so a waiter returns at once and may claim it.
        store.give_up(&[two]);
        assert_eq!(store.wait_for(two.id), None);
        assert_eq!(store.in_flight_bytes(), 0);
        assert_eq!(store.claim([two]).len(), 1);
    }
}
