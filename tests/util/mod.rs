//! Shared machinery for the integration tests: running the real `vault` binary in an isolated
//! environment, building fixture trees, deterministic data generators, and a byte-for-byte and
//! metadata-for-metadata tree comparison that reports precise differences.

#![allow(dead_code)]

pub mod encrypted;
pub mod history;
pub mod servers;

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
        match out.json() {
            Value::Array(items) => items,
            other => panic!("list --json printed {other}"),
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
// Deterministic data
// ------------------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, seeded, good enough for test data.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the slight modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in chunks.by_ref() {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// `len` incompressible pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

const WORDS: [&str; 64] = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "red",
    "green",
    "blue",
    "yellow",
    "black",
    "white",
    "north",
    "south",
    "east",
    "west",
    "spring",
    "summer",
    "autumn",
    "winter",
    "apple",
    "pear",
    "plum",
    "cherry",
    "lemon",
    "mango",
    "olive",
    "grape",
    "river",
    "lake",
    "ocean",
    "forest",
    "desert",
    "valley",
    "mountain",
    "island",
    "shipped",
    "pending",
    "cancelled",
    "refunded",
    "paid",
    "open",
    "closed",
    "archived",
];

/// `len` bytes of word salad (compresses well, but not trivially).
pub fn compressible_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut v = Vec::with_capacity(len + 16);
    while v.len() < len {
        let r = rng.next_u64();
        v.extend_from_slice(WORDS[(r & 63) as usize].as_bytes());
        v.push(if r >> 60 == 0 { b'\n' } else { b' ' });
    }
    v.truncate(len);
    v
}

