//! Running vault against encrypted repositories: every command gets exactly the password source
//! a test asks for (the password variables of the test process itself are removed), the cheap
//! KDF (`VAULT_KDF_MEMORY=64KiB VAULT_KDF_PASSES=1`), and no controlling terminal (`setsid`), so
//! a command that would prompt fails at once instead of waiting on the developer's terminal.
//! Plus helpers to damage and re-seal repository files on disk.

use std::ffi::OsStr;
use std::fs;
use std::io::Cursor;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::*;

/// The password of every repository [`Enc::init`] makes.
pub const PASSWORD: &str = "correct horse battery staple";

/// Every variable that can give vault a password.
const PASSWORD_VARS: [&str; 4] = [
    "VAULT_PASSWORD",
    "VAULT_PASSWORD_FILE",
    "VAULT_PASSWORD_COMMAND",
    "VAULT_NEW_PASSWORD",
];

/// `env.cmd(args)` without any password source, with the cheap KDF, in a new session (no
/// controlling terminal, so `/dev/tty` cannot be opened and nothing is ever prompted for).
pub fn bare_cmd<I, S>(env: &Env, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = env.cmd(args);
    for var in PASSWORD_VARS {
        cmd.env_remove(var);
    }
    cmd.env("VAULT_KDF_MEMORY", "64KiB")
        .env("VAULT_KDF_PASSES", "1");
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd
}

/// An environment whose repository is (normally) encrypted with `password`.
pub struct Enc {
    pub env: Env,
    pub password: String,
}

impl std::ops::Deref for Enc {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

impl Enc {
    /// A fresh environment without a repository; commands use [`PASSWORD`].
    pub fn new() -> Enc {
        Enc {
            env: Env::new(),
            password: PASSWORD.into(),
        }
    }

    /// A fresh encrypted repository (`vault init --json EXTRA`, password [`PASSWORD`]); checks
    /// that init says it is encrypted. Returns it and the init JSON.
    #[track_caller]
    pub fn init_with(extra: &[&str]) -> (Enc, Value) {
        let enc = Enc::new();
        let mut args = vec!["init", "--json"];
        args.extend_from_slice(extra);
        let out = enc.run(&args);
        out.ok();
        let v = out.json();
        assert_eq!(v["encrypted"], true, "{v}");
        (enc, v)
    }

    #[track_caller]
    pub fn init() -> Enc {
        Self::init_with(&[]).0
    }

    /// A command with `VAULT_PASSWORD` set to this environment's password.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd_with(&self.password, args)
    }

    /// A command with `VAULT_PASSWORD` set to `password`.
    pub fn cmd_with<I, S>(&self, password: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = bare_cmd(&self.env, args);
        cmd.env("VAULT_PASSWORD", password);
        cmd
    }

    /// A command with no password source at all.
    pub fn cmd_bare<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        bare_cmd(&self.env, args)
    }

    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.cmd(args))
    }

    pub fn run_with<I, S>(&self, password: &str, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.cmd_with(password, args))
    }

    pub fn run_bare<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.cmd_bare(args))
    }

    /// `vault snapshot --json ARGS`, asserting exit 0 and a complete snapshot.
    #[track_caller]
    pub fn snapshot<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(["snapshot", "--json"]);
        cmd.args(args);
        let out = run_cmd(cmd);
        out.ok().no_panic();
        let v = out.json();
        check_snapshot_json(&v);
        assert_eq!(v["complete"], true, "{v}");
        v
    }

    /// `vault snapshot --json --stdin --stdin-name NAME ARGS` fed with `data`.
    #[track_caller]
    pub fn snapshot_stdin(&self, name: &str, data: &[u8], args: &[&str]) -> Value {
        let mut cmd = self.cmd(["snapshot", "--json", "--stdin", "--stdin-name", name]);
        cmd.args(args);
        let fed = Fed::spawn(cmd, Cursor::new(data.to_vec())).wait();
        fed.out.ok().no_panic();
        assert_eq!(fed.fed_bytes, data.len() as u64);
        let v = fed.out.json();
        check_snapshot_json(&v);
        v
    }

    /// `vault list --json`, asserting exit 0.
    #[track_caller]
    /// `vault key add` with `password` as the new key's password, asserting success; returns
    /// the new key's id.
    pub fn add_key(&self, password: &str) -> String {
        let mut cmd = self.cmd(["key", "add", "--json"]);
        cmd.env("VAULT_NEW_PASSWORD", password);
        let out = run_cmd(cmd);
        out.ok();
        out.json()["id"].as_str().unwrap().to_string()
    }

    pub fn list(&self) -> Vec<Value> {
        let out = self.run(["list", "--json"]);
        out.ok();
        match out.json().get_mut("snapshots").map(Value::take) {
            Some(Value::Array(items)) => items,
            other => panic!("list --json printed no snapshots array: {other:?}"),
        }
    }

    /// `vault key list --json` unlocked with `password`, asserting exit 0.
    #[track_caller]
    pub fn keys_with(&self, password: &str) -> Vec<Value> {
        let out = self.run_with(password, ["key", "list", "--json"]);
        out.ok();
        match out.json().get_mut("keys").map(Value::take) {
            Some(Value::Array(items)) => items,
            other => panic!("key list --json printed no keys array: {other:?}"),
        }
    }

    /// `vault restore SPEC --target TARGET ARGS`, not asserting.
    pub fn restore<I, S>(&self, spec: &str, target: &Path, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(["restore", spec, "--target"]);
        cmd.arg(target).args(args);
        run_cmd(cmd)
    }

    /// `vault dump SNAPSHOT PATH` (small files only: the output is held in memory).
    pub fn dump(&self, snapshot: &str, path: &str) -> Out {
        self.run(["dump", snapshot, path])
    }

    /// `vault verify --json ARGS`, asserting the exit code, no panic and that `clean` agrees.
    #[track_caller]
    pub fn verify(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["verify", "--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        out.no_panic().code(code);
        let v = out.json();
        assert_eq!(v["clean"], code == 0, "{v:#}");
        v
    }
}

