//! Progress events. The engine never prints: it reports to a [`Progress`] and the CLI decides
//! whether to draw a bar. Every method has a no-op default.

/// Receives typed progress events from long operations. Called from many threads.
pub trait Progress: Send + Sync {
    /// The amount of work, when knowable (a restore knows it; a snapshot of stdin does not).
    fn total(&self, _files: u64, _bytes: u64) {}
    /// `n` more bytes of content were processed.
    fn bytes(&self, _n: u64) {}
    /// One more file (or stream) was finished.
    fn file_done(&self) {}
    /// A problem that does not stop the operation (also recorded in its report).
    fn warning(&self, _message: &str) {}
}

/// Discards every event.
pub struct NoProgress;
impl Progress for NoProgress {}
