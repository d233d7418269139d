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
    /// Size of the first window: a file's expected size plus one byte (to see its end in one
    /// read), so that small files never allocate a full window.
    first: Option<usize>,
    eof: bool,
    /// Bytes read so far.
    pub bytes_read: u64,
}

impl<R: Read> WindowReader<R> {
    /// `expected` is the source's size if known (a regular file's `st_size`).
    pub fn new(source: R, size: usize, expected: Option<u64>) -> Self {
        let first = expected.map(|e| (e as usize).saturating_add(1).min(size));
        WindowReader {
            source,
            size,
            first,
            eof: false,
            bytes_read: 0,
        }
    }

    /// Fills `buf` (which already holds `carry`, the previous window's tail) up to the window
    /// size or the end of input.
    pub fn fill(&mut self, mut buf: Vec<u8>, carry: &[u8]) -> io::Result<Window> {
        buf.clear();
        buf.extend_from_slice(carry);
        let size = self.first.take().unwrap_or(self.size);
        let want = size.saturating_sub(carry.len()).max(1);
        if !self.eof {
            buf.reserve_exact(want);
            // read_to_end retries interrupted reads and does not zero the buffer first.
            let n = (&mut self.source).take(want as u64).read_to_end(&mut buf)?;
            self.bytes_read += n as u64;
            if n < want {
                self.eof = true;
            }
        }
        Ok(Window {
            data: buf,
            eof: self.eof,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most 7 bytes per call, like a slow pipe.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn windows_with_carry_reassemble_the_source_whatever_the_hint() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for hint in [None, Some(0), Some(100), Some(10_000), Some(50_000)] {
            let mut reader = WindowReader::new(Trickle(&data), 1000, hint);
            let mut out = Vec::new();
            let mut carry = Vec::new();
            loop {
                let w = reader.fill(Vec::new(), &carry).unwrap();
                assert!(w.data.len() <= 1000.max(carry.len() + 1));
                // Keep the last 10 bytes as the carry, as the chunker would.
                let keep = if w.eof { 0 } else { w.data.len().min(10) };
                out.extend_from_slice(&w.data[..w.data.len() - keep]);
                carry = w.data[w.data.len() - keep..].to_vec();
                if w.eof {
                    break;
                }
            }
            assert_eq!(out, data, "hint {hint:?}");
            assert_eq!(reader.bytes_read, data.len() as u64);
        }
    }
}
