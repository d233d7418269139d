//! A running `vault mount` for the tests: started with `--json` (its report says the mount is
//! ready), always unmounted when dropped (`fusermount3 -u -z`), so a failing test leaves no
//! stale mount behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{find_in_path, required, Env};

/// FUSE on this machine: `/dev/fuse` and `fusermount3`. `None` (a printed skip) when missing
/// outside CI; a failure under CI.
#[track_caller]
pub fn fuse_available() -> Option<()> {
    let found = if !Path::new("/dev/fuse").exists() {
        Err("/dev/fuse does not exist".to_string())
    } else if find_in_path("fusermount3").is_none() {
        Err("fusermount3 is not in PATH".to_string())
    } else {
        Ok(())
    };
    required(
        "FUSE (/dev/fuse and fusermount3)",
        "apt-get install fuse3",
        found,
    )
}

/// Whether `path` is a mountpoint now (`/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let wanted = canonical.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(wanted.as_str()))
}

/// A `vault mount` process serving `mountpoint`.
pub struct Mount {
    pub child: Option<Child>,
    pub mountpoint: PathBuf,
    /// What `--json` printed when the mount was ready.
    pub report: Value,
}

impl Mount {
    /// Mounts the environment's repository at `<tmp>/<name>` (created) with `args` added.
    #[track_caller]
    pub fn start(env: &Env, name: &str, args: &[&str]) -> Mount {
        let mountpoint = env.path(name);
        std::fs::create_dir_all(&mountpoint).unwrap();
        let mut cmd: Command = env.cmd(["mount", "--json"]);
        cmd.arg(&mountpoint).args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn vault mount");
        let stdout = child.stdout.take().unwrap();
        let mut mount = Mount {
            child: Some(child),
            mountpoint,
            report: Value::Null,
        };
        // The report is printed once the kernel has the mount: read it whole.
        let mut text = String::new();
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            text.push_str(&line);
            text.push('\n');
            if line == "}" {
                break;
            }
        }
        mount.report = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("vault mount printed no report ({e}): {text:?}"));
        assert!(
            is_mounted(&mount.mountpoint),
            "not mounted after the report"
        );
        mount
    }

    /// `<mountpoint>/<rel>`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.mountpoint.join(rel)
    }

    /// Waits (at most `limit`) for the process to end; its exit code.
    #[track_caller]
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let child = self.child.as_mut().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < limit,
                "vault mount still runs after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.mountpoint)
                .status();
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
