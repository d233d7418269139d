//! Looking inside backups, vault vs restic: `ls` of one directory, `find` over every snapshot
//! and `diff` of two consecutive days, on N daily snapshots of one tree (a few files change and
//! one is added each day). Both repositories are unencrypted-equivalent (restic 0.14 needs a
//! password; vault is `--encryption none`), local, with warm page caches. Each query runs
//! `--runs` times; the median wall time is reported, with the vault/restic ratio.
//!
//! Usage: `browse [--days N] [--dirs N] [--files N] [--runs N] [--vault PATH] [--work DIR]`
//! (defaults 30 days, 100 directories of 30 files, 5 runs; vault from target/release). See
//! benches/README.md. Timings are never asserted anywhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use vault_benches::data::random;

struct Settings {
    days: u64,
    dirs: u64,
    files: u64,
    runs: usize,
    vault: PathBuf,
    work: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: browse [--days N] [--dirs N] [--files N] [--runs N] [--vault PATH] [--work DIR]"
    );
    std::process::exit(2)
}

fn settings() -> Settings {
    let mut s = Settings {
        days: 30,
        dirs: 100,
        files: 30,
        runs: 5,
        vault: PathBuf::from("target/release/vault"),
        work: std::env::temp_dir().join("vault-bench-browse"),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--days" => s.days = number().max(2),
            "--dirs" => s.dirs = number().max(1),
            "--files" => s.files = number().max(1),
            "--runs" => s.runs = number().max(1) as usize,
            "--vault" => s.vault = PathBuf::from(value),
            "--work" => s.work = PathBuf::from(value),
            _ => usage(),
        }
    }
    s
}

/// Directory `d` of the tree: ten top-level directories, the rest below them.
fn dir_of(tree: &Path, d: u64) -> PathBuf {
    tree.join(format!("top{:02}", d % 10))
        .join(format!("d{d:04}"))
}

fn file_of(tree: &Path, d: u64, f: u64) -> PathBuf {
    dir_of(tree, d).join(format!("f{f:04}.dat"))
}

fn write_file(path: &Path, seed: u64) {
    let len = 2048 + (seed * 7919) % 6144;
    std::fs::write(path, random(len as usize, seed)).expect("write a file of the tree");
}

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("run a tool");
    if !out.status.success() {
        panic!(
            "{:?} failed: {}",
            command,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

struct Tools<'a> {
    s: &'a Settings,
    vault_repo: PathBuf,
    restic_repo: PathBuf,
}

impl Tools<'_> {
    fn vault(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.s.vault);
        c.env("VAULT_REPO", &self.vault_repo)
            .env("VAULT_CACHE_DIR", self.s.work.join("vault-cache"))
            .args(args);
        c
    }

    fn restic(&self, args: &[&str]) -> Command {
        let mut c = Command::new("restic");
        c.env("RESTIC_REPOSITORY", &self.restic_repo)
            .env("RESTIC_PASSWORD", "vault-bench")
            .env("RESTIC_CACHE_DIR", self.s.work.join("restic-cache"))
            .args(args);
        c
    }

    /// One day: both tools back up the tree; returns (vault id, restic id).
    fn snapshot(&self, tree: &str) -> (String, String) {
        let out = run(&mut self.vault(&["snapshot", "-q", tree]));
        let vault = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let out = run(&mut self.restic(&["backup", tree]));
        let text = String::from_utf8_lossy(&out.stdout);
        let restic = text
            .lines()
            .find_map(|l| l.strip_prefix("snapshot ")?.strip_suffix(" saved"))
            .unwrap_or_else(|| panic!("no snapshot id in restic's output: {text}"))
            .to_string();
        (vault, restic)
    }
}

/// Median wall time of `runs` runs of `make()`, in seconds.
fn median(runs: usize, make: impl Fn() -> Command) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            run(&mut make());
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn main() {
    let s = settings();
    let _ = std::fs::remove_dir_all(&s.work);
    let tree = s.work.join("tree");
    let tools = Tools {
        s: &s,
        vault_repo: s.work.join("vault-repo"),
        restic_repo: s.work.join("restic-repo"),
    };
    for d in 0..s.dirs {
        std::fs::create_dir_all(dir_of(&tree, d)).expect("create the tree");
        for f in 0..s.files {
            write_file(&file_of(&tree, d, f), d * 100_000 + f);
        }
    }
    run(&mut tools.vault(&["init", "--encryption", "none", "-q"]));
    run(&mut tools.restic(&["init"]));
    let tree_arg = tree.to_str().expect("UTF-8 work directory");
    let mut ids = Vec::new();
    for day in 0..s.days {
        if day > 0 {
            // A few files change in three directories, one file is added.
            for k in 0..3 {
                let d = (day * 7 + k * 31) % s.dirs;
                write_file(&file_of(&tree, d, day % s.files), day * 1_000 + k);
            }
            write_file(&file_of(&tree, day % s.dirs, s.files + day), day);
        }
        ids.push(tools.snapshot(tree_arg));
        eprint!("\rday {}/{}", day + 1, s.days);
    }
    eprintln!();
    let (v_last, r_last) = ids.last().cloned().expect("days");
    let (v_prev, r_prev) = ids[ids.len() - 2].clone();
    let dir = dir_of(&tree, 5);
    let dir = dir.to_str().expect("UTF-8");
    let rows = [
        (
            "ls of one directory",
            median(s.runs, || tools.vault(&["ls", &format!("{v_last}:{dir}")])),
            median(s.runs, || tools.restic(&["ls", &r_last, dir])),
        ),
        (
            "find one name over all snapshots",
            median(s.runs, || tools.vault(&["find", "f0007.dat"])),
            median(s.runs, || tools.restic(&["find", "f0007.dat"])),
        ),
        (
            "diff of two consecutive days",
            median(s.runs, || tools.vault(&["diff", &v_prev, &v_last])),
            median(s.runs, || tools.restic(&["diff", &r_prev, &r_last])),
        ),
    ];
    println!(
        "{} daily snapshots of {} directories x {} files; median of {} runs\n",
        s.days, s.dirs, s.files, s.runs
    );
    println!("| query | vault s | restic s | vault/restic |");
    println!("|---|---|---|---|");
    for (what, vault, restic) in rows {
        println!(
            "| {what} | {vault:.3} | {restic:.3} | {:.2} |",
            vault / restic
        );
    }
    let _ = std::fs::remove_dir_all(&s.work);
}
