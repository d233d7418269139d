//! The operator's shell commands around a job: the `before`, `after` and `on_failure` hooks,
//! and the notify command.
//!
//! Input: a command line (run by `sh -c`, like every command in the config), the variables
//! that describe the job, optional bytes for standard input, a time limit. Output: `Ok` with a
//! one-line description, or `Err` with one line naming the hook and why it failed.
//!
//! A hook's standard output goes to vault's standard error, so that `vault run --json` keeps
//! a clean standard output. A hook runs in its own process group; past its time limit the
//! whole group is killed and the hook fails.
//!
//! Variables every hook sees:
//! `VAULT_APP`, `VAULT_HOOK` (`before`, `after`, `on_failure`, `notify`), `VAULT_CONFIG`,
//! and after the steps `VAULT_RESULT` (`ok`, `failed`), `VAULT_FAILED_STEP` (empty when
//! none) and `VAULT_REPORT` (a file holding the job report as JSON).

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a hook is told about its job.
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    pub app: String,
    pub config: String,
    /// `ok` or `failed`; empty before the steps.
    pub result: String,
    pub failed_step: String,
    /// The job report file; empty before the steps.
    pub report: String,
}

impl HookContext {
    fn variables(&self, hook: &str) -> [(&'static str, String); 6] {
        [
            ("VAULT_APP", self.app.clone()),
            ("VAULT_HOOK", hook.to_string()),
            ("VAULT_CONFIG", self.config.clone()),
            ("VAULT_RESULT", self.result.clone()),
            ("VAULT_FAILED_STEP", self.failed_step.clone()),
            ("VAULT_REPORT", self.report.clone()),
        ]
    }
}

/// Runs `command` as hook `hook` (`before`, `after`, `on_failure`, `notify`), feeding it
/// `stdin` when given, killing it past `timeout`.
pub fn run_hook(
    hook: &str,
    command: &str,
    context: &HookContext,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<String, String> {
    let named = |what: String| format!("{hook} hook `{command}`: {what}");
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(context.variables(hook))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| named(format!("cannot start `sh -c`: {e}")))?;
    let feeder = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            // A command that does not read its input must not block the job: write from a
            // thread, and ignore a closed pipe.
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let pid = rustix::process::Pid::from_child(&child);
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                let _ = child.wait();
                return Err(named(format!(
                    "still running after {}s, killed; make it faster or raise the timeout",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(named(format!("cannot wait for it: {e}"))),
        }
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    if status.success() {
        Ok(format!("{hook} hook `{command}` succeeded"))
    } else {
        Err(named(format!("failed ({status})")))
    }
}

/// Writes the job report where `VAULT_REPORT` points hooks: `<state>/reports/<app>.json`.
pub fn write_report_file(dir: &Path, app: &str, json: &[u8]) -> crate::error::Result<String> {
    let path = dir.join(format!("{app}.json"));
    super::state::write_atomically(&path, json)?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_see_their_variables_fail_on_exit_status_and_are_killed_past_their_timeout() {
        let context = HookContext {
            app: "cms".into(),
            result: "failed".into(),
            failed_step: "snapshot".into(),
            ..HookContext::default()
        };
        let second = Duration::from_secs(5);
        let check = r#"test "$VAULT_APP/$VAULT_HOOK/$VAULT_RESULT/$VAULT_FAILED_STEP" = cms/on_failure/failed/snapshot"#;
        assert!(run_hook("on_failure", check, &context, None, second).is_ok());
        let error = run_hook("after", "exit 3", &context, None, second).unwrap_err();
        assert!(error.starts_with("after hook `exit 3`: failed"), "{error}");
        let stdin = run_hook(
            "notify",
            "grep -q report",
            &context,
            Some(b"the report"),
            second,
        );
        assert!(stdin.is_ok(), "{stdin:?}");
        let slow = run_hook(
            "before",
            "sleep 10",
            &context,
            None,
            Duration::from_millis(200),
        );
        assert!(slow.unwrap_err().contains("killed"));
    }
}
