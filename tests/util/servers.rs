//! Throw-away remote storage servers for the remote-backend tests: an S3 server (`s3s-fs`, an
//! S3 API over a local directory), an SFTP server (a second `sshd` on a loopback port, with
//! its own host key, user key and `known_hosts`) and, opt-in, a single-node Garage (a real
//! distributed object store). Each runs as a child process on free 127.0.0.1 ports with its
//! data in a temp dir, can be killed (SIGKILL, every connection with it) and restarted on the
//! same ports and data, and is killed when dropped.
//!
//! `s3s-fs` and `sshd` come from outside the workspace: `s3s-fs` from `cargo install s3s-fs
//! --features binary` (found through `VAULT_S3S_FS`, then `PATH`), `sshd` from Debian's
//! `openssh-server`; `.ci/run` installs both. A missing one fails the test under CI and skips
//! it elsewhere ([`required`]). Garage runs only when `VAULT_GARAGE` names its binary
//! (`cargo install garage@2.5.0 --locked`); without it its tests skip, under CI too.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// How long a server may take to accept connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1 (bound and released: another process may take it before the
/// server does, which then fails to start and is retried on another port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    if s.len() > 8000 {
        s = format!("...{}", &s[s.len() - 8000..]);
    }
    s
}

/// The pids of `pid`'s descendants (children first found, then theirs), from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces and parentheses.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = rest
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u32>().ok())
            {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// SIGKILLs `child` and everything it started (an sshd's per-connection processes live in their
/// own sessions, so a process group would not reach them), then reaps it.
fn kill_tree(child: &mut Child) {
    let pid = child.id();
    // SIGSTOP first, so that nobody forks a new process between the scan and the kill.
    // SAFETY: kill(2) on pids we just read; at worst a pid that exited meanwhile is reused by
    // an unrelated process in that instant, which the STOP-then-scan order makes unlikely.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let mut all = descendants(pid);
    for &p in &all {
        unsafe { libc::kill(p as i32, libc::SIGSTOP) };
    }
    for p in descendants(pid) {
        if !all.contains(&p) {
            all.push(p);
        }
    }
    let _ = child.kill();
    for p in all {
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }
    let _ = child.wait();
}

/// What the remote tests need from a server, whichever protocol it speaks.
pub trait Server {
    /// "s3", "sftp" or "garage", for messages and paths.
    fn kind(&self) -> &'static str;
    /// The repository location (for `--repo`/`VAULT_REPO`) of `path` on this server, a relative
    /// path such as `repo` or `a/b`.
    fn location(&self, path: &str) -> String;
    /// The directory or file on the local disk that is `path` (as in [`Server::location`]) on
    /// the server, for servers that keep each object as a file (s3s-fs, sshd); `None` for those
    /// that keep them in a format of their own (Garage: a metadata database and chunked,
    /// compressed data blocks), which are only reached through their protocol.
    fn disk_path(&self, path: &str) -> Option<PathBuf>;
    /// Every object (file) below `path` on the server, as (name relative to `path` with `/`
    /// between components, size), sorted by name; empty when there is none. Through the disk
    /// when [`Server::disk_path`] is `Some`, else through the server's protocol.
    fn list_objects(&self, path: &str) -> Vec<(String, u64)> {
        let dir = self
            .disk_path(path)
            .unwrap_or_else(|| panic!("{} server: list_objects needs an override", self.kind()));
        files_below(&dir)
    }
    /// The bytes of the object `path` on the server; `None` when there is no such object.
    /// Through the disk when [`Server::disk_path`] is `Some`, else through the server's protocol.
    fn read_object(&self, path: &str) -> Option<Vec<u8>> {
        let file = self
            .disk_path(path)
            .unwrap_or_else(|| panic!("{} server: read_object needs an override", self.kind()));
        match fs::read(&file) {
            Ok(data) => Some(data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("{}: {e}", file.display()),
        }
    }
    /// The variables vault needs to reach the server (credentials, ssh settings); no
    /// `VAULT_REPO`.
    fn envs(&self) -> Vec<(String, String)>;
    /// Kills the server and every connection it holds (SIGKILL: nothing is flushed or closed).
    fn kill(&mut self);
    /// Starts it again on the same port with the same data; returns once it accepts requests.
    fn restart(&mut self);
    /// Whether a request to it succeeds right now (through a client of its own protocol
    /// when one is installed, else a TCP connect).
    fn is_up(&self) -> bool;
    /// Writes `data` as the object or file `path` (as in [`Server::location`]) through the
    /// server's protocol, with a client other than vault; `Ok(false)` when no such client is
    /// installed.
    fn client_put(&self, path: &str, data: &[u8]) -> Result<bool, String>;
    /// A client process that holds one connection to the server open (and logged in) until
    /// the server goes away, then exits.
    fn hold_connection(&self) -> Child;
}

/// The regular files below `dir` (recursively), as (path relative to `dir` with `/` between
/// components, size), sorted; empty when `dir` does not exist.
fn files_below(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push((e.path(), format!("{name}/")));
            } else if ft.is_file() {
                if let Ok(m) = e.metadata() {
                    out.push((name, m.len()));
                }
            }
        }
    }
    out.sort();
    out
}

