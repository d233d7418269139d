//! Serving the kernel's read requests: each request from the chunk store, and a sequential
//! reader's next chunks fetched in the background while the kernel consumes the current ones.
//!
//! Input: an open file (the handle the kernel names it by), its [`FileData`] and a byte range.
//! Output: the bytes of the range ([`Served`]), borrowed from the cached chunk when it lies in
//! one (the usual case: the kernel asks for 128 KiB, chunks of files are about 1 MiB).
//!
//! How: every open file is a *stream* with a horizon, the file offset up to which its chunks
//! were fetched or handed to the read-ahead workers. A read at or behind the horizon (and not
//! far behind the stream's last read: the kernel's requests overlap and come out of order) is
//! sequential: whenever less than [`AHEAD`] bytes lie between the read's end and the horizon,
//! the next [`WINDOW`] is located, its chunks not cached nor in flight are claimed, and the
//! claim goes to a worker ([`WORKERS`] threads), which fetches it through the store. A read
//! elsewhere is a seek: the stream starts over from there and read-ahead claims made for it
//! before are given up unread (unless a worker has started on them). The request's own chunks
//! are waited for if in flight, or fetched right away (only they: a random read costs its
//! chunks, not a window).
//!
//! Invariants: read-ahead in flight stays under half the cache budget, and a window is at most
//! a sixteenth of it, so memory stays bounded by the budget plus what is in flight; no chunk
//! is fetched twice at the same time (claims, see [`super::cache`]); errors of a read-ahead
//! reach the reader that needs the chunk, which fetches it itself.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::cache::{self, Bytes, Placed, Store};
use crate::error::Result;
use crate::format::tree::{ChunkRef, FileData};
use crate::repo::Repository;

/// Bytes located and fetched by one read-ahead job at most.
const WINDOW: u64 = 4 << 20;
/// Bytes a sequential stream keeps fetched or in flight ahead of its reads.
const AHEAD: u64 = 4 * WINDOW;
/// Threads fetching read-ahead windows.
const WORKERS: usize = 2;
/// Open files whose read-ahead state is kept (the oldest is forgotten past this).
const STREAMS: usize = 1024;

/// One open file read through the mount.
#[derive(Default)]
struct Stream {
    /// Chunks before this file offset were fetched or claimed for read-ahead.
    horizon: u64,
    /// The furthest end of a read so far.
    last: u64,
    /// Changes on every seek: read-ahead jobs of an older generation are given up.
    generation: u64,
    /// Last use, to forget the oldest stream when there are too many.
    used: u64,
}

/// A read-ahead job: claimed chunks of one stream's window.
struct Job {
    stream: u64,
    generation: u64,
    claimed: Vec<ChunkRef>,
}

/// What the workers share with the readers.
struct Shared {
    repo: Arc<Repository>,
    store: Store,
    streams: Mutex<(HashMap<u64, Stream>, u64)>,
}

impl Shared {
    /// Whether `job` is still wanted: its stream is open and has not sought elsewhere since.
    fn wanted(&self, job: &Job) -> bool {
        let streams = self.streams.lock().expect("streams lock");
        streams
            .0
            .get(&job.stream)
            .is_some_and(|s| s.generation == job.generation)
    }
}

/// The bytes of one read: a part of one cached chunk, or several chunks' parts joined.
pub enum Served {
    Part(Bytes, usize, usize),
    Joined(Vec<u8>),
}

impl Served {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Served::Part(chunk, lo, hi) => &chunk[*lo..*hi],
            Served::Joined(bytes) => bytes,
        }
    }
}

