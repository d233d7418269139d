//! Absolute snapshot throughput against the raw limits of the same machine, same run, same
//! input (benches/README.md, section 4):
//!
//! - **new data**: `vault snapshot` into an empty repository, against zstd at the repository's
//!   level compressing the same chunks on 2 threads (the pipeline's dominant cost), and against
//!   zstd over the whole input as one stream with 2 workers (`zstd -T2`);
//! - **stored data**: the same snapshot again (every chunk known: `--force-read` for the file
//!   tree), against FastCDC + BLAKE3 over the same bytes on 2 threads.
//!
//! Two inputs: a plain-SQL dump fed to `--stdin` from a file, and the mixed asset store
//! (`blobstore`) given as a path. Each figure is the best of `--runs` runs (default 3), so load
//! from other work on the machine hurts as little as possible; limits and vault runs alternate.
//!
//! Usage: `absolute [--dump-mib N] [--blobs-mib N] [--runs N] [--work DIR] [--vault PATH]`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use rayon::prelude::*;
use vault_benches::blobstore::BlobStore;
use vault_benches::dumpgen::Database;
use vault_engine::{ChunkerParams, Compression, InitOptions};

struct Settings {
    dump_mib: u64,
    blobs_mib: u64,
    runs: usize,
    work: Option<PathBuf>,
    vault: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: absolute [--dump-mib N] [--blobs-mib N] [--runs N] [--work DIR] [--vault PATH]"
    );
    std::process::exit(2)
}

fn settings() -> Settings {
    let mut s = Settings {
        dump_mib: 1024,
        blobs_mib: 2048,
        runs: 3,
        work: None,
        vault: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--dump-mib" => s.dump_mib = value().parse().unwrap_or_else(|_| usage()),
            "--blobs-mib" => s.blobs_mib = value().parse().unwrap_or_else(|_| usage()),
            "--runs" => s.runs = value().parse().unwrap_or_else(|_| usage()),
            "--work" => s.work = Some(value().into()),
            "--vault" => s.vault = Some(value().into()),
            _ => usage(),
        }
    }
    s
}

/// One input: its files (one for the dump), the chunker that cuts them, how vault takes it.
struct Input {
    name: &'static str,
    files: Vec<PathBuf>,
    params: ChunkerParams,
    /// `snapshot` arguments; the dump is fed to stdin from `files[0]`.
    args: Vec<String>,
    stdin: Option<PathBuf>,
    bytes: u64,
}