/// A TCP connection (bash's `/dev/tcp`) to `port`, read until the server closes it.
fn hold_tcp(port: u16, what: &str) -> Child {
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}; cat <&3"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bash");
    connected(child, Duration::from_millis(500), what)
}

/// Waits `settle` for `child` to connect; panics if it has already exited.
fn connected(mut child: Child, settle: Duration, what: &str) -> Child {
    std::thread::sleep(settle);
    if let Some(status) = child.try_wait().unwrap() {
        panic!("{what} exited ({status}) before the server went away");
    }
    child
}

// ------------------------------------------------------------------------------------------------
// S3 requests through curl (a client other than vault)
// ------------------------------------------------------------------------------------------------

/// An S3 endpoint and a key to sign requests to it with (`curl --aws-sigv4`, path-style).
pub struct S3Curl {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

/// `s` with every byte but the unreserved ones percent-encoded (as SigV4 wants a query value).
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The texts of every `<name>…</name>` in `xml`, in order, with the five XML entities undone.
fn xml_all(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

impl S3Curl {
    /// `curl --aws-sigv4 ... ARGS ENDPOINT/URL-PATH` (a signed request, failing on an HTTP
    /// error), when curl is installed. A query in `url_path` must be canonical already (keys
    /// sorted, values [`uri_encode`]d): curl signs it as written.
    pub fn run(
        &self,
        args: &[&str],
        url_path: &str,
        max_secs: u32,
    ) -> Option<std::process::Output> {
        let curl = find_in_path("curl")?;
        let out = Command::new(curl)
            .args(args)
            .arg("-sS")
            .arg("--max-time")
            .arg(max_secs.to_string())
            .arg("--fail-with-body")
            .arg("-H")
            .arg("x-amz-content-sha256: UNSIGNED-PAYLOAD")
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            .arg(format!("{}{url_path}", self.endpoint))
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        Some(out)
    }

    /// PUTs the file `body` as `/BUCKET/KEY` (`url_path`); `Ok(false)` without curl.
    pub fn put(&self, body: &Path, url_path: &str) -> Result<bool, String> {
        let Some(out) = self.run(&["-T", body.to_str().unwrap()], url_path, 60) else {
            return Ok(false);
        };
        if !out.status.success() {
            return Err(format!(
                "curl PUT {url_path}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(true)
    }

    /// GETs `/BUCKET/KEY` into the file `into`: `Some(true)` with it written, `Some(false)`
    /// when there is no such object (404), `None` without curl; panics on any other answer.
    pub fn get(&self, url_path: &str, into: &Path) -> Option<bool> {
        let out = self.run(
            &["-o", into.to_str().unwrap(), "-w", "%{http_code}"],
            url_path,
            120,
        )?;
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match code.as_str() {
            "200" if out.status.success() => Some(true),
            "404" => Some(false),
            _ => panic!(
                "curl GET {url_path}: {} (HTTP {code}): {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&fs::read(into).unwrap_or_default())
            ),
        }
    }

    /// Every object of `bucket` whose key starts with `prefix`, as (key without the prefix,
    /// size), sorted (ListObjectsV2, every page); `None` without curl.
    pub fn list(&self, bucket: &str, prefix: &str) -> Option<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // Canonical order: continuation-token < list-type < max-keys < prefix.
            let mut query = String::new();
            if let Some(t) = &token {
                query.push_str(&format!("continuation-token={}&", uri_encode(t)));
            }
            query.push_str(&format!(
                "list-type=2&max-keys=1000&prefix={}",
                uri_encode(prefix)
            ));
            let url_path = format!("/{bucket}?{query}");
            let res = self.run(&[], &url_path, 30)?;
            let body = String::from_utf8_lossy(&res.stdout).into_owned();
            assert!(
                res.status.success() && body.contains("ListBucketResult"),
                "curl GET {url_path}: {}\n{body}{}",
                res.status,
                String::from_utf8_lossy(&res.stderr)
            );
            for contents in xml_all(&body, "Contents") {
                let key = xml_all(&contents, "Key").pop().expect("a Key in Contents");
                let size = xml_all(&contents, "Size")
                    .pop()
                    .and_then(|s| s.parse::<u64>().ok())
                    .expect("a Size in Contents");
                let name = key.strip_prefix(prefix).unwrap_or(&key).to_string();
                out.push((name, size));
            }
            token = xml_all(&body, "NextContinuationToken").pop();
            let truncated = xml_all(&body, "IsTruncated").pop().as_deref() == Some("true");
            if !truncated || token.is_none() {
                break;
            }
        }
        out.sort();
        Some(out)
    }

    /// Whether ListBuckets succeeds; `None` without curl.
    pub fn lists_buckets(&self) -> Option<bool> {
        let out = self.run(&[], "/", 5)?;
        Some(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("ListAllMyBucketsResult"),
        )
    }
}

// ------------------------------------------------------------------------------------------------
// S3: s3s-fs
// ------------------------------------------------------------------------------------------------

/// Where `cargo install` put s3s-fs on the development machine this was written on.
const S3S_FS_FALLBACK: &str = "/work/bench/tools/s3s/bin/s3s-fs";

pub const S3_ACCESS_KEY: &str = "vault-test-access-key";
pub const S3_SECRET_KEY: &str = "vault-test-secret-key-0123456789";
pub const S3_REGION: &str = "us-east-1";

fn find_s3s_fs() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("VAULT_S3S_FS") {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!("VAULT_S3S_FS={} is not an executable", p.display()))
        };
    }
    if let Some(p) = find_in_path("s3s-fs") {
        return Ok(p);
    }
    let fallback = Path::new(S3S_FS_FALLBACK);
    if is_executable(fallback) {
        return Ok(fallback.to_path_buf());
    }
    Err("s3s-fs is neither in VAULT_S3S_FS nor on PATH".into())
}