/// Writes `len` bytes of data made by `gen(seed_of_block, block_len)` in 1 MiB blocks, so big
/// files never sit in memory whole.
pub fn write_generated(path: &Path, seed: u64, len: u64, gen: fn(u64, usize) -> Vec<u8>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let mut f = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut left = len;
    let mut block = 0u64;
    while left > 0 {
        let n = left.min(1 << 20) as usize;
        f.write_all(&gen(seed.wrapping_mul(1_000_003).wrapping_add(block), n))
            .unwrap();
        left -= n as u64;
        block += 1;
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn push_2digits(out: &mut Vec<u8>, n: u64) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// A deterministic pseudo-SQL dump (`INSERT INTO ... VALUES (...);` lines, with a header and a
/// `CREATE TABLE` every 50,000 rows), generated on the fly as a [`Read`]. Line `i` depends only
/// on `(seed, i)`, so a variant with some lines edited in place and lines appended is easy to
/// describe: see [`SqlDump::edited`] and [`SqlDump::lines`].
pub struct SqlDump {
    seed: u64,
    next_line: u64,
    end_line: u64,
    /// Lines in these ranges are generated from a different seed (an edit in place).
    edits: Vec<(std::ops::Range<u64>, u64)>,
    byte_limit: u64,
    produced: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl SqlDump {
    /// An endless dump; bound it with [`Self::bytes`] or [`Self::lines`].
    pub fn new(seed: u64) -> SqlDump {
        SqlDump {
            seed,
            next_line: 0,
            end_line: u64::MAX,
            edits: Vec::new(),
            byte_limit: u64::MAX,
            produced: 0,
            buf: Vec::with_capacity(1 << 17),
            pos: 0,
        }
    }

    /// Stops after exactly `n` bytes (possibly mid-line).
    pub fn bytes(mut self, n: u64) -> SqlDump {
        self.byte_limit = n;
        self
    }

    /// Stops after `n` lines.
    pub fn lines(mut self, n: u64) -> SqlDump {
        self.end_line = n;
        self
    }

    /// Lines in `range` are regenerated from `seed` (different content, same position).
    pub fn edited(mut self, range: std::ops::Range<u64>, seed: u64) -> SqlDump {
        self.edits.push((range, seed));
        self
    }

    /// Appends line `i` to `out`.
    pub fn line(&self, i: u64, out: &mut Vec<u8>) {
        let seed = self
            .edits
            .iter()
            .find(|(r, _)| r.contains(&i))
            .map_or(self.seed, |(_, s)| *s);
        let mut rng = Rng::new(seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407));
        if i == 0 {
            out.extend_from_slice(
                b"-- vault test dump\nSET NAMES utf8mb4;\nSET foreign_key_checks = 0;\n",
            );
        }
        if i.is_multiple_of(50_000) {
            out.extend_from_slice(b"\nCREATE TABLE `orders_");
            push_decimal(out, i / 50_000);
            out.extend_from_slice(
                b"` (\n  `id` bigint NOT NULL,\n  `customer` int NOT NULL,\n  `note` text,\n  `email` varchar(255),\n  `created` datetime,\n  `amount` decimal(12,2),\n  `status` varchar(16),\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n",
            );
        }
        let r = rng.next_u64();
        out.extend_from_slice(b"INSERT INTO `orders_");
        push_decimal(out, i / 50_000);
        out.extend_from_slice(b"` VALUES (");
        push_decimal(out, i + 1);
        out.push(b',');
        push_decimal(out, r % 100_000);
        out.extend_from_slice(b",'");
        let words = 2 + (r >> 20) % 6;
        for w in 0..words {
            if w > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[(rng.next_u64() & 63) as usize].as_bytes());
        }
        out.extend_from_slice(b"','");
        let r2 = rng.next_u64();
        out.extend_from_slice(WORDS[(r2 & 63) as usize].as_bytes());
        out.push(b'.');
        push_decimal(out, (r2 >> 8) % 10_000);
        out.push(b'@');
        out.extend_from_slice(WORDS[((r2 >> 24) & 63) as usize].as_bytes());
        out.extend_from_slice(b".example','20");
        push_2digits(out, 10 + (r2 >> 32) % 16);
        out.push(b'-');
        push_2digits(out, 1 + (r2 >> 36) % 12);
        out.push(b'-');
        push_2digits(out, 1 + (r2 >> 40) % 28);
        out.push(b' ');
        push_2digits(out, (r2 >> 45) % 24);
        out.push(b':');
        push_2digits(out, (r2 >> 50) % 60);
        out.push(b':');
        push_2digits(out, (r2 >> 56) % 60);
        out.extend_from_slice(b"',");
        let r3 = rng.next_u64();
        push_decimal(out, r3 % 100_000);
        out.push(b'.');
        push_2digits(out, (r3 >> 20) % 100);
        out.extend_from_slice(b",'");
        out.extend_from_slice(WORDS[56 + ((r3 >> 30) % 8) as usize].as_bytes());
        out.extend_from_slice(b"');\n");
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        while self.buf.len() < (1 << 16) && self.next_line < self.end_line {
            let mut out = std::mem::take(&mut self.buf);
            self.line(self.next_line, &mut out);
            self.buf = out;
            self.next_line += 1;
        }
    }
}

impl Read for SqlDump {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.produced >= self.byte_limit {
            return Ok(0);
        }
        if self.pos == self.buf.len() {
            self.refill();
            if self.buf.is_empty() {
                return Ok(0);
            }
        }
        let n = (self.buf.len() - self.pos)
            .min(out.len())
            .min((self.byte_limit - self.produced).min(usize::MAX as u64) as usize);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}

// ------------------------------------------------------------------------------------------------
// Fixture helpers
// ------------------------------------------------------------------------------------------------

pub fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in path")
}

/// Sets a path's mtime (and atime to the same) with nanoseconds, not following symlinks.
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

// ------------------------------------------------------------------------------------------------
// Tree comparison
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDev,
    BlockDev,
    Socket,
}

/// What the comparison looks at for one entry.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub nlink: u64,
    pub dev_ino: (u64, u64),
    pub rdev: u64,
    pub link_target: Option<Vec<u8>>,
}

