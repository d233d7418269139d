//! `vault daemon`: the applications' schedules run in the foreground, for containers.
//!
//! Input: the config, the applications to schedule (those with a `schedule`), and a stop
//! flag the caller sets on SIGINT or SIGTERM. Output: one [`DaemonEvent`] per job or skipped
//! slot, through a callback (the engine never prints).
//!
//! ```text
//! next run of each app (croner) ─► sleep until the earliest (waking to check the stop flag)
//!   ─► run::run(that app) ─► slots of it that passed while it ran: one skipped record
//!   ─► its next run after now
//! ```
//! Jobs run one at a time, so jobs on one repository never overlap; a job of the same
//! application started elsewhere (`vault run`) holds its lock, and the daemon's run is then
//! skipped and recorded by `run`. The stop flag is read between jobs and while sleeping: a
//! job that has started finishes first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::{Timestamp, Zoned};

use super::config::select_apps;
use super::config::{parse_schedule, LoadedConfig};
use super::report::{AppRunReport, RunResult};
use super::run::{self, RunOptions};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// The longest sleep between two looks at the stop flag.
const WAKE: Duration = Duration::from_millis(200);

/// Which command a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Run,
    RestoreTest,
}

/// What the daemon did.
#[derive(Debug, Clone)]
pub enum DaemonEvent {
    /// Scheduling these applications; their first runs.
    Started { apps: Vec<(String, String)> },
    /// A job ran (or was skipped because its application's job was running elsewhere).
    Ran(AppRunReport),
    /// Scheduled runs that came while the previous run of the same application was going.
    Missed(AppRunReport),
    /// A restore test ran (`restore_test.schedule`).
    Tested(super::restore_test::RestoreTestReport),
    /// The stop flag was seen; the daemon returns.
    Stopping,
}

/// Runs the schedules of `options.apps` (every scheduled application when empty) until
/// `stop` is set.
pub fn daemon(
    config: &LoadedConfig,
    options: &RunOptions,
    stop: &AtomicBool,
    progress: &dyn Progress,
    on_event: &mut dyn FnMut(&DaemonEvent),
) -> Result<()> {
    let mut schedules = Vec::new();
    for app in select_apps(config, &options.apps)? {
        let test = config
            .application(&app)
            .and_then(|a| a.restore_test.as_ref())
            .and_then(|t| t.schedule.as_ref());
        if let Some(s) = test {
            let cron = parse_schedule(s.get_ref()).map_err(|e| {
                Error::invalid(format!("applications.{app}.restore_test.schedule"), e)
            })?;
            schedules.push((app.clone(), cron, Job::RestoreTest));
        }
        let schedule = config.application(&app).and_then(|a| a.schedule.as_ref());
        match schedule {
            Some(s) => {
                let cron = parse_schedule(s.get_ref())
                    .map_err(|e| Error::invalid(format!("applications.{app}.schedule"), e))?;
                schedules.push((app, cron, Job::Run));
            }
            None if test.is_some() => {}
            None if options.apps.is_empty() => {}
            None => {
                return Err(Error::invalid(
                    "vault daemon",
                    format!("application {app:?} has no schedule; give it a schedule key, or run it with `vault run {app}`"),
                ))
            }
        }
    }
    if schedules.is_empty() {
        return Err(Error::invalid(
            "vault daemon",
            format!(
                "no application in {} has a schedule; add schedule = \"0 2 * * *\" (cron) to one",
                config.file.display()
            ),
        ));
    }
    let next_after =
        |cron: &croner::Cron, after: &Zoned| cron.find_next_occurrence(after, false).ok();
    let now = Zoned::now();
    let mut next: Vec<Option<Zoned>> = schedules
        .iter()
        .map(|(_, c, _)| next_after(c, &now))
        .collect();
    on_event(&DaemonEvent::Started {
        apps: schedules
            .iter()
            .zip(&next)
            .map(|((app, _, job), at)| {
                (
                    match job {
                        Job::Run => app.clone(),
                        Job::RestoreTest => format!("{app} (restore test)"),
                    },
                    at.as_ref()
                        .map_or("never".into(), |t| t.timestamp().to_string()),
                )
            })
            .collect(),
    });
    loop {
        if stop.load(Ordering::SeqCst) {
            on_event(&DaemonEvent::Stopping);
            return Ok(());
        }
        let Some(index) = (0..next.len())
            .filter(|&i| next[i].is_some())
            .min_by_key(|&i| next[i].as_ref().map(Zoned::timestamp))
        else {
            // No schedule has a future run: wait for the stop flag.
            std::thread::sleep(WAKE);
            continue;
        };
        let due = next[index].clone().expect("filtered");
        let wait = due.timestamp().duration_since(Timestamp::now());
        if wait.is_positive() {
            std::thread::sleep(Duration::try_from(wait).unwrap_or(WAKE).min(WAKE));
            continue;
        }
        let (app, cron, kind) = &schedules[index];
        let job = RunOptions {
            apps: vec![app.clone()],
            cache_root: options.cache_root.clone(),
            remote: options.remote.clone(),
            state: options.state.clone(),
        };
        if *kind == Job::RestoreTest {
            let report = super::restore_test::restore_test(config, &job, progress)?;
            for tested in report.apps {
                on_event(&DaemonEvent::Tested(tested));
            }
            next[index] = next_after(cron, &Zoned::now());
            continue;
        }
        let report = run::run(config, &job, progress)?;
        for ran in report.apps {
            on_event(&DaemonEvent::Ran(ran));
        }
        let now = Zoned::now();
        let mut missed = 0;
        let mut slot = next_after(cron, &due);
        while let Some(t) = slot.filter(|t| t.timestamp() <= now.timestamp()) {
            missed += 1;
            slot = next_after(cron, &t);
        }
        if missed > 0 {
            let record = AppRunReport {
                app: app.clone(),
                repository: config
                    .application(app)
                    .map(|a| a.repository.get_ref().clone())
                    .unwrap_or_default(),
                started: now.timestamp().to_string(),
                duration_secs: 0.0,
                result: RunResult::Skipped,
                failed_step: None,
                message: format!(
                    "{missed} scheduled run(s) skipped: the previous run of {app:?} (due {}) was still running",
                    due.timestamp()
                ),
                steps: Vec::new(),
                notifications: Vec::new(),
            };
            options.state.append_history(&record)?;
            on_event(&DaemonEvent::Missed(record));
        }
        next[index] = next_after(cron, &now);
    }
}
