//! `vault restore-test [APP…]`: the newest complete snapshot of an application restored into
//! a scratch directory and scratch databases, the configured checks run against it, and
//! everything removed again, whatever happened.
//!
//! ```text
//! scratch dir <scratch>/<app>-<pid>, databases vault_restoretest_<app>_<pid>[_<db>]
//!   ─► restore_app::restore_snapshot (files into <scratch dir>/files, dumps loaded)
//!   ─► checks (query: ≥ 1 row; file: exists; command: exits 0), every one
//!   ─► cleanup: drop the scratch databases, remove the scratch dir (always)
//!   ─► record: <state>/restore-tests/<app>.jsonl (appended), <app>.json (the last one)
//!   ─► metrics textfile
//! ```
//! The result is recorded apart from `vault run`'s summary, so a restore test finishing while a
//! run of the same application goes on never loses either record.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::config::{select_apps, LoadedConfig, RestoreCheck};
use super::restore_app::{find_app_snapshot, open_app_repository, restore_snapshot};
use super::restore_app::{AppRestore, RestoreAppOptions};
use super::restore_db::NewDatabase;
use super::run::RunOptions;
use super::state::{write_atomically, StateDir};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// One check's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// One line naming the check (`query "SELECT …" in cms`, `file /srv/…`, `command "…"`).
    pub check: String,
    pub ok: bool,
    pub message: String,
}

/// One application's restore test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreTestReport {
    pub app: String,
    pub started: String,
    pub duration_secs: f64,
    /// The restore and every check succeeded.
    pub ok: bool,
    /// The snapshot restored (`null` when none could be chosen).
    pub snapshot: Option<String>,
    pub checks: Vec<CheckReport>,
    /// What failed: the restore, or the first failed check (`null` when `ok`).
    pub error: Option<String>,
    /// Whether the scratch databases and directory were removed (a failure to is an error).
    pub cleaned_up: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreTestRunReport {
    pub config: String,
    pub state_dir: String,
    pub apps: Vec<RestoreTestReport>,
}

impl crate::report::JsonReport for RestoreTestRunReport {}
impl crate::report::JsonReport for RestoreTestReport {}

/// Runs the restore tests of `options.apps` (every application with a `restore_test` when
/// empty; a named application without one is a usage error).
pub fn restore_test(
    config: &LoadedConfig,
    options: &RunOptions,
    progress: &dyn Progress,
) -> Result<RestoreTestRunReport> {
    let mut apps = select_apps(config, &options.apps)?;
    if options.apps.is_empty() {
        apps.retain(|a| {
            config
                .application(a)
                .is_some_and(|a| a.restore_test.is_some())
        });
    }
    for app in &apps {
        if config
            .application(app)
            .is_some_and(|a| a.restore_test.is_none())
        {
            return Err(Error::invalid(
                "vault restore-test",
                format!("application {app:?} has no [applications.{app}.restore_test]; add one with checks"),
            ));
        }
    }
    let mut report = RestoreTestRunReport {
        config: config.file.display().to_string(),
        state_dir: options.state.root().display().to_string(),
        apps: Vec::new(),
    };
    for app in apps {
        let tested = test_app(config, options, &app, progress);
        record(&options.state, &tested)?;
        report.apps.push(tested);
        if let Some(textfile) = &config.config.metrics.textfile {
            super::metrics::write(config, &options.state, textfile)?;
        }
    }
    Ok(report)
}

/// `vault_restoretest_<app>_<pid>`, the application's name cut to what a database name holds.
fn scratch_name(app: &str) -> String {
    let clean: String = app
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(24)
        .collect();
    format!("vault_restoretest_{clean}_{}", std::process::id())
}