/// An S3 server (`s3s-fs`) on 127.0.0.1 serving the directory [`S3Server::root`], in which
/// each bucket is a directory and each object a file (`<root>/<bucket>/<key>`).
pub struct S3Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    /// The bucket [`Server::location`] uses; created at start.
    pub bucket: String,
}

impl S3Server {
    /// Starts a server with one empty bucket, `vault-test`. `None` when s3s-fs is missing
    /// outside CI.
    pub fn start() -> Option<S3Server> {
        let bin = required(
            "s3s-fs (an S3 server over a directory, from VAULT_S3S_FS or PATH)",
            "cargo install s3s-fs@0.14.1 --features binary --locked",
            find_s3s_fs(),
        )?;
        let dir = tempfile::Builder::new()
            .prefix("vault-s3-")
            .tempdir()
            .expect("temp dir");
        let mut server = S3Server {
            bin,
            port: 0,
            child: None,
            bucket: "vault-test".into(),
            dir,
        };
        fs::create_dir_all(server.root()).unwrap();
        server.create_bucket("vault-test");
        // Another process may take the port between free_port and the bind: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("s3s-fs did not start: {last}");
    }

    /// The directory the server serves (one subdirectory per bucket).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates another (empty) bucket.
    pub fn create_bucket(&self, name: &str) {
        fs::create_dir_all(self.root().join(name)).unwrap();
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("s3s-fs.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--access-key")
            .arg(S3_ACCESS_KEY)
            .arg("--secret-key")
            .arg(S3_SECRET_KEY)
            .arg(self.root())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let cmdline = cmdline_of(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {cmdline}: {e}"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "{cmdline} exited ({status}):\n{}",
                    read_log(&self.log())
                ));
            }
            if accepts_connections(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                kill_tree(&mut child);
                return Err(format!(
                    "{cmdline} did not accept connections within {START_TIMEOUT:?}:\n{}",
                    read_log(&self.log())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A curl client for the server, with the test key.
    pub fn s3curl(&self) -> S3Curl {
        S3Curl {
            endpoint: self.endpoint(),
            region: S3_REGION.into(),
            access_key: S3_ACCESS_KEY.into(),
            secret_key: S3_SECRET_KEY.into(),
        }
    }

    /// `curl --aws-sigv4 ... ARGS ENDPOINT/URL-PATH` (a signed request), when curl is
    /// installed.
    pub fn curl(&self, args: &[&str], url_path: &str) -> Option<std::process::Output> {
        self.s3curl().run(args, url_path, 5)
    }
}

impl Server for S3Server {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn location(&self, path: &str) -> String {
        format!("s3:{}/{}/{path}", self.endpoint(), self.bucket)
    }

    fn disk_path(&self, path: &str) -> Option<PathBuf> {
        Some(self.root().join(&self.bucket).join(path))
    }

    fn envs(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), S3_ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), S3_SECRET_KEY.into()),
            ("AWS_REGION".into(), S3_REGION.into()),
        ]
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }

    fn restart(&mut self) {
        self.kill();
        // The port was ours a moment ago; a client's connection in TIME_WAIT does not stop
        // the bind (SO_REUSEADDR), but retry for a while all the same.
        let started = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    panic!("s3s-fs did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn client_put(&self, path: &str, data: &[u8]) -> Result<bool, String> {
        let file = self.dir.path().join("put-body");
        write(&file, data);
        self.s3curl()
            .put(&file, &format!("/{}/{path}", self.bucket))
    }

    fn hold_connection(&self) -> Child {
        hold_tcp(self.port, "a TCP client of s3s-fs")
    }

    fn is_up(&self) -> bool {
        self.s3curl()
            .lists_buckets()
            .unwrap_or_else(|| accepts_connections(self.port))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------------------------------------------
// SFTP: a private sshd
// ------------------------------------------------------------------------------------------------

const SSHD: &str = "/usr/sbin/sshd";
const SSH: &str = "/usr/bin/ssh";
const SFTP: &str = "/usr/bin/sftp";
const SSH_KEYGEN: &str = "ssh-keygen";

/// The name of the user this process runs as (the passwd entry of the effective uid).
pub fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage, read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        assert!(!pw.is_null(), "no passwd entry for uid {}", libc::geteuid());
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

fn find_openssh() -> Result<PathBuf, String> {
    for p in [SSHD, SSH] {
        if !is_executable(Path::new(p)) {
            return Err(format!("{p} is missing"));
        }
    }
    find_in_path(SSH_KEYGEN).ok_or_else(|| "ssh-keygen is not on PATH".to_string())
}

/// A second sshd on a free 127.0.0.1 port, for the current user only, by key only, serving
/// sftp and nothing else (`internal-sftp`, forced: no session ever starts the user's login
/// shell, whose start-up files may be slow, or leave locks behind when the server is killed). Clients reach it through [`SftpServer::envs`]: a `PATH` whose first
/// directory holds an `ssh` wrapper that runs `/usr/bin/ssh -F <config>`, the config naming the
/// test's `known_hosts` (holding the server's host key: strict checking passes), the user key,
/// `IdentitiesOnly yes` and `BatchMode yes` (never a prompt), but no `StrictHostKeyChecking`:
/// that is vault's to set (`VAULT_SFTP_KNOWN_HOSTS`); plus `VAULT_SFTP_KEY`. (OpenSSH reads `~/.ssh` from the passwd
/// entry, not `$HOME`, so the wrapper is the only way to give it a private config.)
pub struct SftpServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    user: String,
}

impl SftpServer {
    /// `None` when OpenSSH is missing outside CI.
    pub fn start() -> Option<SftpServer> {
        required(
            "OpenSSH (sshd, ssh, ssh-keygen)",
            "apt-get install openssh-server openssh-client",
            find_openssh(),
        )?;
        let dir = tempfile::Builder::new()
            .prefix("vault-sftp-")
            .tempdir()
            .expect("temp dir");
        // The user's sshd (running as this user, or as root) must read its files.
        chmod(dir.path(), 0o755);
        let mut server = SftpServer {
            dir,
            port: 0,
            child: None,
            user: current_user(),
        };
        fs::create_dir_all(server.root()).unwrap();
        fs::create_dir_all(server.bin_dir()).unwrap();
        server.keygen("host_key");
        server.keygen("user_key");
        fs::copy(server.path("user_key.pub"), server.path("authorized_keys")).unwrap();
        chmod(&server.path("authorized_keys"), 0o600);
        write(
            &server.bin_dir().join("ssh"),
            format!(
                "#!/bin/sh\nexec {SSH} -F '{}' \"$@\"\n",
                server.path("ssh_config").display()
            )
            .as_bytes(),
        );
        chmod(&server.bin_dir().join("ssh"), 0o755);
        // sshd insists on its privilege separation directory, which only the package's init
        // script or systemd creates (missing in containers).
        if is_root() && !Path::new("/run/sshd").exists() {
            let _ = fs::create_dir_all("/run/sshd");
            let _ = fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755));
        }
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            server.write_configs();
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("sshd did not start: {last}");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory under which [`Server::location`]s live.
    pub fn root(&self) -> PathBuf {
        self.path("data")
    }

    /// The directory holding the `ssh` wrapper (first in the `PATH` of [`Server::envs`]).
    pub fn bin_dir(&self) -> PathBuf {
        self.path("bin")
    }

    /// The user's private key (also in `VAULT_SFTP_KEY`).
    pub fn user_key(&self) -> PathBuf {
        self.path("user_key")
    }

    /// The `known_hosts` file holding the server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.path("known_hosts")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// `PATH` with the wrapper directory first.
    pub fn path_env(&self) -> OsString {
        let mut dirs = vec![self.bin_dir()];
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(dirs).expect("PATH")
    }

    fn keygen(&self, name: &str) {
        let out = Command::new(SSH_KEYGEN)
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("vault-test-{name}"))
            .arg("-f")
            .arg(self.path(name))
            .stdin(Stdio::null())
            .output()
            .expect("run ssh-keygen");
        assert!(
            out.status.success(),
            "ssh-keygen -f {name}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn write_configs(&self) {
        let d = self.dir.path().display();
        write(
            &self.path("sshd_config"),
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {d}/host_key\n\
                 PidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\n\
                 AllowUsers {user}\n\
                 StrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 UseDNS no\n\
                 PrintMotd no\n\
                 LogLevel INFO\n\
                 Subsystem sftp internal-sftp\n\
                 ForceCommand internal-sftp\n",
                port = self.port,
                user = self.user,
            )
            .as_bytes(),
        );
        write(&self.known_hosts(), self.known_hosts_line().as_bytes());
        write(
            &self.path("ssh_config"),
            format!(
                "Host *\n  \
                 UserKnownHostsFile {d}/known_hosts\n  \
                 GlobalKnownHostsFile /dev/null\n  \
                 IdentityFile {d}/user_key\n  \
                 IdentitiesOnly yes\n  \
                 BatchMode yes\n  \
                 ConnectTimeout 10\n  \
                 LogLevel ERROR\n"
            )
            .as_bytes(),
        );
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 KEY\n`: the server's entry for a `known_hosts` file.
    pub fn known_hosts_line(&self) -> String {
        let host_pub = fs::read_to_string(self.path("host_key.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (algo, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {algo} {key}\n", self.port)
    }

    fn log(&self) -> PathBuf {
        self.path("sshd.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(SSHD);
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let cmdline = cmdline_of(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {cmdline}: {e}"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "{cmdline} exited ({status}):\n{}",
                    read_log(&self.log())
                ));
            }
            if accepts_connections(self.port) {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                kill_tree(&mut child);
                return Err(format!(
                    "{cmdline} did not accept connections within {START_TIMEOUT:?}:\n{}",
                    read_log(&self.log())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        // A real login through the wrapper and an sftp session: the host key, the user key,
        // the config and the subsystem work.
        let out = self.ssh_cmd(&["-s", "sftp"]).output().expect("run ssh");
        if !out.status.success() {
            self.kill();
            return Err(format!(
                "ssh through the wrapper failed ({}): {}\n--- sshd log ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                read_log(&self.log())
            ));
        }
        Ok(())
    }

    /// `ssh -p PORT USER@127.0.0.1 ARGS`, found through the `PATH` of [`Server::envs`] (so
    /// the wrapper, as vault's ssh is), stdin null.
    pub fn ssh_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.env("PATH", self.path_env())
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{}@127.0.0.1", self.user))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }
}

impl Server for SftpServer {
    fn kind(&self) -> &'static str {
        "sftp"
    }

    fn location(&self, path: &str) -> String {
        format!(
            "sftp:{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.root().join(path).display()
        )
    }

    fn disk_path(&self, path: &str) -> Option<PathBuf> {
        Some(self.root().join(path))
    }

    fn envs(&self) -> Vec<(String, String)> {
        vec![
            (
                "PATH".into(),
                self.path_env().into_string().expect("UTF-8 PATH"),
            ),
            (
                "VAULT_SFTP_KEY".into(),
                self.user_key().to_str().unwrap().into(),
            ),
        ]
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }

    fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    panic!("sshd did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn is_up(&self) -> bool {
        self.child.is_some()
            && self
                .ssh_cmd(&["-s", "sftp"])
                .output()
                .is_ok_and(|o| o.status.success())
    }

    fn client_put(&self, path: &str, data: &[u8]) -> Result<bool, String> {
        if !is_executable(Path::new(SFTP)) {
            return Ok(false);
        }
        let body = self.path("put-body");
        write(&body, data);
        let target = self.root().join(path);
        let quote = |p: &Path| format!("\"{}\"", p.display());
        // `-mkdir`: an existing directory is not an error.
        let mut batch: String = target
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(self.root()))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|d| format!("-mkdir {}\n", quote(d)))
            .collect();
        batch.push_str(&format!("put {} {}\n", quote(&body), quote(&target)));
        write(&self.path("put-batch"), batch.as_bytes());
        let out = Command::new(SFTP)
            .env("PATH", self.path_env())
            .arg("-S")
            .arg(self.bin_dir().join("ssh"))
            .arg("-P")
            .arg(self.port.to_string())
            .arg("-b")
            .arg(self.path("put-batch"))
            .arg(format!("{}@127.0.0.1", self.user))
            .stdin(Stdio::null())
            .output()
            .expect("run sftp");
        if !out.status.success() {
            return Err(format!(
                "sftp put {}: {}\n{}",
                target.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(true)
    }

    fn hold_connection(&self) -> Child {
        let child = self
            .ssh_cmd(&["-N"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh");
        connected(child, Duration::from_millis(1500), "an ssh connection")
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------------------------------------------
// Garage: a real distributed object store, single node (opt-in)
// ------------------------------------------------------------------------------------------------

/// The variable naming the Garage binary; without it the Garage tests skip, under CI too.
pub const GARAGE_ENV: &str = "VAULT_GARAGE";
/// The region Garage is configured with (and that vault signs for, `AWS_REGION`).
pub const GARAGE_REGION: &str = "garage";

/// A single-node Garage (`garage server`) on two free 127.0.0.1 ports (RPC and the S3 API),
/// with its metadata (LMDB) and data blocks in a temp dir, a layout of one node in zone `dc1`,
/// one key and one bucket, both `vault-test`, the key owning the bucket. Garage keeps objects
/// as chunked, compressed blocks plus a metadata database, not as files, so
/// [`Server::disk_path`] is `None` and objects are listed and read through the S3 API (curl).
///
/// Opt-in: the binary comes from `VAULT_GARAGE` (`cargo install garage@2.5.0 --locked`);
/// without it [`GarageServer::start`] prints a skip and returns `None`, whether or not under CI.
pub struct GarageServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    rpc_port: u16,
    s3_port: u16,
    child: Option<Child>,
    key_id: String,
    secret: String,
    /// The bucket [`Server::location`] uses; created at start.
    pub bucket: String,
}

impl GarageServer {
    /// Starts a node, lays it out and creates the key and the bucket. `None` (and a printed
    /// skip) when `VAULT_GARAGE` is not set.
    pub fn start() -> Option<GarageServer> {
        let bin = match std::env::var_os(GARAGE_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                eprintln!("SKIPPED (opt-in: set {GARAGE_ENV}=/path/to/garage)");
                return None;
            }
        };
        assert!(
            is_executable(&bin),
            "{GARAGE_ENV}={} is not an executable",
            bin.display()
        );
        assert!(
            find_in_path("curl").is_some(),
            "the Garage tests need curl (to list and read objects through the S3 API)"
        );
        let dir = tempfile::Builder::new()
            .prefix("vault-garage-")
            .tempdir()
            .expect("temp dir");
        let mut server = GarageServer {
            dir,
            bin,
            rpc_port: 0,
            s3_port: 0,
            child: None,
            key_id: String::new(),
            secret: String::new(),
            bucket: "vault-test".into(),
        };
        let secret = random_hex(32);
        let mut last = String::new();
        for _ in 0..5 {
            server.rpc_port = free_port();
            server.s3_port = free_port();
            if server.rpc_port == server.s3_port {
                continue;
            }
            server.write_config(&secret);
            match server.spawn() {
                Ok(()) => {
                    last.clear();
                    break;
                }
                Err(e) => last = e,
            }
        }
        if server.child.is_none() {
            panic!("garage did not start: {last}");
        }
        server.set_up();
        Some(server)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("garage.toml")
    }

    fn log(&self) -> PathBuf {
        self.path("garage.log")
    }

    /// `http://127.0.0.1:PORT` (the S3 API).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// A curl client for the S3 API, with the test key.
    pub fn s3curl(&self) -> S3Curl {
        S3Curl {
            endpoint: self.endpoint(),
            region: GARAGE_REGION.into(),
            access_key: self.key_id.clone(),
            secret_key: self.secret.clone(),
        }
    }

    fn write_config(&self, rpc_secret: &str) {
        let d = self.dir.path().display();
        write(
            &self.config(),
            format!(
                "metadata_dir = \"{d}/meta\"\n\
                 data_dir = \"{d}/data\"\n\
                 db_engine = \"lmdb\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{rpc_secret}\"\n\
                 \n\
                 [s3_api]\n\
                 s3_region = \"{GARAGE_REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3}\"\n",
                rpc = self.rpc_port,
                s3 = self.s3_port,
            )
            .as_bytes(),
        );
    }

    /// `garage -c CONFIG ARGS`: its stdout on success, else an error with both outputs.
    pub fn garage(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "garage {}: {}\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `garage ARGS`, panicking (with the server's log) when it fails.
    #[track_caller]
    fn garage_ok(&self, args: &[&str]) -> String {
        self.garage(args)
            .unwrap_or_else(|e| panic!("{e}\n--- garage server log ---\n{}", read_log(&self.log())))
    }

    /// Starts `garage server` and waits for both ports.
    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let cmdline = cmdline_of(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {cmdline}: {e}"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "{cmdline} exited ({status}):\n{}",
                    read_log(&self.log())
                ));
            }
            if accepts_connections(self.rpc_port) && accepts_connections(self.s3_port) {
                self.child = Some(child);
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                kill_tree(&mut child);
                return Err(format!(
                    "{cmdline} did not accept connections within {START_TIMEOUT:?}:\n{}",
                    read_log(&self.log())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first boot's set-up: the node's id from `garage status`, a layout of that node
    /// alone, the key and the bucket; returns once the S3 API serves the key.
    fn set_up(&mut self) {
        let started = Instant::now();
        let status = loop {
            match self.garage(&["status"]) {
                Ok(out) => break out,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    panic!("{e}\n--- garage server log ---\n{}", read_log(&self.log()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        // ==== HEALTHY NODES ====
        // ID                Hostname  Address          Tags  Zone  Capacity          ...
        // 0123456789abcdef  host      127.0.0.1:PORT               NO ROLE ASSIGNED  ...
        let node = status
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .find(|w| w.len() >= 16 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no node id in `garage status`:\n{status}"))
            .to_string();
        self.garage_ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        self.garage_ok(&["layout", "apply", "--version", "1"]);
        let key = self.garage_ok(&["key", "create", "vault-test"]);
        // ==== ACCESS KEY INFORMATION ====
        // Key ID:      GK...
        // Secret key:  ...
        let field = |label: &str| {
            key.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(label))
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| panic!("no {label:?} in `garage key create`:\n{key}"))
        };
        self.key_id = field("Key ID");
        self.secret = field("Secret key");
        let bucket = self.bucket.clone();
        self.garage_ok(&["bucket", "create", &bucket]);
        self.garage_ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &bucket,
            "--key",
            "vault-test",
        ]);
        self.wait_for_s3("start");
    }

    /// Waits until the bucket can be listed with the key (the layout and the key and bucket
    /// tables are ready), or panics after [`START_TIMEOUT`] with the last answer.
    fn wait_for_s3(&self, what: &str) {
        let started = Instant::now();
        let url_path = format!("/{}?list-type=2&max-keys=1", self.bucket);
        loop {
            let out = self.s3curl().run(&[], &url_path, 5).expect("curl");
            if out.status.success() {
                return;
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "garage's S3 API does not serve the bucket {START_TIMEOUT:?} after {what}: \
                     {}\n{}{}\n--- garage server log ---\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    read_log(&self.log())
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `n` random bytes from the kernel, in hex.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Server for GarageServer {
    fn kind(&self) -> &'static str {
        "garage"
    }

    fn location(&self, path: &str) -> String {
        format!("s3:{}/{}/{path}", self.endpoint(), self.bucket)
    }

    fn disk_path(&self, _path: &str) -> Option<PathBuf> {
        None
    }

    fn list_objects(&self, path: &str) -> Vec<(String, u64)> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.s3curl()
            .list(&self.bucket, &prefix)
            .expect("curl is needed to list objects on Garage")
    }

    fn read_object(&self, path: &str) -> Option<Vec<u8>> {
        let into = self.path(&format!("get-{}", super::history::rand_suffix()));
        let found = self
            .s3curl()
            .get(&format!("/{}/{path}", self.bucket), &into)
            .expect("curl is needed to read objects on Garage");
        let data = found.then(|| fs::read(&into).unwrap());
        let _ = fs::remove_file(&into);
        data
    }

    fn envs(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            ("AWS_REGION".into(), GARAGE_REGION.into()),
        ]
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }

    fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => break,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    panic!("garage did not restart on port {}: {e}", self.s3_port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        self.wait_for_s3("a restart");
    }

    fn is_up(&self) -> bool {
        self.child.is_some()
            && self
                .s3curl()
                .lists_buckets()
                .unwrap_or_else(|| accepts_connections(self.s3_port))
    }

    fn client_put(&self, path: &str, data: &[u8]) -> Result<bool, String> {
        let file = self.path("put-body");
        write(&file, data);
        self.s3curl()
            .put(&file, &format!("/{}/{path}", self.bucket))
    }

    fn hold_connection(&self) -> Child {
        hold_tcp(self.s3_port, "a TCP client of garage")
    }
}

impl Drop for GarageServer {
    fn drop(&mut self) {
        self.kill();
    }
}