/// What must not change when a command writes nothing: the repository and the cache, every
/// entry with its type, mode, size, mtime (nanoseconds) and content digest.
pub fn state(env: &Env) -> (Vec<String>, Vec<String>) {
    (fingerprint(&env.repo), fingerprint(&env.cache))
}

#[track_caller]
pub fn assert_state_unchanged(env: &Env, before: &(Vec<String>, Vec<String>), what: &str) {
    let after = state(env);
    for (name, b, a) in [
        ("repository", &before.0, &after.0),
        ("cache", &before.1, &after.1),
    ] {
        if b != a {
            let gone: Vec<&String> = b.iter().filter(|l| !a.contains(l)).collect();
            let new: Vec<&String> = a.iter().filter(|l| !b.contains(l)).collect();
            panic!("{what} changed the {name}:\n  before only: {gone:#?}\n  after only: {new:#?}");
        }
    }
}

/// Makes a repository file writable (objects are written read-only) and rewrites it.
pub fn rewrite(path: &Path, data: &[u8]) {
    chmod(path, 0o644);
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// XORs byte `offset` of a file with 0x10 (negative: from the end).
pub fn flip_byte(path: &Path, offset: i64) {
    let mut data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let at = if offset < 0 {
        data.len() as i64 + offset
    } else {
        offset
    };
    assert!(
        (0..data.len() as i64).contains(&at),
        "offset {offset} outside {} ({} bytes)",
        path.display(),
        data.len()
    );
    data[at as usize] ^= 0x10;
    rewrite(path, &data);
}

/// The payload of a sealed envelope (`magic[8] | version u32 | len u32 | payload | blake3[32]`).
pub fn sealed_payload(file: &[u8]) -> &[u8] {
    let len = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    assert_eq!(file.len(), 48 + len, "not a sealed envelope");
    &file[16..16 + len]
}

/// A sealed envelope with the header of `like` around `payload`, with a correct checksum: what
/// someone who can write the repository but has no key can make.
pub fn reseal(like: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = like[..12].to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Replaces an object named by the BLAKE3 of its content (snapshots, keys) by `data`, under
/// its new correct name; returns that name.
pub fn replace_named(old: &Path, data: &[u8]) -> String {
    let name = blake3::hash(data).to_hex().to_string();
    chmod(old, 0o644);
    fs::remove_file(old).unwrap();
    fs::write(old.with_file_name(&name), data).unwrap();
    name
}

/// The only file directly in `dir` (e.g. `keys/` of a repository with one key).
#[track_caller]
pub fn only_file(dir: &Path) -> PathBuf {
    let names = names(dir);
    assert_eq!(names.len(), 1, "{}: {names:?}", dir.display());
    dir.join(&names[0])
}

/// Every regular file under `root`, recursively.
pub fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Files under `root` whose bytes contain `needle`.
pub fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    all_files(root)
        .into_iter()
        .filter(|p| contains(&fs::read(p).unwrap(), needle))
        .collect()
}

/// The problems of a verify JSON, each as (kind, pack, blob, detail).
pub fn problem_list(v: &Value) -> Vec<(String, String, String, String)> {
    v["report"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems array: {v:#}"))
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
            (s("kind"), s("pack"), s("blob"), s("detail"))
        })
        .collect()
}

/// Copies the directory tree `from` to `to` (regular files, directories and symlinks).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dst);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path()).unwrap(), &dst).unwrap();
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

impl Enc {
    /// A new environment holding a copy of this one's repository and cache (same password).
    pub fn copy(&self) -> Enc {
        let env = Env::new();
        if self.repo.exists() {
            copy_tree(&self.repo, &env.repo);
        }
        if self.cache.exists() {
            copy_tree(&self.cache, &env.cache);
        }
        Enc {
            env,
            password: self.password.clone(),
        }
    }
}
