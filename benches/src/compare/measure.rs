//! Running one command under GNU time (wall, user+sys CPU, peak RSS), repository sizes, and the
//! byte-for-byte check of a restore.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use rayon::prelude::*;

use crate::tools::{Invocation, Tool};

/// Cost of one step (possibly several commands: times add up, RSS is the largest).
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    pub wall: f64,
    pub cpu: f64,
    pub rss_kib: u64,
}

impl Cost {
    pub fn add(&mut self, other: Cost) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.rss_kib = self.rss_kib.max(other.rss_kib);
    }
}

/// Runs `inv` of `tool` under `/usr/bin/time`, its output appended to `log`.
pub fn run(tool: &Tool, inv: &Invocation, log: &Path) -> io::Result<Cost> {
    let timing = log.with_extension("time");
    let out = File::options().create(true).append(true).open(log)?;
    let mut command = Command::new("/usr/bin/time");
    for name in tool.env_remove() {
        command.env_remove(name);
    }
    command
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&timing)
        .arg(&tool.program)
        .args(&inv.args)
        .envs(tool.env())
        .stdout(out.try_clone()?)
        .stderr(out)
        .stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    if let Some(cwd) = &inv.cwd {
        command.current_dir(cwd);
    }
    let start = Instant::now();
    let mut child = command.spawn()?;
    let feeder = match (&inv.stdin, child.stdin.take()) {
        (Some(path), Some(mut pipe)) => {
            let path = path.clone();
            Some(std::thread::spawn(move || -> io::Result<u64> {
                io::copy(&mut File::open(path)?, &mut pipe)
            }))
        }
        _ => None,
    };
    let status = child.wait()?;
    let wall = start.elapsed().as_secs_f64();
    if let Some(feeder) = feeder {
        feeder.join().expect("feeder thread")?;
    }
    let code = status.code().unwrap_or(-1);
    if !tool.ok(code) {
        return Err(io::Error::other(format!(
            "{} {:?} exited with {code}; see {}",
            tool.name,
            inv.args,
            log.display()
        )));
    }
    let text = fs::read_to_string(&timing)?;
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [_, user, sys, rss] = fields[..] else {
        return Err(io::Error::other(format!(
            "unexpected GNU time output {text:?}"
        )));
    };
    Ok(Cost {
        wall,
        cpu: user + sys,
        rss_kib: rss as u64,
    })
}

/// Runs every invocation of a step and adds up their costs.
pub fn run_all(tool: &Tool, invs: &[Invocation], log: &Path) -> io::Result<Cost> {
    let mut cost = Cost::default();
    for inv in invs {
        cost.add(run(tool, inv, log)?);
    }
    Ok(cost)
}

/// Apparent bytes of every file under `dir`.
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            files_under(&path, base, out)?;
        } else {
            out.push(path.strip_prefix(base).expect("under base").to_path_buf());
        }
    }
    Ok(())
}

fn digest(path: &Path) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize())
}

/// Checks that `restored` holds exactly the files of `source` with the same bytes.
pub fn same_tree(source: &Path, restored: &Path) -> io::Result<()> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    files_under(source, source, &mut a)?;
    files_under(restored, restored, &mut b)?;
    a.sort();
    b.sort();
    if a != b {
        return Err(io::Error::other(format!(
            "restored {} has {} files, the source {}",
            restored.display(),
            b.len(),
            a.len()
        )));
    }
    a.par_iter()
        .try_for_each(|rel| same_file(&source.join(rel), &restored.join(rel)))
}

pub fn same_file(source: &Path, restored: &Path) -> io::Result<()> {
    if digest(source)? != digest(restored)? {
        return Err(io::Error::other(format!(
            "restored {} differs from {}",
            restored.display(),
            source.display()
        )));
    }
    Ok(())
}
