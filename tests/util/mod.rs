//! Shared machinery for the integration tests: running the real `vault` binary in an isolated
//! environment, building fixture trees, deterministic data generators, and a byte-for-byte and
//! metadata-for-metadata tree comparison that reports precise differences.

#![allow(dead_code)]

mod compare;
mod data;
pub mod encrypted;
pub mod history;
pub mod mount;
pub mod servers;

pub use compare::*;
pub use data::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::Value;

/// The binary under test.
pub const VAULT: &str = env!("CARGO_BIN_EXE_vault");

/// The uid/gid the unprivileged runs use (`nobody` on most systems).
pub const NOBODY: u32 = 65534;

// ------------------------------------------------------------------------------------------------
// Dependencies on other programs: fail under CI, skip elsewhere
// ------------------------------------------------------------------------------------------------

/// Whether the tests run under CI: `CI` set, and not empty, `false` or `0`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// What a test needs from the machine: `Some` when found; when missing, a panic under CI (see
/// [`under_ci`]) and a printed skip (`None`) elsewhere. `install` says how to get it, e.g.
/// `apt-get install sqlite3`.
#[track_caller]
pub fn required<T>(what: &str, install: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(t) => Some(t),
        Err(why) if under_ci() => panic!(
            "{what} is required under CI (CI={:?}) but {why}; .ci/run installs it ({install})",
            std::env::var("CI").unwrap_or_default()
        ),
        Err(why) => {
            eprintln!(
                "SKIPPED: {what} is not available ({why}); `{install}` to run this test \
                 (under CI=true it fails instead)"
            );
            None
        }
    }
}

pub fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `prog` in a directory of `PATH`.
pub fn find_in_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|c| is_executable(c))
}

// ------------------------------------------------------------------------------------------------
// Running vault
// ------------------------------------------------------------------------------------------------

/// One test's private world: a temp dir holding the repository, the index cache and a fake home,
/// so no test ever touches the user's default repository or another test's state.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub cache: PathBuf,
    pub home: PathBuf,
    /// Variables set on every command after the defaults above (so they may override
    /// `VAULT_REPO`): a remote repository's location and credentials, say.
    pub envs: Vec<(OsString, OsString)>,
}

/// Output of one finished vault process.
pub struct Out {
    pub cmdline: String,
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn describe(&self) -> String {
        let mut stdout = self.stdout_str();
        if stdout.len() > 4000 {
            stdout.truncate(4000);
            stdout.push_str("...[truncated]");
        }
        format!(
            "command: {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, stdout, self.stderr
        )
    }

    /// Asserts the exit code, printing the whole exchange if it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            expected,
            "unexpected exit code (wanted {expected})\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// Asserts a non-zero exit code.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert_ne!(self.code, 0, "expected failure\n{}", self.describe());
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr does not contain {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Asserts that the process did not panic.
    #[track_caller]
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked"),
            "{} panicked:\n{}",
            self.cmdline,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }
}

fn exit_code(status: std::process::ExitStatus, cmdline: &str) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(code) => code,
        None => panic!(
            "{cmdline}: killed by signal {:?} (core dumped: {})",
            status.signal(),
            status.core_dumped()
        ),
    }
}

