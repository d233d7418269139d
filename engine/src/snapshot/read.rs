//! Stage 2, read: a source's bytes in windows, each starting with the unfinished tail of the
//! previous one. Input: any `Read` (a file, stdin, a command's stdout). Output: [`Window`].
//!
//! Source files are read with `read(2)` into a reused buffer rather than mapped: a file that is
//! truncated while mapped kills the reader with SIGBUS, and live application data (logs, a
//! database file) is truncated while backed up. Reading costs one memory copy, which measured
//! no slower than page-faulting a mapping in for FastCDC (`benches/`).

use std::io::{self, Read};

/// A buffer of source bytes: `data[..]` starts at a chunk boundary; `eof` says no bytes follow.
pub struct Window {
    pub data: Vec<u8>,
    pub eof: bool,
}

/// Reads `source` into windows of `size` bytes.
pub struct WindowReader<R> {
    source: R,
    size: usize,
    eof: bool,
    /// Bytes read so far.
    pub bytes_read: u64,
}

impl<R: Read> WindowReader<R> {
    pub fn new(source: R, size: usize) -> Self {
        WindowReader {
            source,
            size,
            eof: false,
            bytes_read: 0,
        }
    }

    /// Fills `buf` (which already holds `carry`, the previous window's tail) up to the window
    /// size or end of input. Retries interrupted reads.
    pub fn fill(&mut self, mut buf: Vec<u8>, carry: &[u8]) -> io::Result<Window> {
        buf.clear();
        buf.extend_from_slice(carry);
        let target = self.size.max(carry.len() + 1);
        if buf.capacity() < target {
            buf.reserve_exact(target - buf.len());
        }
        while !self.eof && buf.len() < target {
            let start = buf.len();
            buf.resize(target, 0);
            match self.source.read(&mut buf[start..]) {
                Ok(0) => {
                    buf.truncate(start);
                    self.eof = true;
                }
                Ok(n) => {
                    buf.truncate(start + n);
                    self.bytes_read += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
                Err(e) => {
                    buf.truncate(start);
                    return Err(e);
                }
            }
        }
        Ok(Window {
            data: buf,
            eof: self.eof,
        })
    }
}
