//! `vault schedule`: the applications' schedules as systemd timers or crontab lines.
//!
//! Input: the config (each application's `schedule`, a cron expression) and where to install
//! (a systemd unit directory, or the user's crontab). Output: a [`ScheduleReport`] of the jobs,
//! their translated schedules, the next run times (computed with croner) and the files or
//! lines written or removed.
//!
//! systemd: per application `vault-<app>.service` (oneshot, `vault run --config PATH APP`)
//! and `vault-<app>.timer` (`OnCalendar=` translated from the cron expression,
//! `Persistent=true` so that a run missed while the machine was off happens at boot). cron:
//! one line per application in a block of the crontab between two marker lines naming the
//! config file.
//!
//! Invariants: every file and block written carries a marker naming the config file, and
//! `remove` deletes exactly the files and the block with that marker (install first removes
//! what an earlier install for the same config wrote and the config no longer has). A cron
//! expression systemd cannot express with the same meaning is an error, never an approximation;
//! when `systemd-analyze` is present each translation is checked against croner's next runs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::calendar::{check_with_systemd, next_runs, to_cron_fields, to_on_calendar};
use super::config::LoadedConfig;
use crate::error::{Error, Result};

/// Where the jobs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// systemd units in `unit_dir`; `manage` runs `systemctl` (daemon-reload, enable/disable
    /// the timers), `user` selects `systemctl --user`.
    Systemd {
        unit_dir: PathBuf,
        user: bool,
        manage: bool,
    },
    /// The invoking user's crontab, through the `crontab` program.
    Cron,
}

/// What `vault schedule` works on.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    pub target: Target,
    /// The vault binary the jobs run (absolute).
    pub binary: PathBuf,
    /// Passed on as `--state-dir` when the operator named one.
    pub state_dir: Option<PathBuf>,
    /// Report what would be written or removed, and change nothing.
    pub dry_run: bool,
}

/// One scheduled application.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledJob {
    pub app: String,
    /// `run` (the application's `schedule`: `vault run APP`) or `restore-test`
    /// (`restore_test.schedule`: `vault restore-test APP`).
    pub job: String,
    /// The cron expression from the config.
    pub schedule: String,
    /// systemd's `OnCalendar=` for it (systemd target).
    pub on_calendar: Option<String>,
    /// The crontab line (cron target).
    pub cron_line: Option<String>,
    /// Whether its unit files or crontab line are installed now.
    pub installed: bool,
    /// The next three run times (RFC 3339, local time zone).
    pub next_runs: Vec<String>,
}

/// A unit file: where, and what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct UnitFile {
    pub path: String,
    pub content: String,
}

/// What `vault schedule install | remove | status` did or found.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleReport {
    pub config: String,
    /// `systemd` or `cron`.
    pub target: String,
    pub unit_dir: Option<String>,
    pub dry_run: bool,
    /// Applications with a schedule, in name order.
    pub jobs: Vec<ScheduledJob>,
    /// Applications without a schedule (not installed).
    pub unscheduled: Vec<String>,
    /// Unit files written (install), or that would be.
    pub written: Vec<UnitFile>,
    /// Unit files deleted (install of a changed config, remove), or that would be.
    pub removed: Vec<String>,
    /// The crontab block written (install) or found (status).
    pub crontab_block: Option<String>,
    /// `systemctl` commands run (or that would be).
    pub commands: Vec<String>,
}

/// Whether vault runs as root (system units by default).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The systemd unit name of application `app` (`vault-<app>`, other characters escaped as
/// `systemd-escape` does).
pub fn unit_name(app: &str) -> String {
    let mut name = String::from("vault-");
    for (i, byte) in app.bytes().enumerate() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b':' => name.push(byte as char),
            b'.' if i > 0 => name.push('.'),
            _ => name.push_str(&format!("\\x{byte:02x}")),
        }
    }
    name
}

/// The unit name of `job`: [`unit_name`], with `-restore-test` appended for a restore test.
pub fn job_unit_name(job: &ScheduledJob) -> String {
    match job.job.as_str() {
        "run" => unit_name(&job.app),
        other => format!("{}-{other}", unit_name(&job.app)),
    }
}

/// One word of a systemd `ExecStart=` line.
fn systemd_word(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    if escaped.is_empty() || escaped.contains(|c: char| c.is_whitespace() || c == '\'' || c == ';')
    {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// One word of a crontab command (a `sh` word; `%` is special to cron).
fn cron_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    let quoted = if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    };
    quoted.replace('%', "\\%")
}