pub fn cmdline_of(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether this process runs as root (then it must drop privileges to test permission errors).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Env {
    /// A fresh environment without a repository.
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("vault-it-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        Env {
            repo: dir.path().join("repo"),
            cache: dir.path().join("cache"),
            home,
            dir,
            envs: Vec::new(),
        }
    }

    /// This environment with `envs` added to [`Env::envs`].
    pub fn with_envs<K, V>(mut self, envs: impl IntoIterator<Item = (K, V)>) -> Env
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.envs
            .extend(envs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// A fresh environment with an initialized repository (default settings).
    pub fn init() -> Env {
        let env = Env::new();
        env.run(["init", "--encryption", "none"]).ok();
        env
    }

    /// Makes this environment usable by uid/gid 65534 (see [`Env::cmd_unprivileged`]): the temp
    /// dir traversable by all, the repository, cache and home directories (created if missing)
    /// owned by 65534. Without root, there is nothing to hand over.
    pub fn share_with_nobody(&self) {
        chmod(self.dir.path(), 0o755);
        if is_root() {
            for d in [&self.repo, &self.cache, &self.home] {
                fs::create_dir_all(d).unwrap();
                chown_tree(d, NOBODY, NOBODY);
            }
        }
    }

    /// `<tmp>/<rel>`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A `vault` command with this environment's repository, cache and home.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(VAULT);
        self.configure(&mut cmd);
        cmd.args(args);
        cmd
    }

    fn configure(&self, cmd: &mut Command) {
        cmd.env("VAULT_REPO", &self.repo)
            .env("VAULT_CACHE_DIR", &self.cache)
            .env("HOME", &self.home)
            .env("XDG_DATA_HOME", self.home.join("data"))
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
    }

    /// The same command, run as uid/gid 65534 through `setpriv` when we are root (root ignores
    /// permission bits, so unreadable files can only be tested without it).
    pub fn cmd_unprivileged<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        if !is_root() {
            return self.cmd(args);
        }
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg("--")
            .arg(VAULT);
        self.configure(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// Runs a vault command to completion.
    pub fn run<I, S>(&self, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.cmd(args))
    }

    /// `vault snapshot ARGS --json`, asserting exit 0; returns the snapshot object.
    #[track_caller]
    pub fn snapshot<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(["snapshot", "--json"]);
        cmd.args(args);
        let out = run_cmd(cmd);
        out.ok();
        let v = out.json();
        check_snapshot_json(&v);
        v
    }

    /// `vault list ARGS --json`, asserting exit 0.
    #[track_caller]
    pub fn list<I, S>(&self, args: I) -> Vec<Value>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(["list", "--json"]);
        cmd.args(args);
        let out = run_cmd(cmd);
        out.ok();
        match out.json().get_mut("snapshots").map(Value::take) {
            Some(Value::Array(items)) => items,
            other => panic!("list --json printed no snapshots array: {other:?}"),
        }
    }

    /// Ids of all snapshots in the repository.
    pub fn snapshot_ids(&self) -> BTreeSet<String> {
        self.list(Vec::<String>::new())
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// `vault restore SPEC --target TARGET ARGS`, returning the output (not asserting).
    pub fn restore<I, S>(&self, spec: &str, target: &Path, args: I) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(["restore", spec, "--target"]);
        cmd.arg(target).args(args);
        run_cmd(cmd)
    }

    /// Streams `vault dump SNAPSHOT PATH` through BLAKE3; returns (exit code, digest, length,
    /// stderr). Never holds the content in memory.
    pub fn dump_digest(
        &self,
        snapshot: &str,
        path: &str,
        extra: &[&str],
    ) -> (i32, blake3::Hash, u64, String) {
        let mut cmd = self.cmd(["dump", snapshot, path]);
        cmd.args(extra);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let cmdline = cmdline_of(&cmd);
        let mut child = cmd.spawn().expect("spawn vault dump");
        let stderr = drain_stderr(&mut child);
        let mut stdout = child.stdout.take().unwrap();
        let mut hasher = blake3::Hasher::new();
        let len = hash_stream(&mut stdout, &mut hasher).expect("read dump output");
        let status = child.wait().unwrap();
        let stderr = stderr.join().unwrap();
        (exit_code(status, &cmdline), hasher.finalize(), len, stderr)
    }

    /// Path of `source` (an absolute path) inside a full restore at `target`.
    pub fn restored(target: &Path, source: &Path) -> PathBuf {
        target.join(source.strip_prefix("/").expect("absolute source"))
    }
}

/// Runs `cmd`, collecting stdout and stderr.
pub fn run_cmd(mut cmd: Command) -> Out {
    let cmdline = cmdline_of(&cmd);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    Out {
        code: exit_code(output.status, &cmdline),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        cmdline,
    }
}

/// A spawned process whose stdin is fed from a reader on a thread.
pub struct Fed {
    pub cmdline: String,
    child: Child,
    feeder: std::thread::JoinHandle<(u64, blake3::Hash, Option<String>)>,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<String>,
    pub started: Instant,
}

/// What [`Fed::wait`] returns: the process output plus what was fed (bytes and digest). When
/// the process stopped reading early (it refused its arguments, say), `feed_error` says so and
/// the digest covers only what was written.
pub struct FedOut {
    pub out: Out,
    pub fed_bytes: u64,
    pub fed_digest: blake3::Hash,
    pub feed_error: Option<String>,
    pub elapsed: std::time::Duration,
}

impl Fed {
    /// Spawns `cmd` and writes everything `source` yields to its stdin, hashing it on the way.
    pub fn spawn(mut cmd: Command, mut source: impl Read + Send + 'static) -> Fed {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cmdline = cmdline_of(&cmd);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            let error = loop {
                let n = match source.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => n,
                    Err(e) => break Some(format!("reading the source: {e}")),
                };
                if let Err(e) = stdin.write_all(&buf[..n]) {
                    break Some(format!("writing to the process: {e}"));
                }
                hasher.update(&buf[..n]);
                total += n as u64;
            };
            drop(stdin);
            (total, hasher.finalize(), error)
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let stderr = drain_stderr(&mut child);
        Fed {
            cmdline,
            child,
            feeder,
            stdout,
            stderr,
            started,
        }
    }

    #[track_caller]
    pub fn wait(mut self) -> FedOut {
        let status = self.child.wait().unwrap();
        let elapsed = self.started.elapsed();
        let (fed_bytes, fed_digest, feed_error) = self.feeder.join().unwrap();
        let out = Out {
            code: exit_code(status, &self.cmdline),
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join().unwrap(),
            cmdline: self.cmdline,
        };
        FedOut {
            out,
            fed_bytes,
            fed_digest,
            feed_error,
            elapsed,
        }
    }
}