fn test_app(
    config: &LoadedConfig,
    options: &RunOptions,
    app: &str,
    progress: &dyn Progress,
) -> RestoreTestReport {
    let started = Timestamp::now();
    let clock = Instant::now();
    let test = config
        .application(app)
        .and_then(|a| a.restore_test.clone())
        .expect("selected");
    let scratch_root = test
        .scratch_dir
        .clone()
        .unwrap_or_else(|| options.state.root().join("restore-tests"));
    let scratch = scratch_root.join(format!("{app}-{}", std::process::id()));
    let mut report = RestoreTestReport {
        app: app.to_string(),
        started: started.to_string(),
        duration_secs: 0.0,
        ok: false,
        snapshot: None,
        checks: Vec::new(),
        error: None,
        cleaned_up: true,
    };
    let mut restore: Option<AppRestore> = None;
    let outcome = (|| -> std::result::Result<(), String> {
        let repo = open_app_repository(config, app, options).map_err(|e| e.to_string())?;
        let snapshot = find_app_snapshot(&repo, app, None).map_err(|e| e.to_string())?;
        report.snapshot = Some(snapshot.id.to_hex());
        let files = scratch.join("files");
        let restore_options = RestoreAppOptions {
            app: app.to_string(),
            snapshot: None,
            name: scratch_name(app),
            target: Some(files.clone()),
            overwrite: false,
            base: scratch.join("databases"),
            run: RunOptions {
                apps: Vec::new(),
                cache_root: options.cache_root.clone(),
                remote: options.remote.clone(),
                state: options.state.clone(),
            },
        };
        let restored = restore_snapshot(config, &repo, &snapshot, &restore_options, progress)
            .map_err(|e| e.to_string());
        let restored = restore.insert(restored?);
        if let Some(error) = &restored.report.error {
            return Err(format!(
                "restore of snapshot {}: {error}",
                snapshot.id.short()
            ));
        }
        std::fs::create_dir_all(&files).map_err(|e| format!("{}: {e}", files.display()))?;
        for check in &test.checks {
            let check = check.get_ref();
            let result = run_check(check, &files, &restored.created);
            report.checks.push(CheckReport {
                check: check.describe(),
                ok: result.is_ok(),
                message: result.unwrap_or_else(|e| e),
            });
        }
        match report.checks.iter().find(|c| !c.ok) {
            Some(failed) => Err(format!("check {} failed: {}", failed.check, failed.message)),
            None => Ok(()),
        }
    })();
    // Cleanup, always.
    let mut cleanup = Vec::new();
    if let Some(mut restored) = restore {
        if let Err(e) = restored.drop_databases() {
            cleanup.push(e);
        }
    }
    if let Err(e) = remove_scratch(&scratch) {
        cleanup.push(e);
    }
    report.cleaned_up = cleanup.is_empty();
    report.ok = outcome.is_ok() && cleanup.is_empty();
    report.error = match (outcome, cleanup.is_empty()) {
        (Ok(()), true) => None,
        (Ok(()), false) => Some(format!("cleanup failed: {}", cleanup.join("; "))),
        (Err(e), true) => Some(e),
        (Err(e), false) => Some(format!("{e}; cleanup failed too: {}", cleanup.join("; "))),
    };
    report.duration_secs = clock.elapsed().as_secs_f64();
    report
}

fn remove_scratch(scratch: &Path) -> std::result::Result<(), String> {
    match std::fs::remove_dir_all(scratch) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", scratch.display())),
    }
}

/// `VAULT_RESTORE_DB_<DB>`: the database's stored name, upper case, other characters `_`.
fn database_variable(database: &str) -> String {
    let name: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("VAULT_RESTORE_DB_{name}")
}

/// Runs one check; `Ok` with what it saw, `Err` with why it failed.
fn run_check(
    check: &RestoreCheck,
    files: &Path,
    databases: &[NewDatabase],
) -> std::result::Result<String, String> {
    if let Some(query) = &check.query {
        let database = match &check.database {
            Some(name) => databases.iter().find(|d| &d.database == name),
            None => databases.first(),
        }
        .ok_or("the database it names was not restored")?;
        let rows = database
            .query(query)
            .ok_or("this kind of database cannot be queried")??;
        return if rows.is_empty() {
            Err(format!("returned no rows in {}", database.restored_as))
        } else {
            Ok(format!("{} row(s)", rows.len()))
        };
    }
    if let Some(file) = &check.file {
        let relative = file.strip_prefix("/").unwrap_or(file);
        let path: PathBuf = files.join(relative);
        return match std::fs::symlink_metadata(&path) {
            Ok(meta) => Ok(format!("exists ({} bytes)", meta.len())),
            Err(_) => Err(format!("{} is not in the restored files", file.display())),
        };
    }
    let command = check.command.as_deref().unwrap_or_default();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(files)
        .env("VAULT_RESTORE_DIR", files)
        .stdin(Stdio::null());
    for database in databases {
        cmd.env(database_variable(&database.database), &database.restored_as);
    }
    let output = cmd.output().map_err(|e| format!("cannot run sh: {e}"))?;
    if output.status.success() {
        Ok("exited 0".into())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!("{}: {first}", output.status))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Appends the test to `<state>/restore-tests/<app>.jsonl` and replaces `<app>.json`.
pub fn record(state: &StateDir, report: &RestoreTestReport) -> Result<()> {
    use std::io::Write;
    let dir = state.root().join("restore-tests");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let history = dir.join(format!("{}.jsonl", report.app));
    let mut line = serde_json::to_vec(report).expect("reports serialize");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&history)
        .map_err(io(&history))?;
    file.write_all(&line).map_err(io(&history))?;
    file.sync_all().map_err(io(&history))?;
    let last = serde_json::to_vec_pretty(report).expect("reports serialize");
    write_atomically(&dir.join(format!("{}.json", report.app)), &last)
}

/// The application's last restore test; `None` before its first (or when unreadable).
pub fn last(state: &StateDir, app: &str) -> Option<RestoreTestReport> {
    let path = state
        .root()
        .join("restore-tests")
        .join(format!("{app}.json"));
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
