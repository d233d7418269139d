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

use super::config::{parse_schedule, LoadedConfig};
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

/// Translates a cron expression (5 fields, or 6 with seconds first; `@daily`-style names)
/// into systemd's calendar syntax with the same meaning.
pub fn to_on_calendar(expression: &str) -> std::result::Result<String, String> {
    parse_schedule(expression)?;
    let fields = fields(expression)?;
    let [second, minute, hour, day, month, weekday] = fields.each_ref();
    let cannot = |why: &str| {
        format!("{expression:?} cannot be written as a systemd calendar: {why}; write the schedule another way, or use `vault daemon` or --cron")
    };
    if day != "*" && day != "?" && weekday != "*" && weekday != "?" {
        return Err(cannot(
            "cron runs when the day of the month OR the day of the week matches, systemd when both do",
        ));
    }
    let numbers =
        |field: &str, first: u32, names: &[&str]| -> std::result::Result<String, String> {
            field
                .split(',')
                .map(|item| numeric_item(item, first, names).map_err(|e| cannot(&e)))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(|items| items.join(","))
        };
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let date = format!(
        "*-{}-{}",
        numbers(month, 1, &MONTHS)?,
        numbers(day, 1, &[])?
    );
    let time = format!(
        "{}:{}:{}",
        numbers(hour, 0, &[])?,
        numbers(minute, 0, &[])?,
        numbers(second, 0, &[])?
    );
    let weekdays = weekdays(weekday).map_err(|e| cannot(&e))?;
    Ok(match weekdays {
        Some(days) => format!("{days} {date} {time}"),
        None => format!("{date} {time}"),
    })
}

/// The six fields (seconds first) of a cron expression.
fn fields(expression: &str) -> std::result::Result<[String; 6], String> {
    let expanded = match expression.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let mut fields: Vec<String> = expanded
        .split_whitespace()
        .map(|f| f.to_ascii_uppercase())
        .collect();
    if fields.len() == 5 {
        fields.insert(0, "0".into());
    }
    fields
        .try_into()
        .map_err(|_| format!("{expression:?}: expected 5 or 6 fields"))
}

/// One item of a numeric field (`*`, `N`, `A-B`, `*/S`, `A/S`, `A-B/S`, or a name) in systemd
/// syntax. `first` is the field's lowest value (0 or 1).
fn numeric_item(item: &str, first: u32, names: &[&str]) -> std::result::Result<String, String> {
    let value = |text: &str| -> std::result::Result<u32, String> {
        if let Some(i) = names.iter().position(|n| *n == text) {
            return Ok(first + i as u32);
        }
        text.parse()
            .map_err(|_| format!("{item:?} is not a plain value, range or step"))
    };
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(value(step)?)),
        None => (item, None),
    };
    let range = match range {
        "*" | "?" if step.is_some() => format!("{first:02}"),
        "*" | "?" => "*".to_string(),
        _ => match range.split_once('-') {
            Some((a, b)) => format!("{:02}..{:02}", value(a)?, value(b)?),
            None => format!("{:02}", value(range)?),
        },
    };
    Ok(match step {
        Some(step) => format!("{range}/{step}"),
        None => range,
    })
}

/// The weekday field as systemd day names; `None` for every day.
fn weekdays(field: &str) -> std::result::Result<Option<String>, String> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    if field == "*" || field == "?" {
        return Ok(None);
    }
    let day = |text: &str| -> std::result::Result<usize, String> {
        if let Some(i) = DAYS.iter().position(|d| d.eq_ignore_ascii_case(text)) {
            return Ok(i);
        }
        match text.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(n % 7),
            _ => Err(format!(
                "{text:?} is not a day of the week (0-7 or SUN-SAT)"
            )),
        }
    };
    let mut chosen = [false; 7];
    for item in field.split(',') {
        if item.contains(['/', '#', 'L']) {
            return Err(format!(
                "the day-of-week item {item:?} (steps, L and # are not translated)"
            ));
        }
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, if b == "7" { 7 } else { day(b)? });
                if a > b {
                    return Err(format!("the day-of-week range {item:?} runs backwards"));
                }
                for d in a..=b {
                    chosen[d % 7] = true;
                }
            }
            None => chosen[day(item)?] = true,
        }
    }
    // systemd's week starts on Monday.
    let names: Vec<&str> = (1..=7)
        .map(|d| d % 7)
        .filter(|&d| chosen[d])
        .map(|d| DAYS[d])
        .collect();
    Ok(Some(names.join(",")))
}

/// The cron line's five fields: the expression without its seconds, which cron does not have.
pub fn to_cron_fields(expression: &str) -> std::result::Result<String, String> {
    parse_schedule(expression)?;
    let fields = fields(expression)?;
    if fields[0] != "0" {
        return Err(format!(
            "{expression:?} has a seconds field, which cron does not have; use a 5-field schedule, systemd timers, or `vault daemon`"
        ));
    }
    Ok(fields[1..].join(" ").to_ascii_lowercase())
}