/// The command a job runs: `vault run|restore-test --config PATH [--state-dir DIR] APP`.
fn job_command(config: &Path, options: &ScheduleOptions, job: &str, app: &str) -> Vec<String> {
    let mut words = vec![
        options.binary.display().to_string(),
        job.into(),
        "--config".into(),
        config.display().to_string(),
    ];
    if let Some(dir) = &options.state_dir {
        words.push("--state-dir".into());
        words.push(dir.display().to_string());
    }
    words.push(app.into());
    words
}

fn marker(config: &Path) -> String {
    format!(
        "# Written by `vault schedule install` for {}; `vault schedule remove` deletes it.",
        config.display()
    )
}

fn block_begin(config: &Path) -> String {
    format!(
        "# BEGIN vault schedule for {} (written by `vault schedule install`; `vault schedule remove` deletes this block)",
        config.display()
    )
}

fn block_end(config: &Path) -> String {
    format!("# END vault schedule for {}", config.display())
}

/// The config file as the jobs name it: absolute.
fn config_path(config: &LoadedConfig) -> Result<PathBuf> {
    fs::canonicalize(&config.file).map_err(|e| Error::io(&config.file, e))
}

/// The jobs of the config, translated for `options.target`.
fn jobs(
    config: &LoadedConfig,
    options: &ScheduleOptions,
) -> Result<(Vec<ScheduledJob>, Vec<String>)> {
    let file = config_path(config)?;
    let mut jobs = Vec::new();
    let mut unscheduled = Vec::new();
    for (name, app) in &config.config.applications {
        let app = app.get_ref();
        if app.schedule.is_none() {
            unscheduled.push(name.clone());
        }
        let test = app.restore_test.as_ref().and_then(|t| t.schedule.as_ref());
        let kinds = [
            ("run", "schedule", app.schedule.as_ref()),
            ("restore-test", "restore_test.schedule", test),
        ];
        for (job, key, schedule) in kinds {
            let Some(schedule) = schedule else { continue };
            let schedule = schedule.get_ref().clone();
            let translated = |r: std::result::Result<String, String>| {
                r.map_err(|e| Error::invalid(format!("applications.{name}.{key}"), e))
            };
            let (on_calendar, cron_line) = match options.target {
                Target::Systemd { .. } => (Some(translated(to_on_calendar(&schedule))?), None),
                Target::Cron => {
                    let fields = translated(to_cron_fields(&schedule))?;
                    let command: Vec<String> = job_command(&file, options, job, name)
                        .iter()
                        .map(|w| cron_word(w))
                        .collect();
                    (None, Some(format!("{fields} {}", command.join(" "))))
                }
            };
            jobs.push(ScheduledJob {
                app: name.clone(),
                job: job.into(),
                next_runs: next_runs(&schedule, 3),
                schedule,
                on_calendar,
                cron_line,
                installed: false,
            });
        }
    }
    Ok((jobs, unscheduled))
}

fn unit_files(
    config: &Path,
    options: &ScheduleOptions,
    unit_dir: &Path,
    user: bool,
    job: &ScheduledJob,
) -> [UnitFile; 2] {
    let name = job_unit_name(job);
    let what = if job.job == "run" {
        "backup job"
    } else {
        "restore test"
    };
    let network = if user {
        ""
    } else {
        "Wants=network-online.target\nAfter=network-online.target\n"
    };
    let command: Vec<String> = job_command(config, options, &job.job, &job.app)
        .iter()
        .map(|w| systemd_word(w))
        .collect();
    let service = format!(
        "{}\n[Unit]\nDescription=vault {what} of application {}\n{network}\n[Service]\nType=oneshot\nExecStart={}\nNice=10\nIOSchedulingClass=idle\n",
        marker(config),
        job.app,
        command.join(" ")
    );
    let timer = format!(
        "{}\n[Unit]\nDescription=Schedule of the vault {what} of application {} ({})\n\n[Timer]\nOnCalendar={}\nPersistent=true\nUnit={name}.service\n\n[Install]\nWantedBy=timers.target\n",
        marker(config),
        job.app,
        job.schedule,
        job.on_calendar.as_deref().unwrap_or_default()
    );
    [
        UnitFile {
            path: unit_dir
                .join(format!("{name}.service"))
                .display()
                .to_string(),
            content: service,
        },
        UnitFile {
            path: unit_dir.join(format!("{name}.timer")).display().to_string(),
            content: timer,
        },
    ]
}

