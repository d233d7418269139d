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

mod garage;
mod mariadb;
mod s3;
mod sftp;

// Test binaries that start no server use none of these.
#[allow(unused_imports)]
pub use garage::*;
#[allow(unused_imports)]
pub use mariadb::*;
#[allow(unused_imports)]
pub use s3::*;
#[allow(unused_imports)]
pub use sftp::*;

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
        // SAFETY: as above: kill(2) touches no memory of this process.
        unsafe { libc::kill(p as i32, libc::SIGSTOP) };
    }
    for p in descendants(pid) {
        if !all.contains(&p) {
            all.push(p);
        }
    }
    let _ = child.kill();
    for p in all {
        // SAFETY: as above; the processes are stopped, so their pids cannot have been reused.
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
