//! Start-up latency of a backup command that reads standard input: the time from spawning the
//! process to its first read of stdin (what a restic-style "load the whole index first" costs
//! before a database dump can start streaming).
//!
//! The command's stdin is a pipe shrunk to one page (F_SETPIPE_SZ). One page is written at
//! once, filling it; the next write blocks until the command has read that page. The time at
//! which that second write returns is the first read, to within the scheduler's wake-up latency.
//! Then the rest of `--bytes` is streamed and the command's total time is recorded too.
//!
//! Usage: `startup-latency [--runs N] [--bytes N] -- COMMAND [ARGS...]`; the environment
//! (VAULT_REPO, RESTIC_REPOSITORY, ...) passes through. Prints one line per run and the median.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Instant;

use vault_benches::data;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args
        .iter()
        .position(|a| a == "--")
        .unwrap_or_else(|| usage());
    let (options, command) = (&args[..split], &args[split + 1..]);
    if command.is_empty() {
        usage();
    }
    let (mut runs, mut bytes) = (5usize, 1usize << 20);
    let mut it = options.iter();
    while let Some(o) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage());
        match o.as_str() {
            "--runs" => runs = value,
            "--bytes" => bytes = value,
            _ => usage(),
        }
    }
    let payload = data::random(bytes.max(4097), 11);
    let mut first = Vec::new();
    let mut total = Vec::new();
    for run in 1..=runs {
        let start = Instant::now();
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                eprintln!("startup-latency: {}: {e}", command[0]);
                std::process::exit(1)
            });
        let mut pipe = child.stdin.take().expect("piped");
        // SAFETY: fcntl(F_SETPIPE_SZ) on a pipe descriptor this process owns; no memory is passed.
        let page = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert_eq!(page, 4096, "could not shrink the pipe to one page");
        pipe.write_all(&payload[..4096]).expect("first page");
        pipe.write_all(&payload[4096..4097]).expect("blocked write");
        let read_at = start.elapsed().as_secs_f64() * 1000.0;
        pipe.write_all(&payload[4097..])
            .expect("rest of the stream");
        drop(pipe);
        let status = child.wait().expect("wait");
        let done = start.elapsed().as_secs_f64() * 1000.0;
        if !status.success() {
            eprintln!("startup-latency: {} exited with {status}", command[0]);
            std::process::exit(1);
        }
        println!("run {run}: first stdin read after {read_at:.1} ms, finished after {done:.1} ms");
        first.push(read_at);
        total.push(done);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median of {runs}: first read {:.1} ms, total {:.1} ms",
        median(&mut first),
        median(&mut total)
    );
}

fn usage() -> ! {
    eprintln!("usage: startup-latency [--runs N] [--bytes N] -- COMMAND [ARGS...]");
    std::process::exit(2)
}
