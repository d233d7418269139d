//! The packer: stored blobs -> durable pack files -> index entries and index segments.
//! Input: [`StoredBlob`] over a queue bounded by bytes ([`QUEUE_BYTES`]). Output: packs in the backend, their blobs in the
//! index, and [`PackerStats`]. Used through [`super::session`], never directly.
//!
//! Runs on its own thread, with a committer thread behind it. The packer fills packs
//! ([`PackFiller`]: their bytes go to the backend as they come, not yet visible under a name) and
//! hands each closed pack to the committer, which makes it durable and visible and then indexes
//! its blobs; meanwhile the packer fills the next one. So a snapshot never waits for the disk to
//! sync a pack unless [`COMMIT_QUEUE`] packs are waiting already.
//! Ordering (format-spec/01-repository.md): a pack is committed (durable) *before* its blobs
//! enter the index (I1, I2), before an index segment describes it, and its ids leave the dedup
//! pending set only after that (I8). [`run_packer`] returns only once every pack it was given is
//! committed, which is what lets a caller write its manifest after it (I3).
//!
//! In an encrypted repository the packer does not write blobs in the order they arrive: it
//! holds up to [`SHUFFLE_BLOBS`] blobs ([`SHUFFLE_BYTES`] bytes) and writes a random one of them
//! next, so that a file's chunks do not lie in a pack in file order (the order of chunk sizes
//! is what known-file attacks on content-defined chunking match).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::{Receiver, Sender};

use super::dedup::Dedup;
use super::pack::{FinishedPack, PackFiller};
use super::segments::write_segments;
use crate::error::{Error, Result};
use crate::format::pack::{BlobKind, Encoding};
use crate::format::segment::SegmentPack;
use crate::id::BlobId;
use crate::index::Index;
use crate::keys::Encryption;
use crate::storage::Backend;

/// A blob ready for a pack.
pub struct StoredBlob {
    pub id: BlobId,
    pub kind: BlobKind,
    pub encoding: Encoding,
    pub raw_len: u32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PackerStats {
    pub packs: u64,
    /// Bytes of all pack files written.
    pub bytes: u64,
    pub blobs: u64,
}

/// Bytes of blobs waiting between compression and the packer at most (bounds memory whatever
/// the chunk size: 8 incompressible 1 MiB file chunks, or thousands of compressed stream chunks).
pub const QUEUE_BYTES: usize = 8 << 20;

/// What one blob counts against [`QUEUE_BYTES`] beyond its bytes (its entry, the allocation).
const BLOB_OVERHEAD: usize = 256;

/// Staged packs waiting for their commit at most. Their bytes are in the backend already (for
/// the local backend: in the page cache), not in this process's memory.
pub const COMMIT_QUEUE: usize = 4;

/// Committed packs are described by an index segment once they hold this many blobs (and at the
/// end of the snapshot).
pub const SEGMENT_FLUSH_BLOBS: usize = 50_000;

/// Blobs held back to be written in random order, at most (encrypted repositories).
pub const SHUFFLE_BLOBS: usize = 64;
/// Bytes held back to be written in random order, at most (encrypted repositories).
pub const SHUFFLE_BYTES: usize = 4 << 20;

/// Blobs waiting to be written in random order.
struct Shuffle {
    held: Vec<StoredBlob>,
    bytes: usize,
    /// A BLAKE3 output stream under a random key: unpredictable choices, cheaply.
    random: blake3::OutputReader,
}

impl Shuffle {
    fn new() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system random source failed");
        Shuffle {
            held: Vec::new(),
            bytes: 0,
            random: blake3::Hasher::new_keyed(&key).finalize_xof(),
        }
    }

    /// Holds `blob`; returns the blobs to write now (a random one each while over the bounds).
    fn push(&mut self, blob: StoredBlob) -> Vec<StoredBlob> {
        self.bytes += blob.bytes.len();
        self.held.push(blob);
        let mut out = Vec::new();
        while self.held.len() > SHUFFLE_BLOBS || (self.bytes > SHUFFLE_BYTES && self.held.len() > 1)
        {
            out.push(self.take());
        }
        out
    }