/// The next `count` run times of `expression` after now (RFC 3339, local time zone).
pub fn next_runs(expression: &str, count: usize) -> Vec<String> {
    parse_schedule(expression)
        .map(|cron| {
            cron.iter_after(jiff::Zoned::now())
                .take(count)
                .map(|t| t.timestamp().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a translation with `systemd-analyze calendar` when it is installed: its next runs
/// must be croner's.
pub fn check_with_systemd(expression: &str, on_calendar: &str) -> Result<()> {
    let Ok(output) = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=4", on_calendar])
        .stdin(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    let failed = |reason: String| Error::ToolFailed {
        tool: "systemd-analyze calendar".into(),
        reason,
    };
    if !output.status.success() {
        return Err(failed(format!(
            "rejects OnCalendar={on_calendar} (from {expression:?}): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let theirs: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (label, value) = l.split_once(": ")?;
            let label = label.trim();
            (label == "Next elapse" || label.starts_with("Iter.")).then(|| {
                // "Mon 2026-12-07 20:30:00 UTC": the date and time.
                value
                    .split_whitespace()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .collect();
    let cron = parse_schedule(expression).map_err(|e| Error::invalid("schedule", e))?;
    let start = jiff::Zoned::now() - jiff::SignedDuration::from_secs(2);
    let ours: Vec<String> = cron
        .iter_after(start)
        .take(theirs.len() + 3)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .collect();
    let matches = (0..=3).any(|skip| {
        ours.len() >= skip + theirs.len() && ours[skip..skip + theirs.len()] == theirs[..]
    });
    if theirs.is_empty() || !matches {
        return Err(failed(format!(
            "OnCalendar={on_calendar} runs at {theirs:?}, but {expression:?} at {ours:?}; this is a bug in vault's translation: please report it, and use --cron or `vault daemon` meanwhile"
        )));
    }
    Ok(())
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

/// The command a job runs: `vault run --config PATH [--state-dir DIR] APP`.
fn job_command(config: &Path, options: &ScheduleOptions, app: &str) -> Vec<String> {
    let mut words = vec![
        options.binary.display().to_string(),
        "run".into(),
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
        let Some(schedule) = &app.get_ref().schedule else {
            unscheduled.push(name.clone());
            continue;
        };
        let schedule = schedule.get_ref().clone();
        let translated = |r: std::result::Result<String, String>| {
            r.map_err(|e| Error::invalid(format!("applications.{name}.schedule"), e))
        };
        let (on_calendar, cron_line) = match options.target {
            Target::Systemd { .. } => (Some(translated(to_on_calendar(&schedule))?), None),
            Target::Cron => {
                let fields = translated(to_cron_fields(&schedule))?;
                let command: Vec<String> = job_command(&file, options, name)
                    .iter()
                    .map(|w| cron_word(w))
                    .collect();
                (None, Some(format!("{fields} {}", command.join(" "))))
            }
        };
        jobs.push(ScheduledJob {
            app: name.clone(),
            next_runs: next_runs(&schedule, 3),
            schedule,
            on_calendar,
            cron_line,
            installed: false,
        });
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
    let name = unit_name(&job.app);
    let network = if user {
        ""
    } else {
        "Wants=network-online.target\nAfter=network-online.target\n"
    };
    let command: Vec<String> = job_command(config, options, &job.app)
        .iter()
        .map(|w| systemd_word(w))
        .collect();
    let service = format!(
        "{}\n[Unit]\nDescription=vault backup job of application {}\n{network}\n[Service]\nType=oneshot\nExecStart={}\nNice=10\nIOSchedulingClass=idle\n",
        marker(config),
        job.app,
        command.join(" ")
    );
    let timer = format!(
        "{}\n[Unit]\nDescription=Schedule of the vault backup job of application {} ({})\n\n[Timer]\nOnCalendar={}\nPersistent=true\nUnit={name}.service\n\n[Install]\nWantedBy=timers.target\n",
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
                .map(|j| format!("{}.timer", unit_name(&j.app)))
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
                let timer = unit_dir.join(format!("{}.timer", unit_name(&job.app)));
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
    fn cron_expressions_become_systemd_calendars_with_the_same_meaning() {
        let cases = [
            ("0 2 * * *", "*-*-* 02:00:00"),
            ("30 1,13 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 01,13:30:00"),
            ("*/15 * * * *", "*-*-* *:00/15:00"),
            ("0 3 1 */2 *", "*-01/2-01 03:00:00"),
            ("0 4 * * 0", "Sun *-*-* 04:00:00"),
            ("0 4 * * 7", "Sun *-*-* 04:00:00"),
            ("0 4 * * sat,sun", "Sat,Sun *-*-* 04:00:00"),
            ("*/2 * * * * *", "*-*-* *:*:00/2"),
            ("0 0 8-18/2 * * *", "*-*-* 08..18/2:00:00"),
            ("@daily", "*-*-* 00:00:00"),
            ("0 2 1 jan *", "*-01-01 02:00:00"),
        ];
        for (cron, systemd) in cases {
            assert_eq!(to_on_calendar(cron).as_deref(), Ok(systemd), "{cron}");
        }
        let error = to_on_calendar("0 2 1 * 1").unwrap_err();
        assert!(error.contains("OR"), "{error}");
        assert!(to_on_calendar("0 2 * * 5L").is_err());
    }

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