/// Every entry under `root` (the root itself at the empty path), keyed by path bytes relative
/// to `root`. Does not follow symlinks.
pub fn scan(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((path, rel)) = stack.pop() {
        let m =
            fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_char_device() {
            Kind::CharDev
        } else if ft.is_block_device() {
            Kind::BlockDev
        } else {
            Kind::Socket
        };
        let link_target = (kind == Kind::Symlink)
            .then(|| fs::read_link(&path).unwrap().into_os_string().into_vec());
        if kind == Kind::Dir {
            for e in fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
                let e = e.unwrap();
                let mut child_rel = rel.clone();
                if !child_rel.is_empty() {
                    child_rel.push(b'/');
                }
                child_rel.extend_from_slice(e.file_name().as_bytes());
                stack.push((e.path(), child_rel));
            }
        }
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: (m.mtime(), m.mtime_nsec()),
                size: m.len(),
                nlink: m.nlink(),
                dev_ino: (m.dev(), m.ino()),
                rdev: m.rdev(),
                link_target,
            },
        );
    }
    out
}

pub fn show(rel: &[u8]) -> String {
    if rel.is_empty() {
        "<root>".into()
    } else {
        format!("{:?}", OsStr::from_bytes(rel))
    }
}

/// First offset at which two files differ, or `None` when they are equal (streamed).
pub fn first_difference(a: &Path, b: &Path) -> io::Result<Option<u64>> {
    let mut fa = io::BufReader::with_capacity(1 << 20, File::open(a)?);
    let mut fb = io::BufReader::with_capacity(1 << 20, File::open(b)?);
    let mut offset = 0u64;
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        let n = na.min(nb);
        if let Some(i) = (0..n).find(|&i| ba[i] != bb[i]) {
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + n as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What [`compare_trees`] checks.
#[derive(Clone, Copy)]
pub struct Compare {
    /// Compare the metadata of the two roots themselves (not just their contents).
    pub root_meta: bool,
    /// Compare uid/gid (only meaningful when the restore ran as root).
    pub owners: bool,
    /// Compare hard-link groups.
    pub hardlinks: bool,
}

impl Default for Compare {
    fn default() -> Self {
        Compare {
            root_meta: true,
            owners: is_root(),
            hardlinks: true,
        }
    }
}

/// Compares two trees byte-for-byte and metadata-for-metadata: entry set, type, mode (incl.
/// setuid/setgid/sticky), uid, gid, mtime sec+nsec (files, dirs, symlinks, FIFOs), size,
/// content, symlink target, and hard-link grouping. Returns one line per difference.
pub fn compare_trees(src: &Path, dst: &Path, how: Compare) -> Vec<String> {
    let a = scan(src);
    let b = scan(dst);
    let mut diffs = Vec::new();
    for (rel, na) in &a {
        let Some(nb) = b.get(rel) else {
            diffs.push(format!("{}: missing in restore ({:?})", show(rel), na.kind));
            continue;
        };
        let p = show(rel);
        if na.kind != nb.kind {
            diffs.push(format!("{p}: type {:?} restored as {:?}", na.kind, nb.kind));
            continue;
        }
        let meta = !rel.is_empty() || how.root_meta;
        if meta {
            if na.kind != Kind::Symlink && na.mode != nb.mode {
                diffs.push(format!("{p}: mode {:o} restored as {:o}", na.mode, nb.mode));
            }
            if how.owners && (na.uid, na.gid) != (nb.uid, nb.gid) {
                diffs.push(format!(
                    "{p}: owner {}:{} restored as {}:{}",
                    na.uid, na.gid, nb.uid, nb.gid
                ));
            }
            if na.mtime != nb.mtime {
                diffs.push(format!(
                    "{p}: mtime {}.{:09} restored as {}.{:09}",
                    na.mtime.0, na.mtime.1, nb.mtime.0, nb.mtime.1
                ));
            }
        }
        match na.kind {
            Kind::File => {
                if na.size != nb.size {
                    diffs.push(format!("{p}: size {} restored as {}", na.size, nb.size));
                } else {
                    let (pa, pb) = if rel.is_empty() {
                        (src.to_path_buf(), dst.to_path_buf())
                    } else {
                        (bytes_path(src, rel), bytes_path(dst, rel))
                    };
                    match first_difference(&pa, &pb) {
                        Ok(None) => {}
                        Ok(Some(off)) => {
                            diffs.push(format!("{p}: content differs from byte {off}"))
                        }
                        Err(e) => diffs.push(format!("{p}: cannot compare content: {e}")),
                    }
                }
            }
            Kind::Symlink if na.link_target != nb.link_target => diffs.push(format!(
                "{p}: symlink target {:?} restored as {:?}",
                OsStr::from_bytes(na.link_target.as_deref().unwrap()),
                OsStr::from_bytes(nb.link_target.as_deref().unwrap_or(b""))
            )),
            Kind::CharDev | Kind::BlockDev if na.rdev != nb.rdev => {
                diffs.push(format!("{p}: rdev {} restored as {}", na.rdev, nb.rdev))
            }
            _ => {}
        }
    }
    for (rel, nb) in &b {
        if !a.contains_key(rel) {
            diffs.push(format!(
                "{}: unexpected in restore ({:?})",
                show(rel),
                nb.kind
            ));
        }
    }
    if how.hardlinks {
        let ga = link_groups(&a);
        let gb = link_groups(&b);
        for g in ga.difference(&gb) {
            diffs.push(format!(
                "hard-link group {} not restored as one inode",
                show_group(g)
            ));
        }
        for g in gb.difference(&ga) {
            diffs.push(format!(
                "restore has hard-link group {} not in the source",
                show_group(g)
            ));
        }
    }
    diffs
}

fn show_group(g: &BTreeSet<Vec<u8>>) -> String {
    format!(
        "[{}]",
        g.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ")
    )
}

/// Sets of paths that share an inode (regular files with more than one name in the tree).
pub fn link_groups(tree: &BTreeMap<Vec<u8>, Node>) -> BTreeSet<BTreeSet<Vec<u8>>> {
    let mut by_inode: HashMap<(u64, u64), BTreeSet<Vec<u8>>> = HashMap::new();
    for (rel, n) in tree {
        if n.kind == Kind::File && n.nlink > 1 {
            by_inode.entry(n.dev_ino).or_default().insert(rel.clone());
        }
    }
    by_inode.into_values().filter(|g| g.len() > 1).collect()
}

/// Panics with every difference between the trees.
#[track_caller]
pub fn assert_same_tree(src: &Path, dst: &Path, how: Compare) {
    let diffs = compare_trees(src, dst, how);
    if !diffs.is_empty() {
        let n = diffs.len();
        let shown: Vec<&String> = diffs.iter().take(60).collect();
        panic!(
            "{} differs from {} in {n} way(s):\n  {}{}",
            dst.display(),
            src.display(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            if n > 60 { "\n  ..." } else { "" }
        );
    }
}

/// A digest of everything under `root` (paths, types, modes, sizes, mtimes, contents, link
/// targets): to prove that a directory was not touched.
pub fn fingerprint(root: &Path) -> Vec<String> {
    if fs::symlink_metadata(root).is_err() {
        return vec!["<absent>".into()];
    }
    scan(root)
        .into_iter()
        .map(|(rel, n)| {
            let content = if n.kind == Kind::File {
                let p = if rel.is_empty() {
                    root.to_path_buf()
                } else {
                    bytes_path(root, &rel)
                };
                file_digest(&p).0.to_hex().to_string()
            } else {
                String::new()
            };
            format!(
                "{} {:?} {:o} {} {:?} {:?} {}",
                show(&rel),
                n.kind,
                n.mode,
                n.size,
                n.mtime,
                n.link_target.as_deref().map(OsStr::from_bytes),
                content
            )
        })
        .collect()
}
