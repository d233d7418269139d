//! Throw-away remote storage servers for the remote-backend tests: an S3 server (`s3s-fs`, an
//! S3 API over a local directory) and an SFTP server (a second `sshd` on a loopback port, with
//! its own host key, user key and `known_hosts`). Each runs as a child process on a free
//! 127.0.0.1 port with its data in a temp dir, can be killed (SIGKILL, every connection with it)
//! and restarted on the same port and data, and is killed when dropped.
//!
//! Both come from outside the workspace: `s3s-fs` from `cargo install s3s-fs --features binary`
//! (found through `VAULT_S3S_FS`, then `PATH`), `sshd` from Debian's `openssh-server`; `.ci/run`
//! installs both. A missing one fails the test under CI and skips it elsewhere ([`required`]).

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
    /// "s3" or "sftp", for messages and paths.
    fn kind(&self) -> &'static str;
    /// The repository location (for `--repo`/`VAULT_REPO`) of `path` on this server, a relative
    /// path such as `repo` or `a/b`.
    fn location(&self, path: &str) -> String;
    /// The directory on the local disk where the repository at [`Server::location`]`(path)`
    /// keeps its objects.
    fn disk_path(&self, path: &str) -> PathBuf;
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

/// Waits `settle` for `child` to connect; panics if it has already exited.
fn connected(mut child: Child, settle: Duration, what: &str) -> Child {
    std::thread::sleep(settle);
    if let Some(status) = child.try_wait().unwrap() {
        panic!("{what} exited ({status}) before the server went away");
    }
    child
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

    /// `curl --aws-sigv4 ... ARGS ENDPOINT/URL-PATH` (a signed request), when curl is
    /// installed.
    pub fn curl(&self, args: &[&str], url_path: &str) -> Option<std::process::Output> {
        let curl = find_in_path("curl")?;
        let out = Command::new(curl)
            .args(args)
            .arg("-sS")
            .arg("--max-time")
            .arg("5")
            .arg("--fail-with-body")
            .arg("-H")
            .arg("x-amz-content-sha256: UNSIGNED-PAYLOAD")
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{S3_REGION}:s3"))
            .arg("--user")
            .arg(format!("{S3_ACCESS_KEY}:{S3_SECRET_KEY}"))
            .arg(format!("{}{url_path}", self.endpoint()))
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        Some(out)
    }
}

impl Server for S3Server {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn location(&self, path: &str) -> String {
        format!("s3:{}/{}/{path}", self.endpoint(), self.bucket)
    }

    fn disk_path(&self, path: &str) -> PathBuf {
        self.root().join(&self.bucket).join(path)
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
        let url_path = format!("/{}/{path}", self.bucket);
        let Some(out) = self.curl(&["-T", file.to_str().unwrap()], &url_path) else {
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

    fn hold_connection(&self) -> Child {
        // A raw TCP connection (bash's /dev/tcp), read until the server closes it.
        let child = Command::new("bash")
            .arg("-c")
            .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{}; cat <&3", self.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bash");
        connected(child, Duration::from_millis(500), "a TCP client of s3s-fs")
    }

    fn is_up(&self) -> bool {
        match self.curl(&[], "/") {
            Some(out) => {
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains("ListAllMyBucketsResult")
            }
            None => accepts_connections(self.port),
        }
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
            self.disk_path(path).display()
        )
    }

    fn disk_path(&self, path: &str) -> PathBuf {
        self.root().join(path)
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
        let target = self.disk_path(path);
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
