//! A repository history for rotation and crash tests: a source directory that changes every
//! "day", snapshots of it with recorded contents, and checks that every snapshot still restores
//! byte-exact and that the repository verifies clean.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;

/// Relative path -> content digest of every regular file under `root`.
pub fn digests(root: &Path) -> BTreeMap<PathBuf, blake3::Hash> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, file_digest(&path).0);
            }
        }
    }
    out
}

/// Bytes of all files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// A source directory that changes every "day": a shared base file, plus one file of random
/// (incompressible) data unique to that day, replacing the previous day's.
pub struct Days {
    pub src: PathBuf,
    /// Snapshot id -> the source's digests when it was taken.
    pub taken: BTreeMap<String, BTreeMap<PathBuf, blake3::Hash>>,
}

impl Days {
    pub fn new(env: &Env) -> Days {
        let src = env.path("src");
        fs::create_dir_all(src.join("assets")).unwrap();
        write(&src.join("assets/base.bin"), &random_bytes(1, 3 << 20));
        Days {
            src,
            taken: BTreeMap::new(),
        }
    }

    /// Takes day `day`'s snapshot (at 03:00 UTC on 2026-10-`day`) with extra arguments.
    pub fn snapshot(&mut self, env: &Env, day: u32, extra: &[&str]) -> String {
        for old in fs::read_dir(&self.src).unwrap() {
            let path = old.unwrap().path();
            if path.is_file() {
                fs::remove_file(path).unwrap();
            }
        }
        write(
            &self.src.join(format!("day-{day:02}.bin")),
            &random_bytes(100 + day as u64, 2 << 20),
        );
        let time = format!("2026-10-{day:02}T03:00:00Z");
        let mut args = vec!["--time", &time];
        args.extend_from_slice(extra);
        let src = self.src.to_str().unwrap().to_string();
        args.push(&src);
        let id = id_of(&env.snapshot(&args));
        self.taken.insert(id.clone(), digests(&self.src));
        id
    }

    /// Restores `id` and compares it with the source as it was.
    #[track_caller]
    pub fn check_restore(&self, env: &Env, id: &str) {
        let target = env.path(format!("restore-{}-{}", &id[..8], rand_suffix()));
        env.restore(id, &target, Vec::<String>::new()).ok();
        let restored = digests(&Env::restored(&target, &self.src));
        assert_eq!(
            &restored, &self.taken[id],
            "snapshot {id} did not restore byte-exact"
        );
        fs::remove_dir_all(&target).unwrap();
    }
}

pub fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
pub fn verify_clean(env: &Env) {
    let out = env.run(["verify", "--read-data", "--json"]);
    if out.code != 0 && std::env::var("VAULT_KEEP_FAILED").is_ok() {
        let kept = PathBuf::from(format!("/tmp/vault-kept-{}", rand_suffix()));
        copy_dir(env.dir.path(), &kept);
        eprintln!("repository kept in {}", kept.display());
    }
    assert_eq!(
        out.code,
        0,
        "verify --read-data not clean:\n{}",
        out.stdout_str()
    );
}

/// Objects in a repository directory (temporary `.tmp-*` files of a killed writer are not).
pub fn objects(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}