/// The unit files in `unit_dir` that an install for `config` wrote.
fn installed_units(config: &Path, unit_dir: &Path) -> Result<Vec<PathBuf>> {
    let marker = marker(config);
    let entries = match fs::read_dir(unit_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(unit_dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(unit_dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with("vault-") || !(name.ends_with(".service") || name.ends_with(".timer"))
        {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap_or_default();
        if text.lines().next() == Some(marker.as_str()) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

fn report(config: &LoadedConfig, options: &ScheduleOptions) -> Result<ScheduleReport> {
    let (jobs, unscheduled) = jobs(config, options)?;
    let (target, unit_dir) = match &options.target {
        Target::Systemd { unit_dir, .. } => ("systemd", Some(unit_dir.display().to_string())),
        Target::Cron => ("cron", None),
    };
    Ok(ScheduleReport {
        config: config_path(config)?.display().to_string(),
        target: target.into(),
        unit_dir,
        dry_run: options.dry_run,
        jobs,
        unscheduled,
        written: Vec::new(),
        removed: Vec::new(),
        crontab_block: None,
        commands: Vec::new(),
    })
}

/// Runs (or, in a dry run, only records) `systemctl`; nothing when vault does not manage
/// the units (`--unit-dir`).
fn systemctl(user: bool, args: &[&str], report: &mut ScheduleReport, manage: bool) -> Result<()> {
    if !manage {
        return Ok(());
    }
    let run = !report.dry_run;
    let mut words = vec!["systemctl"];
    if user {
        words.push("--user");
    }
    words.extend_from_slice(args);
    report.commands.push(words.join(" "));
    if !run {
        return Ok(());
    }
    let output = Command::new(words[0])
        .args(&words[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::ToolFailed {
            tool: "systemctl".into(),
            reason: format!("cannot run it ({e}); on a machine without systemd use --cron, or write the units with --unit-dir DIR"),
        })?;
    if !output.status.success() {
        return Err(Error::ToolFailed {
            tool: words.join(" "),
            reason: format!(
                "failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Installs the schedules: writes the units (removing those an earlier install for this
/// config wrote for applications it no longer schedules) and enables the timers, or writes
/// the crontab block.
pub fn install(config: &LoadedConfig, options: &ScheduleOptions) -> Result<ScheduleReport> {
    let mut report = report(config, options)?;
    let file = config_path(config)?;
    match &options.target {
        Target::Systemd {
            unit_dir,
            user,
            manage,
        } => {
            for job in &report.jobs {
                if let Some(on_calendar) = &job.on_calendar {
                    check_with_systemd(&job.schedule, on_calendar)?;
                }
            }
            let files: Vec<UnitFile> = report
                .jobs
                .iter()
                .flat_map(|job| unit_files(&file, options, unit_dir, *user, job))
                .collect();
            let stale: Vec<PathBuf> = installed_units(&file, unit_dir)?
                .into_iter()
                .filter(|p| !files.iter().any(|f| Path::new(&f.path) == p))
                .collect();
            for path in &stale {
                if path.extension().is_some_and(|e| e == "timer") {
                    let name = path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    systemctl(*user, &["disable", "--now", &name], &mut report, *manage)?;
                }
                if !options.dry_run {
                    fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                }
                report.removed.push(path.display().to_string());
            }
            if !options.dry_run {
                fs::create_dir_all(unit_dir).map_err(|e| Error::io(unit_dir, e))?;
                for unit in &files {
                    super::state::write_atomically(Path::new(&unit.path), unit.content.as_bytes())?;
                }
            }
            report.written = files;
            if !report.jobs.is_empty() || !stale.is_empty() {
                systemctl(*user, &["daemon-reload"], &mut report, *manage)?;
            }
            let timers: Vec<String> = report
                .jobs
                .iter()
                .map(|j| format!("{}.timer", job_unit_name(j)))
                .collect();
            if !timers.is_empty() {
                let mut args = vec!["enable", "--now"];
                args.extend(timers.iter().map(String::as_str));
                systemctl(*user, &args, &mut report, *manage)?;
            }
            for job in &mut report.jobs {
                job.installed = !options.dry_run;
            }
        }
        Target::Cron => {
            let lines: Vec<&str> = report
                .jobs
                .iter()
                .filter_map(|j| j.cron_line.as_deref())
                .collect();
            let block = format!(
                "{}\n{}\n{}\n",
                block_begin(&file),
                lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
                block_end(&file)
            )
            .replace("\n\n#", "\n#");
            if !options.dry_run {
                let current = read_crontab()?;
                let (without, _) = split_block(&current, &file);
                let mut next = without;
                if !next.is_empty() && !next.ends_with('\n') {
                    next.push('\n');
                }
                next.push_str(&block);
                write_crontab(&next)?;
            }
            report.crontab_block = Some(block);
            for job in &mut report.jobs {
                job.installed = !options.dry_run;
            }
        }
    }
    Ok(report)
}

/// Removes what `install` wrote for this config: the marked unit files (timers disabled
/// first) or the marked crontab block. Nothing else is touched.
pub fn remove(config: &LoadedConfig, options: &ScheduleOptions) -> Result<ScheduleReport> {
    let mut report = report(config, options)?;
    let file = config_path(config)?;
    match &options.target {
        Target::Systemd {
            unit_dir,
            user,
            manage,
        } => {
            let units = installed_units(&file, unit_dir)?;
            for path in &units {
                if path.extension().is_some_and(|e| e == "timer") {
                    let name = path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    systemctl(*user, &["disable", "--now", &name], &mut report, *manage)?;
                }
            }
            for path in &units {
                if !options.dry_run {
                    fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                }
                report.removed.push(path.display().to_string());
            }
            if !units.is_empty() {
                systemctl(*user, &["daemon-reload"], &mut report, *manage)?;
            }
        }
        Target::Cron => {
            let current = read_crontab()?;
            let (without, block) = split_block(&current, &file);
            if let Some(block) = block {
                if !options.dry_run {
                    write_crontab(&without)?;
                }
                report.crontab_block = Some(block);
            }
        }
    }
    Ok(report)
}

/// What is installed for this config, with each job's next runs.
pub fn status(config: &LoadedConfig, options: &ScheduleOptions) -> Result<ScheduleReport> {
    let mut report = report(config, options)?;
    let file = config_path(config)?;
    match &options.target {
        Target::Systemd { unit_dir, .. } => {
            let units = installed_units(&file, unit_dir)?;
            for job in &mut report.jobs {
                let timer = unit_dir.join(format!("{}.timer", job_unit_name(job)));
                job.installed = units.contains(&timer);
            }
            report.written = units
                .iter()
                .map(|p| UnitFile {
                    path: p.display().to_string(),
                    content: fs::read_to_string(p).unwrap_or_default(),
                })
                .collect();
        }
        Target::Cron => {
            let (_, block) = split_block(&read_crontab()?, &file);
            for job in &mut report.jobs {
                job.installed = block.as_deref().is_some_and(|b| {
                    job.cron_line
                        .as_deref()
                        .is_some_and(|l| b.lines().any(|x| x == l))
                });
            }
            report.crontab_block = block;
        }
    }
    Ok(report)
}

/// The crontab without this config's block, and the block.
fn split_block(crontab: &str, config: &Path) -> (String, Option<String>) {
    let (begin, end) = (block_begin(config), block_end(config));
    let mut without = String::new();
    let mut block: Option<String> = None;
    let mut inside = false;
    for line in crontab.lines() {
        if !inside && line == begin {
            inside = true;
            block = Some(String::new());
        }
        if inside {
            let b = block.as_mut().expect("inside a block");
            b.push_str(line);
            b.push('\n');
            if line == end {
                inside = false;
            }
        } else {
            without.push_str(line);
            without.push('\n');
        }
    }
    (without, block)
}

fn read_crontab() -> Result<String> {
    let output = Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::ToolFailed {
            tool: "crontab".into(),
            reason: format!("cannot run it ({e}); install cron (Debian: `apt-get install cron`), or use systemd timers"),
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("no crontab") {
            return Ok(String::new());
        }
        return Err(Error::ToolFailed {
            tool: "crontab -l".into(),
            reason: format!("failed ({}): {}", output.status, stderr.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn write_crontab(text: &str) -> Result<()> {
    let failed = |reason: String| Error::ToolFailed {
        tool: "crontab -".into(),
        reason,
    };
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run it: {e}")))?;
    child
        .stdin
        .take()
        .expect("stdin was piped")
        .write_all(text.as_bytes())
        .map_err(|e| failed(format!("cannot write to it: {e}")))?;
    let output = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(format!(
            "failed ({}): {}; the crontab was not changed",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_lines_have_no_seconds_and_quote_what_cron_and_sh_would_read() {
        assert_eq!(to_cron_fields("0 2 * * *").as_deref(), Ok("0 2 * * *"));
        assert_eq!(to_cron_fields("0 30 2 * * *").as_deref(), Ok("30 2 * * *"));
        assert!(to_cron_fields("*/2 * * * * *").is_err());
        assert_eq!(cron_word("/etc/vault/vault.toml"), "/etc/vault/vault.toml");
        assert_eq!(cron_word("my app's 100%"), "'my app'\\''s 100\\%'");
        assert_eq!(systemd_word("/a b/c%"), "\"/a b/c%%\"");
        assert_eq!(unit_name("cms.prod"), "vault-cms.prod");
        assert_eq!(unit_name("a b"), "vault-a\\x20b");
    }
}