/// File reads for the mount, with read-ahead workers of its own (joined when dropped).
pub struct Reader {
    shared: Arc<Shared>,
    window: u64,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Reader {
    /// A reader caching at most `budget` bytes of chunks (plus read-ahead in flight, at most
    /// half of it).
    pub fn new(repo: Arc<Repository>, budget: u64) -> std::io::Result<Reader> {
        let shared = Arc::new(Shared {
            repo,
            store: Store::new(budget),
            streams: Mutex::new((HashMap::new(), 0)),
        });
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..WORKERS)
            .map(|i| {
                let (shared, queue) = (shared.clone(), queue.clone());
                std::thread::Builder::new()
                    .name(format!("vault-read-ahead-{i}"))
                    .spawn(move || work(&shared, &queue))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Reader {
            shared,
            window: (budget / 16).clamp(1, WINDOW),
            jobs: Some(jobs),
            workers,
        })
    }

    /// Forgets an open file's read-ahead state (it was closed).
    pub fn forget(&self, stream: u64) {
        let mut streams = self.shared.streams.lock().expect("streams lock");
        streams.0.remove(&stream);
    }

    /// The bytes `[offset, offset + size)` of `data` (cut to its size), read through open
    /// file `stream`.
    pub fn read(&self, stream: u64, data: &FileData, offset: u64, size: u64) -> Result<Served> {
        let end = offset.saturating_add(size).min(data.size);
        if offset >= end {
            return Ok(Served::Joined(Vec::new()));
        }
        // Read-ahead first, so the next windows are fetched while this request waits for its.
        self.read_ahead(stream, data, offset, end)?;
        let store = &self.shared.store;
        let repo = &*self.shared.repo;
        let wanted = store.locate(repo, data, offset, end)?;
        let mut parts = Vec::with_capacity(wanted.len());
        for (i, placed) in wanted.iter().enumerate() {
            let bytes = match store.wait_for(placed.chunk.id) {
                Some(bytes) => bytes,
                None => {
                    // Missing: fetch it with the rest of the request's chunks not there yet.
                    let claimed = store.claim(wanted[i..].iter().map(|p| p.chunk));
                    store.fetch(repo, &claimed)?;
                    match store.wait_for(placed.chunk.id) {
                        Some(bytes) => bytes,
                        // Larger than the whole budget, or evicted at once: read it alone.
                        None => cache::read_one(repo, placed.chunk)?,
                    }
                }
            };
            let lo = (offset.max(placed.at) - placed.at) as usize;
            let hi = (end.min(placed.end()) - placed.at) as usize;
            parts.push((bytes, lo, hi));
        }
        if parts.len() == 1 {
            let (bytes, lo, hi) = parts.pop().expect("one part");
            return Ok(Served::Part(bytes, lo, hi));
        }
        let mut joined = Vec::with_capacity((end - offset) as usize);
        for (bytes, lo, hi) in &parts {
            joined.extend_from_slice(&bytes[*lo..*hi]);
        }
        Ok(Served::Joined(joined))
    }

    /// Notes the read `[offset, end)` on `stream` and, when it is sequential, hands the next
    /// windows up to [`AHEAD`] bytes past `end` to the workers.
    fn read_ahead(&self, stream: u64, data: &FileData, offset: u64, end: u64) -> Result<()> {
        let shared = &*self.shared;
        loop {
            // Decide and move the horizon under the lock; locate and claim outside it.
            let (from, to, generation) = {
                let mut guard = shared.streams.lock().expect("streams lock");
                let (streams, tick) = &mut *guard;
                *tick += 1;
                if !streams.contains_key(&stream) && streams.len() >= STREAMS {
                    let oldest = streams.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k);
                    streams.remove(&oldest.expect("streams are full"));
                }
                let s = streams.entry(stream).or_default();
                s.used = *tick;
                let sequential = offset <= s.horizon.max(s.last)
                    && offset.saturating_add(AHEAD + self.window) >= s.last;
                if !sequential {
                    s.generation += 1;
                    (s.horizon, s.last) = (end, end);
                    return Ok(());
                }
                s.last = s.last.max(end);
                s.horizon = s.horizon.max(end);
                let full = shared.store.in_flight_bytes() >= shared.store.budget() / 2;
                if s.horizon >= data.size || s.horizon >= end + AHEAD || full {
                    return Ok(());
                }
                let from = s.horizon;
                s.horizon = (from + self.window).min(data.size);
                (from, s.horizon, s.generation)
            };
            let window: Vec<Placed> = shared.store.locate(&shared.repo, data, from, to)?;
            let claimed = shared.store.claim(window.iter().map(|p| p.chunk));
            if claimed.is_empty() {
                continue;
            }
            let job = Job {
                stream,
                generation,
                claimed,
            };
            let sender = self.jobs.as_ref().expect("read-ahead workers run");
            if let Err(mpsc::SendError(job)) = sender.send(job) {
                shared.store.give_up(&job.claimed);
                return Ok(());
            }
        }
    }
}

/// A read-ahead worker: fetches the jobs still wanted, gives the others up, until the reader
/// is dropped.
fn work(shared: &Shared, queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock().expect("read-ahead queue").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if shared.wanted(&job) {
            // An error is met again by the reader that needs the chunk (it fetches it itself).
            let _ = shared.store.fetch(&shared.repo, &job.claimed);
        } else {
            shared.store.give_up(&job.claimed);
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