    fn take(&mut self) -> StoredBlob {
        let mut word = [0u8; 8];
        self.random.fill(&mut word);
        let i = (u64::from_le_bytes(word) % self.held.len() as u64) as usize;
        let blob = self.held.swap_remove(i);
        self.bytes -= blob.bytes.len();
        blob
    }

    /// The remaining blobs, in random order.
    fn drain(&mut self) -> Vec<StoredBlob> {
        let mut out = Vec::with_capacity(self.held.len());
        while !self.held.is_empty() {
            out.push(self.take());
        }
        out
    }
}

/// Bytes in flight between the senders and the packer.
#[derive(Default)]
struct Budget {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

/// The compressing side of the queue to the packer. Cloneable; `send` blocks while the queue
/// holds [`QUEUE_BYTES`] (a blob always fits into an empty queue).
#[derive(Clone)]
pub struct BlobSender {
    tx: Sender<StoredBlob>,
    budget: Arc<Budget>,
}

/// The packer's side of the queue.
pub struct BlobReceiver {
    rx: Receiver<StoredBlob>,
    budget: Arc<Budget>,
}

/// The packer is gone (it failed or its thread ended).
#[derive(Debug)]
pub struct PackerGone;

impl BlobSender {
    pub fn send(&self, blob: StoredBlob) -> std::result::Result<(), PackerGone> {
        let cost = blob.bytes.len() + BLOB_OVERHEAD;
        {
            let mut state = self.budget.state.lock().unwrap();
            while state.0 > 0 && state.0 + cost > QUEUE_BYTES && !state.1 {
                state = self.budget.changed.wait(state).unwrap();
            }
            if state.1 {
                return Err(PackerGone);
            }
            state.0 += cost;
        }
        self.tx.send(blob).map_err(|_| PackerGone)
    }
}

impl BlobReceiver {
    /// The next blob, until every sender is gone.
    fn recv(&self) -> Option<StoredBlob> {
        let blob = self.rx.recv().ok()?;
        let mut state = self.budget.state.lock().unwrap();
        state.0 -= blob.bytes.len() + BLOB_OVERHEAD;
        self.budget.changed.notify_all();
        Some(blob)
    }
}

impl Drop for BlobReceiver {
    fn drop(&mut self) {
        self.budget.state.lock().unwrap().1 = true;
        self.budget.changed.notify_all();
    }
}

pub fn channel() -> (BlobSender, BlobReceiver) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let budget = Arc::new(Budget::default());
    (
        BlobSender {
            tx,
            budget: budget.clone(),
        },
        BlobReceiver { rx, budget },
    )
}

/// Consumes blobs until every sender is gone, then flushes and waits for every pack to be
/// committed. On the first error it keeps draining (so senders never block) and returns that
/// error.
pub fn run_packer(
    blobs: BlobReceiver,
    backend: &dyn Backend,
    encryption: &Encryption,
    index: &Index,
    dedup: &Dedup<'_>,
    target: usize,
    version: u32,
) -> Result<PackerStats> {
    // A remote store takes several uploads at once: as many staged packs wait as it wants.
    let (staged, to_commit) = crossbeam_channel::bounded(COMMIT_QUEUE.max(backend.concurrency()));
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let committer =
            scope.spawn(|| run_committer(to_commit, backend, encryption, index, dedup, &failed));
        let shuffle = encryption.is_on().then(Shuffle::new);
        let filler = PackFiller::new(backend, encryption, target, version);
        let packed = fill_packs(&blobs, filler, shuffle, staged, &failed);
        let committed = committer.join().expect("pack committer thread panicked");
        // A commit failure stops the packer too; it is the cause to report.
        match (packed, committed) {
            (_, Err(e)) => Err(e),
            (Err(e), _) => Err(e),
            (Ok(()), Ok(stats)) => Ok(stats),
        }
    })
}

