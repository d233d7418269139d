//! Human and JSON renderings of engine reports, and the writes to stdout and stderr.
//!
//! Everything for stdout goes through [`out!`] / [`outln!`] or, for streams, [`stdout`]: they
//! return the write error instead of panicking as `println!` does, and remember a closed pipe.
//! A reader that closed the pipe (`vault list | head -1`) makes the command stop, and
//! `exit::report` ends it quietly with status 141 (as if killed by SIGPIPE). Only stdout counts:
//! a broken pipe elsewhere (an ssh connection) is an error like any other. Messages for stderr
//! go through [`errln!`], which ignores a closed stderr.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::HumanBytes;
use vault_engine::report::JsonReport;

/// Set once a write to stdout failed because its reader is gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write to stdout failed because its reader closed the pipe.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

fn watch<T>(result: io::Result<T>) -> io::Result<T> {
    if let Err(e) = &result {
        if e.kind() == io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    }
    result
}

/// Stdout as a stream (`dump`, `export`), which notes a closed pipe (see the module docs).
pub struct Stdout(io::Stdout);

pub fn stdout() -> Stdout {
    Stdout(io::stdout())
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        watch(self.0.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        watch(self.0.flush())
    }
}

/// Writes to stdout; the error of a closed pipe is returned, never a panic.
pub fn write_stdout(args: fmt::Arguments) -> io::Result<()> {
    watch(io::stdout().lock().write_fmt(args))
}

/// Writes to stderr; errors are ignored: a closed stderr leaves nobody to tell.
pub fn write_stderr(args: fmt::Arguments) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// `print!` that returns an `io::Result` (see the module docs).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that returns an `io::Result` (see the module docs).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics (see the module docs).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

/// Prints a report as the JSON document `--json` promises (README, "JSON output").
pub fn print_report(report: &impl JsonReport) -> io::Result<()> {
    outln!("{}", report.to_json())
}

pub fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}

/// Renders rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{:width$}  ", cell, width = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}
