//! Stream sources: standard input and commands whose stdout is backed up.
//!
//! A source is opened only when the pipeline reaches it, so commands run one after another in
//! the order given (dump the database first, then walk the file store). After the stream ends,
//! [`OpenStream::finish`] says whether the source succeeded: a command that exits non-zero, is
//! killed by a signal, or outlives its timeout fails the whole snapshot.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Checks, after the stream's end, whether the source succeeded.
pub type Finish = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// An open stream: its bytes and how to learn whether it succeeded.
pub struct OpenStream {
    pub reader: Box<dyn Read + Send>,
    pub finish: Option<Finish>,
}

type Opener = Box<dyn FnOnce() -> Result<OpenStream, String> + Send>;

/// A stream source: stdin or a command's stdout, stored as one file.
pub struct StreamSource {
    /// Path inside the snapshot, e.g. `db/website.sql` (stored at `/db/website.sql`).
    pub name: String,
    /// `stdin` or `command`.
    pub kind: &'static str,
    /// The command line, for `command` sources (recorded in the manifest).
    pub command: Option<String>,
    open: Opener,
}

impl StreamSource {
    /// Standard input, stored as `name`.
    pub fn stdin(name: impl Into<String>) -> Self {
        Self::from_reader(name, "stdin", Box::new(io::stdin()))
    }

    /// Any reader (tests, embedding), stored as `name`.
    pub fn from_reader(
        name: impl Into<String>,
        kind: &'static str,
        reader: Box<dyn Read + Send>,
    ) -> Self {
        StreamSource {
            name: name.into(),
            kind,
            command: None,
            open: Box::new(move || {
                Ok(OpenStream {
                    reader,
                    finish: None,
                })
            }),
        }
    }

    /// `sh -c command`, its stdout stored as `name`, its stderr passed through. With a
    /// `timeout`, the command and every process it started are killed (and the snapshot fails)
    /// when it runs longer.
    pub fn command(
        name: impl Into<String>,
        command: impl Into<String>,
        timeout: Option<Duration>,
    ) -> Self {
        let command: String = command.into();
        let line = command.clone();
        StreamSource {
            name: name.into(),
            kind: "command",
            command: Some(command),
            open: Box::new(move || spawn(&line, timeout)),
        }
    }

    /// Why an empty stream is suspect, for the error that refuses it.
    pub(crate) fn empty_reason(&self) -> String {
        match (self.kind, &self.command) {
            ("stdin", _) => "standard input was empty (0 bytes): the program writing it may have failed (`set -o pipefail` makes the shell report that)".into(),
            (_, Some(line)) => format!("command `{line}` exited 0 but wrote nothing (0 bytes)"),
            (kind, None) => format!("the {kind} stream was empty (0 bytes)"),
        }
    }

    pub(crate) fn open(self) -> Result<OpenStream, String> {
        (self.open)()
    }
}

fn spawn(line: &str, timeout: Option<Duration>) -> Result<OpenStream, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group, so that a timeout kills everything the command started
        // (`sh -c 'pg_dump | gzip'` has children that hold the pipe open).
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start `sh -c`: {e}"))?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let child = Arc::new(Mutex::new(child));
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let timed_out = Arc::new(Mutex::new(false));
    if let Some(limit) = timeout {
        let (child, done, timed_out) = (child.clone(), done.clone(), timed_out.clone());
        std::thread::spawn(move || {
            let (lock, signal) = &*done;
            let (finished, _) = signal
                .wait_timeout_while(lock.lock().unwrap(), limit, |d| !*d)
                .unwrap();
            if !*finished {
                *timed_out.lock().unwrap() = true;
                let pid = rustix::process::Pid::from_child(&child.lock().unwrap());
                // The child leads its own process group: kill it and whatever it started.
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        });
    }
    let line = line.to_owned();
    let finish: Finish = Box::new(move || {
        let status = wait(&child);
        let (lock, signal) = &*done;
        *lock.lock().unwrap() = true;
        signal.notify_all();
        let status = status.map_err(|e| format!("cannot wait for the command: {e}"))?;
        if *timed_out.lock().unwrap() {
            return Err(format!(
                "command `{line}` timed out after {:?} and was killed",
                timeout.unwrap_or_default()
            ));
        }
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(code), _) => Err(format!("command `{line}` exited with status {code}")),
            (None, Some(signal)) => Err(format!(
                "command `{line}` was killed by signal {signal}{}",
                signal_name(signal)
                    .map(|name| format!(" ({name})"))
                    .unwrap_or_default()
            )),
            (None, None) => Err(format!("command `{line}` ended abnormally")),
        }
    });
    Ok(OpenStream {
        reader: Box::new(stdout),
        finish: Some(finish),
    })
}

/// The name of a signal that commonly ends a dump command.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return None,
    })
}

fn wait(child: &Arc<Mutex<Child>>) -> io::Result<std::process::ExitStatus> {
    // Poll rather than block in wait() while holding the lock, so the timeout can still kill.
    loop {
        if let Some(status) = child.lock().unwrap().try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