fn fill_packs<'a>(
    blobs: &BlobReceiver,
    mut filler: PackFiller<'a>,
    mut shuffle: Option<Shuffle>,
    staged: Sender<FinishedPack<'a>>,
    failed: &AtomicBool,
) -> Result<()> {
    let mut failure: Option<Error> = None;
    let write = |filler: &mut PackFiller<'a>, blob: StoredBlob| {
        let closed = filler.add(blob.id, blob.kind, blob.encoding, blob.raw_len, &blob.bytes);
        closed.and_then(|pack| match pack {
            Some(pack) => queue(pack, &staged, failed),
            None => Ok(()),
        })
    };
    while let Some(blob) = blobs.recv() {
        if failure.is_some() {
            continue;
        }
        let ready = match shuffle.as_mut() {
            Some(shuffle) => shuffle.push(blob),
            None => vec![blob],
        };
        if let Err(e) = ready.into_iter().try_for_each(|b| write(&mut filler, b)) {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(shuffle) = shuffle.as_mut() {
        shuffle
            .drain()
            .into_iter()
            .try_for_each(|b| write(&mut filler, b))?;
    }
    for pack in filler.finish()? {
        queue(pack, &staged, failed)?;
    }
    Ok(())
}

/// Hands a closed pack to the committer, unless it has failed.
fn queue<'a>(
    pack: FinishedPack<'a>,
    staged: &Sender<FinishedPack<'a>>,
    failed: &AtomicBool,
) -> Result<()> {
    if failed.load(Ordering::Relaxed) {
        return Err(packer_stopped());
    }
    staged.send(pack).map_err(|_| packer_stopped())
}

fn packer_stopped() -> Error {
    Error::Corrupt {
        object: "pack committer".into(),
        reason: "stopped".into(),
    }
}

/// Commits staged packs in order, then indexes each batch of committed packs in one index
/// transaction. After a failure, drops what arrives (removing the staged bytes).
fn run_committer(
    to_commit: Receiver<FinishedPack<'_>>,
    backend: &dyn Backend,
    encryption: &Encryption,
    index: &Index,
    dedup: &Dedup<'_>,
    failed: &AtomicBool,
) -> Result<PackerStats> {
    let mut stats = PackerStats::default();
    let mut failure: Option<Error> = None;
    // Committed packs not yet described by an index segment (bounded: flushed every
    // SEGMENT_FLUSH_BLOBS blobs).
    let mut undescribed: Vec<SegmentPack> = Vec::new();
    let mut undescribed_blobs = 0usize;
    while let Ok(first) = to_commit.recv() {
        if failure.is_some() {
            continue;
        }
        // Whatever else is staged already is committed and indexed with it.
        let mut committed = Vec::new();
        for pack in std::iter::once(first).chain(to_commit.try_iter()) {
            if failure.is_some() {
                continue;
            }
            // I1: the pack is durable before anything points at it.
            match pack.commit() {
                Ok(written) => committed.push(written),
                Err(e) => failure = Some(e),
            }
        }
        // I2: index entries only for durable packs.
        match index.add_packs(&committed) {
            Ok(()) => {
                for (_, size, entries) in &committed {
                    stats.packs += 1;
                    stats.bytes += size;
                    stats.blobs += entries.len() as u64;
                }
                let similar = dedup.committed(
                    committed
                        .iter()
                        .flat_map(|(_, _, e)| e.iter().map(|e| e.id)),
                );
                // A hint only (tables::SIMILAR): failing to record it costs compression later,
                // never data, so it does not fail the run.
                let _ = index.record_similar(&similar);
                for (id, size, entries) in committed {
                    undescribed_blobs += entries.len();
                    undescribed.push(SegmentPack { id, size, entries });
                }
                if undescribed_blobs >= SEGMENT_FLUSH_BLOBS {
                    let packs = std::mem::take(&mut undescribed);
                    undescribed_blobs = 0;
                    if let Err(e) = write_segments(index, backend, encryption, &packs) {
                        failure.get_or_insert(e);
                    }
                }
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
        if failure.is_some() {
            failed.store(true, Ordering::Relaxed);
        }
    }
    if failure.is_none() && !undescribed.is_empty() {
        if let Err(e) = write_segments(index, backend, encryption, &undescribed) {
            failure = Some(e);
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}