fn drain_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Reads `r` to its end into `hasher`; returns the byte count.
pub fn hash_stream(r: &mut impl Read, hasher: &mut blake3::Hasher) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// BLAKE3 and length of a file, streamed.
pub fn file_digest(path: &Path) -> (blake3::Hash, u64) {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = blake3::Hasher::new();
    let n = hash_stream(&mut f, &mut h).unwrap();
    (h.finalize(), n)
}

/// Checks that a snapshot JSON object has the documented shape.
#[track_caller]
pub fn check_snapshot_json(v: &Value) {
    let id = v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"));
    assert!(is_full_id(id), "id {id:?} is not 64 hex chars");
    assert!(v["complete"].is_boolean(), "complete missing in {v}");
    for key in [
        "files",
        "dirs",
        "files_unchanged",
        "bytes_total",
        "bytes_read",
        "bytes_added",
        "chunks_total",
        "chunks_new",
        "trees_new",
    ] {
        assert!(v["summary"][key].is_u64(), "summary.{key} missing in {v}");
    }
    assert!(
        v["summary"]["duration_secs"].is_number(),
        "duration_secs missing in {v}"
    );
    assert!(v["summary"]["errors"].is_array(), "errors missing in {v}");
    assert!(v["paths"].is_array() && v["tags"].is_array() && v["labels"].is_object());
    assert!(v["host"].is_string() && v["time"].is_string());
}

pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `summary.<key>` as u64.
#[track_caller]
pub fn summary(v: &Value, key: &str) -> u64 {
    v["summary"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.{key} missing in {v}"))
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

// ------------------------------------------------------------------------------------------------
// Fixture helpers
// ------------------------------------------------------------------------------------------------

pub fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in path")
}

/// Sets a path's mtime (and atime to the same) with nanoseconds, not following symlinks.
/// Gives every entry under `path` a distinct mtime (seconds and nanoseconds; children before
/// their directory, in sorted walk order).
pub fn set_all_mtimes(path: &Path, n: &mut i64) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        let mut children: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        children.sort();
        for c in children {
            set_all_mtimes(&c, n);
        }
    }
    *n += 1;
    set_mtime(
        path,
        1_600_000_000 + *n * 3607,
        (*n * 7_654_321 + 17) % 1_000_000_000,
    );
}

pub fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let times = [
        libc::timespec {
            tv_sec: sec as libc::time_t,
            tv_nsec: nsec as _,
        },
        libc::timespec {
            tv_sec: sec as libc::time_t,
            tv_nsec: nsec as _,
        },
    ];
    let c = cpath(path);
    // SAFETY: valid C path; `times` has two entries.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

pub fn mkfifo(path: &Path, mode: u32) {
    let c = cpath(path);
    // SAFETY: valid C path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `lchown` (root only).
pub fn lchown(path: &Path, uid: u32, gid: u32) {
    let c = cpath(path);
    // SAFETY: valid C path.
    let rc = unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    assert_eq!(
        rc,
        0,
        "lchown {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

/// Recursively chowns a tree (root only), not following symlinks.
pub fn chown_tree(root: &Path, uid: u32, gid: u32) {
    lchown(root, uid, gid);
    if fs::symlink_metadata(root).unwrap().is_dir() {
        for e in fs::read_dir(root).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A path from raw bytes (for non-UTF-8 names).
pub fn bytes_path(parent: &Path, name: &[u8]) -> PathBuf {
    parent.join(OsString::from_vec(name.to_vec()))
}

/// Allocated bytes of a file (`st_blocks * 512`).
pub fn allocated(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().blocks() * 512
}

/// Every pack file of the repository at `repo` (`packs/<xx>/<id>`), sorted; temporary `.tmp-*`
/// files (which a writer keeps in `packs/` itself while it fills a pack) are not listed.
pub fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let packs = repo.join("packs");
    let mut out = Vec::new();
    for fan in names(&packs) {
        let dir = packs.join(&fan);
        if fan.to_string_lossy().starts_with('.') || !dir.is_dir() {
            continue;
        }
        for name in names(&dir) {
            if !name.to_string_lossy().starts_with('.') {
                out.push(dir.join(name));
            }
        }
    }
    out
}

/// Names directly in `dir` (sorted).
pub fn names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read_dir {}: {e}", dir.display()),
    };
    v.sort();
    v
}