fn chunks(data: &[u8], p: ChunkerParams) -> Vec<(usize, usize)> {
    fastcdc::v2020::FastCDC::new(data, p.min as usize, p.avg as usize, p.max as usize)
        .map(|c| (c.offset, c.length))
        .collect()
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Seconds for zstd at `level` over every chunk of `files` on the pool's threads (files read
/// first, untimed).
fn zstd_limit(input: &Input, level: i32) -> f64 {
    let mut seconds = 0.0;
    for file in &input.files {
        let data = fs::read(file).expect("input file");
        let cuts = chunks(&data, input.params);
        let start = Instant::now();
        let stored: usize = cuts
            .par_iter()
            .map(|&(offset, len)| {
                COMPRESSOR.with(|c| {
                    let mut c = c.borrow_mut();
                    let c = c.get_or_insert_with(|| {
                        zstd::bulk::Compressor::new(level).expect("zstd context")
                    });
                    let mut out = Vec::with_capacity(len);
                    c.compress_to_buffer(&data[offset..offset + len], &mut out)
                        .unwrap_or(len)
                })
            })
            .sum();
        std::hint::black_box(stored);
        seconds += start.elapsed().as_secs_f64();
    }
    seconds
}

/// Counts what is written to it.
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Seconds for zstd at `level` over all of `files` as one stream with 2 worker threads, as
/// `cat FILES | zstd -T2` (files read first, untimed).
fn zstd_stream_limit(input: &Input, level: i32) -> f64 {
    use std::io::Write;
    let data: Vec<Vec<u8>> = input
        .files
        .iter()
        .map(|f| fs::read(f).expect("input file"))
        .collect();
    let start = Instant::now();
    let mut encoder = zstd::stream::write::Encoder::new(Count(0), level).expect("zstd");
    encoder.multithread(2).expect("zstd workers");
    for d in &data {
        encoder.write_all(d).expect("zstd");
    }
    std::hint::black_box(encoder.finish().expect("zstd").0);
    start.elapsed().as_secs_f64()
}

/// Seconds for FastCDC + BLAKE3 over `files` on 2 threads: each file is split in two halves,
/// each cut and hashed on its own thread (small files, one per thread).
fn cdc_hash_limit(input: &Input) -> f64 {
    let mut seconds = 0.0;
    let small: Vec<&PathBuf> = input
        .files
        .iter()
        .filter(|f| fs::metadata(f).map(|m| m.len() < 16 << 20).unwrap_or(true))
        .collect();
    let cut_and_hash = |data: &[u8]| -> u8 {
        chunks(data, input.params)
            .iter()
            .map(|&(o, l)| blake3::hash(&data[o..o + l]).as_bytes()[0])
            .fold(0, |a, b| a ^ b)
    };
    for file in input.files.iter().filter(|f| !small.contains(f)) {
        let data = fs::read(file).expect("input file");
        let (a, b) = data.split_at(data.len() / 2);
        let start = Instant::now();
        let (x, y) = rayon::join(|| cut_and_hash(a), || cut_and_hash(b));
        std::hint::black_box(x ^ y);
        seconds += start.elapsed().as_secs_f64();
    }
    if !small.is_empty() {
        let data: Vec<Vec<u8>> = small
            .iter()
            .map(|f| fs::read(f).expect("input file"))
            .collect();
        let start = Instant::now();
        let x: u8 = data
            .par_iter()
            .map(|d| cut_and_hash(d))
            .reduce(|| 0, |a, b| a ^ b);
        std::hint::black_box(x);
        seconds += start.elapsed().as_secs_f64();
    }
    seconds
}

/// Seconds of one `vault snapshot` of `input` into `repo`.
fn vault_snapshot(vault: &Path, repo: &Path, cache: &Path, input: &Input, extra: &[&str]) -> f64 {
    let mut command = Command::new(vault);
    command
        .arg("snapshot")
        .arg("-q")
        .args(extra)
        .args(&input.args)
        .env("VAULT_REPO", repo)
        .env("VAULT_CACHE_DIR", cache)
        .stdout(Stdio::null());
    if let Some(path) = &input.stdin {
        command.stdin(fs::File::open(path).expect("dump file"));
    }
    let start = Instant::now();
    let status = command.status().expect("vault runs");
    let seconds = start.elapsed().as_secs_f64();
    assert!(status.success(), "vault snapshot failed: {status}");
    seconds
}

fn fresh_repo(vault: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("work directory");
    let (repo, cache) = (dir.join("repo"), dir.join("cache"));
    let status = Command::new(vault)
        .args(["init", "-q", "--encryption", "none"])
        .env("VAULT_REPO", &repo)
        .env("VAULT_CACHE_DIR", &cache)
        .status()
        .expect("vault runs");
    assert!(status.success());
    // Writing the previous repository's packs back must not slow this run.
    let _ = Command::new("sync").status();
    (repo, cache)
}

fn rate(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1048576.0 / seconds
}

fn main() {
    let s = settings();
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .expect("thread pool");
    let work = s.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("vault-absolute-{}", std::process::id()))
    });
    fs::create_dir_all(&work).expect("work directory");
    let vault = s.vault.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("vault")
    });
    let defaults = InitOptions::default();
    let Compression::Zstd { level } = defaults.compression else {
        panic!("the default repository compresses");
    };

    eprintln!("absolute: generating the inputs in {}", work.display());
    let dump = work.join("app.sql");
    fs::write(
        &dump,
        Database::with_dump_size(s.dump_mib << 20).dump_bytes(),
    )
    .expect("dump");
    let store = BlobStore::create(&work.join("blobs"), s.blobs_mib << 20).expect("asset store");
    let mut store_files = Vec::new();
    let mut stack = vec![store.root().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("store") {
            let entry = entry.expect("store entry");
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            } else {
                store_files.push(entry.path());
            }
        }
    }
    let inputs = [
        Input {
            name: "SQL dump (stdin)",
            files: vec![dump.clone()],
            params: defaults.chunker.stream,
            args: vec!["--stdin".into(), "--stdin-name".into(), "db/app.sql".into()],
            stdin: Some(dump.clone()),
            bytes: fs::metadata(&dump).expect("dump").len(),
        },
        Input {
            name: "asset store (path)",
            files: store_files,
            params: defaults.chunker.file,
            args: vec![store.root().display().to_string()],
            stdin: None,
            bytes: store.bytes(),
        },
    ];

    let mut table = String::new();
    table += &format!(
        "| input | MiB | vault new data MiB/s | zstd {level} per chunk, 2 threads | ratio (target >= 0.75) | zstd -{level} -T2 over the stream | ratio | vault stored data MiB/s | FastCDC + BLAKE3, 2 threads | ratio (target >= 0.60) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for input in &inputs {
        eprintln!("absolute: {}", input.name);
        let repo_dir = work.join("repo");
        let mut new = f64::INFINITY;
        let mut stored = f64::INFINITY;
        let mut zstd = f64::INFINITY;
        let mut zstd_stream = f64::INFINITY;
        let mut cdc = f64::INFINITY;
        for _ in 0..s.runs {
            zstd = zstd.min(zstd_limit(input, level));
            zstd_stream = zstd_stream.min(zstd_stream_limit(input, level));
            let (repo, cache) = fresh_repo(&vault, &repo_dir);
            new = new.min(vault_snapshot(&vault, &repo, &cache, input, &[]));
            cdc = cdc.min(cdc_hash_limit(input));
            stored = stored.min(vault_snapshot(
                &vault,
                &repo,
                &cache,
                input,
                &["--force-read"],
            ));
        }
        let mib = input.bytes as f64 / 1048576.0;
        table += &format!(
            "| {} | {mib:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} |\n",
            input.name,
            rate(input.bytes, new),
            rate(input.bytes, zstd),
            zstd / new,
            rate(input.bytes, zstd_stream),
            zstd_stream / new,
            rate(input.bytes, stored),
            rate(input.bytes, cdc),
            cdc / stored,
        );
    }
    println!("{table}");
    if s.work.is_none() {
        let _ = fs::remove_dir_all(&work);
    }
}
