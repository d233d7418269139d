//! `vault run`: an application's whole job, in order, through the engine's own operations.
//!
//! ```text
//! lock app (skip if running) -> lock repository (wait) -> open
//!   -> snapshot (database dumps as command streams, then the paths; label app=NAME)
//!   -> forget (the app's retention)   -> prune (when due)
//!   -> copy to each off-site repository -> forget there (its retention)
//!   -> verify (the next slice of the cycle)
//! -> history line, summary, metrics textfile
//! ```
//! Dependencies between steps: forget and copy need the snapshot; prune needs the forget; the
//! off-site forget needs its copy. A failed step skips the steps that need it (reported as
//! `skipped`, with the step that failed); verify needs nothing and always runs once the
//! repository is open. Nothing a failed step did is undone, and nothing it did not reach is
//! touched: a failed dump commits no snapshot (the snapshot pipeline's rule), so earlier
//! snapshots stay as they were.

use std::time::Instant;

use jiff::Timestamp;

use super::config::{
    parse_duration, parse_read_subset, select_apps, ApplicationConfig, LoadedConfig, ReadSubset,
};
use super::config::{HooksConfig, NotifyConfig};
use super::databases;
use super::hooks::{run_hook, write_report_file, HookContext};
use super::notify::{self, Ping};
use super::report::NotificationReport;
use super::report::SnapshotRecord;
pub use super::report::{AppRunReport, RunReport, RunResult, StepReport, StepStatus};
use super::state::{AppState, StateDir, VerifyState};
use super::steps::{apply_retention, copy_new_snapshots, label_value};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::prune::{self, PruneOptions};
use crate::repo::Repository;
use crate::snapshot::{self, OwnDir, SnapshotOptions, StreamSource};
use crate::storage::{self, Location, ObjectKind, RemoteOptions};
use crate::verify::{self, ReadData, VerifyOptions};

/// A hook running longer than this is killed, unless `hooks.timeout` says otherwise.
pub const DEFAULT_HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// How `vault run` reaches repositories and keeps its state.
pub struct RunOptions {
    /// Applications to run, in this order; empty: every application, in name order.
    pub apps: Vec<String>,
    pub cache_root: std::path::PathBuf,
    /// Remote settings; a repository's `connections` overrides its own.
    pub remote: RemoteOptions,
    pub state: StateDir,
}

/// Runs the selected applications one after another, recording each run.
pub fn run(
    config: &LoadedConfig,
    options: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunReport> {
    let apps = select_apps(config, &options.apps)?;
    let mut report = RunReport {
        config: config.file.display().to_string(),
        state_dir: options.state.root().display().to_string(),
        apps: Vec::new(),
    };
    for app in apps {
        let Some(_lock) = options.state.try_lock_app(&app)? else {
            let skipped = AppRunReport {
                app: app.clone(),
                repository: config
                    .application(&app)
                    .expect("selected")
                    .repository
                    .get_ref()
                    .clone(),
                started: Timestamp::now().to_string(),
                duration_secs: 0.0,
                result: RunResult::Skipped,
                failed_step: None,
                message: format!("a job of {app:?} is running already; this run was skipped"),
                steps: Vec::new(),
                notifications: Vec::new(),
            };
            options.state.append_history(&skipped)?;
            report.apps.push(skipped);
            continue;
        };
        let hooks = config.hooks(&app);
        let notify = config.notify(&app);
        let mut job = Job::new(config, options, &app, progress)?;
        let sent = notify::ping(&notify, Ping::Start, b"")
            .into_iter()
            .collect();
        if job.hook(&hooks, "before") {
            job.run_steps();
            job.hook(&hooks, "after");
        } else {
            let repository = job.repository_name();
            job.skip(
                "snapshot",
                &repository,
                "skipped: the before hook failed; nothing was written".into(),
            );
        }
        if job.report().result == RunResult::Failed {
            job.hook(&hooks, "on_failure");
        }
        let app_report = job.finish(&notify, sent)?;
        report.apps.push(app_report);
        if let Some(textfile) = &config.config.metrics.textfile {
            super::metrics::write(config, &options.state, textfile)?;
        }
    }
    Ok(report)
}

/// One application's job in progress.
struct Job<'a> {
    config: &'a LoadedConfig,
    options: &'a RunOptions,
    name: &'a str,
    app: &'a ApplicationConfig,
    progress: &'a dyn Progress,
    state: AppState,
    started: Timestamp,
    clock: Instant,
    steps: Vec<StepReport>,
    repo: Option<Repository>,
}

impl<'a> Job<'a> {
    fn new(
        config: &'a LoadedConfig,
        options: &'a RunOptions,
        name: &'a str,
        progress: &'a dyn Progress,
    ) -> Result<Job<'a>> {
        let app = config.application(name).expect("selected");
        let mut state = options.state.read_summary(name)?.unwrap_or_default();
        state.app = name.to_string();
        state.repository = app.repository.get_ref().clone();
        Ok(Job {
            config,
            options,
            name,
            app,
            progress,
            state,
            started: Timestamp::now(),
            clock: Instant::now(),
            steps: Vec::new(),
            repo: None,
        })
    }

    fn repository_name(&self) -> String {
        self.app.repository.get_ref().clone()
    }

    fn record(
        &mut self,
        step: &str,
        repository: &str,
        started: Instant,
        outcome: std::result::Result<StepReport, String>,
    ) -> bool {
        let mut report = outcome.unwrap_or_else(|message| StepReport {
            step: step.into(),
            repository: repository.into(),
            status: StepStatus::Failed,
            message,
            duration_secs: 0.0,
            snapshot: None,
            snapshots: None,
            bytes: None,
        });
        report.duration_secs = started.elapsed().as_secs_f64();
        let ok = report.status == StepStatus::Ok;
        self.steps.push(report);
        ok
    }

    fn skip(&mut self, step: &str, repository: &str, message: String) {
        self.steps.push(StepReport {
            step: step.into(),
            repository: repository.into(),
            status: StepStatus::Skipped,
            message,
            duration_secs: 0.0,
            snapshot: None,
            snapshots: None,
            bytes: None,
        });
    }

    /// Runs every step in order, skipping those whose input failed.
    fn run_steps(&mut self) {
        let repository = self.repository_name();
        let location = self.config.repository(&repository).location.clone();
        let _repo_lock = match self.options.state.lock_repository(&location) {
            Ok(lock) => lock,
            Err(e) => {
                self.record("snapshot", &repository, Instant::now(), Err(e.to_string()));
                return;
            }
        };
        let started = Instant::now();
        match open(self.config, &repository, self.options) {
            Ok(repo) => self.repo = Some(repo),
            Err(e) => {
                self.record("snapshot", &repository, started, Err(e));
                return;
            }
        }
        let snapshot_ok = self.snapshot_step();
        let forget_ok = if snapshot_ok {
            self.forget_step()
        } else {
            self.skip(
                "forget",
                &repository,
                "skipped: the snapshot step failed".into(),
            );
            false
        };
        if self.app.prune.is_some() {
            if forget_ok {
                self.prune_step();
            } else {
                self.skip(
                    "prune",
                    &repository,
                    "skipped: the snapshot or forget step failed".into(),
                );
            }
        }
        for index in 0..self.app.copy_to.len() {
            let target = self.app.copy_to[index].repository.get_ref().clone();
            if snapshot_ok {
                self.copy_step(index);
            } else {
                self.skip("copy", &target, "skipped: the snapshot step failed".into());
            }
        }
        if self.app.verify.is_some() {
            self.verify_step();
        }
    }

    fn repo(&self) -> &Repository {
        self.repo.as_ref().expect("opened before the steps")
    }

    fn snapshot_step(&mut self) -> bool {
        let started = Instant::now();
        let outcome = self.take_snapshot();
        let repository = self.repository_name();
        self.record("snapshot", &repository, started, outcome)
    }

    fn take_snapshot(&mut self) -> std::result::Result<StepReport, String> {
        let timeout = self
            .app
            .dump_timeout
            .as_ref()
            .map(|d| parse_duration(d.get_ref()))
            .transpose()?;
        let mut streams = Vec::new();
        for database in &self.app.databases {
            let dump = databases::dump(database)?;
            streams.push(StreamSource::command(dump.stored_as, dump.command, timeout));
        }
        let mut labels = vec![("app".to_string(), self.name.to_string())];
        for (key, source) in &self.app.labels {
            labels.push((key.clone(), label_value(key, source)?));
        }
        let mut own_dirs = vec![OwnDir {
            what: "cache",
            path: self.options.cache_root.clone(),
        }];
        let repository = self.repository_name();
        if let Ok(Location::Local(path)) =
            Location::parse(&self.config.repository(&repository).location)
        {
            own_dirs.push(OwnDir {
                what: "repository",
                path,
            });
        }
        let options = SnapshotOptions {
            streams,
            paths: self.app.paths.clone(),
            labels,
            excludes: self.app.excludes.clone(),
            own_dirs,
            ..Default::default()
        };
        let report =
            snapshot::run(self.repo(), options, self.progress).map_err(|e| e.to_string())?;
        let summary = &report.manifest.summary;
        let record = SnapshotRecord {
            id: report.id.to_hex(),
            time: report.manifest.time.clone(),
            bytes_added: summary.bytes_added,
            files: summary.files,
        };
        if !report.manifest.complete {
            let first = summary
                .errors
                .first()
                .map(|p| format!(": {}: {}", p.path, p.reason))
                .unwrap_or_default();
            return Err(format!(
                "snapshot {} was saved INCOMPLETE with {} source problem(s){first}",
                report.id.short(),
                summary.errors.len()
            ));
        }
        self.state.newest_snapshot = Some(record.clone());
        Ok(StepReport {
            step: "snapshot".into(),
            repository,
            status: StepStatus::Ok,
            message: format!(
                "snapshot {} saved: {} files, {} database dump(s), {} bytes added",
                report.id.short(),
                summary.files,
                self.app.databases.len(),
                summary.bytes_added
            ),
            duration_secs: 0.0,
            snapshot: Some(record),
            snapshots: None,
            bytes: Some(summary.bytes_added),
        })
    }

    fn forget_step(&mut self) -> bool {
        let repository = self.repository_name();
        let Some(retention) = self.app.retention.clone() else {
            self.skip(
                "forget",
                &repository,
                "no retention configured: every snapshot is kept".into(),
            );
            return true;
        };
        let started = Instant::now();
        let outcome = apply_retention(self.repo(), self.name, &retention).map(|forgotten| {
            ok_step(
                "forget",
                &repository,
                format!("{forgotten} snapshot(s) forgotten"),
                Some(forgotten),
                None,
            )
        });
        self.record("forget", &repository, started, outcome)
    }

    fn prune_step(&mut self) {
        let repository = self.repository_name();
        let config = self.app.prune.clone().expect("prune configured");
        let every = config
            .every
            .as_ref()
            .and_then(|e| parse_duration(e.get_ref()).ok());
        let last: Option<Timestamp> = self
            .state
            .last_prune
            .as_deref()
            .and_then(|t| t.parse().ok());
        if let (Some(every), Some(last)) = (every, last) {
            let due = last + jiff::SignedDuration::try_from(every).unwrap_or_default();
            if Timestamp::now() < due {
                self.skip(
                    "prune",
                    &repository,
                    format!(
                        "not due until {due} (every {})",
                        config.every.as_ref().expect("set").get_ref()
                    ),
                );
                return;
            }
        }
        let started = Instant::now();
        let options = PruneOptions {
            max_unused: config
                .max_unused
                .unwrap_or(PruneOptions::default().max_unused),
            ..PruneOptions::default()
        };
        let outcome = prune::run(self.repo(), &options, self.progress)
            .map_err(|e| e.to_string())
            .map(|r| {
                ok_step(
                    "prune",
                    &repository,
                    format!(
                        "{} snapshot(s) deleted, {} pack(s) deleted, {} bytes freed",
                        r.snapshots_deleted,
                        r.packs_deleted + r.packs_repacked,
                        r.bytes_freed
                    ),
                    Some(r.snapshots_deleted),
                    Some(r.bytes_freed),
                )
            });
        if self.record("prune", &repository, started, outcome) {
            self.state.last_prune = Some(Timestamp::now().to_string());
        }
    }

    fn copy_step(&mut self, index: usize) {
        let target = self.app.copy_to[index].clone();
        let name = target.repository.get_ref().clone();
        let started = Instant::now();
        let outcome = open(self.config, &name, self.options).and_then(|dest| {
            let copied = copy_new_snapshots(self.repo(), &dest, self.name, self.progress)?;
            Ok((dest, copied))
        });
        let (dest, report) = match outcome {
            Ok(pair) => pair,
            Err(e) => {
                self.record("copy", &name, started, Err(e));
                self.skip("forget-copy", &name, "skipped: the copy step failed".into());
                return;
            }
        };
        self.record(
            "copy",
            &name,
            started,
            Ok(ok_step(
                "copy",
                &name,
                format!(
                    "{} snapshot(s) copied, {} bytes stored",
                    report.copied.len(),
                    report.bytes_stored
                ),
                Some(report.copied.len() as u64),
                Some(report.bytes_stored),
            )),
        );
        let Some(retention) = target
            .retention
            .clone()
            .or_else(|| self.app.retention.clone())
        else {
            self.skip(
                "forget-copy",
                &name,
                "no retention configured: every copy is kept".into(),
            );
            return;
        };
        let started = Instant::now();
        let outcome = apply_retention(&dest, self.name, &retention).map(|n| {
            ok_step(
                "forget-copy",
                &name,
                format!("{n} snapshot(s) forgotten"),
                Some(n),
                None,
            )
        });
        self.record("forget-copy", &name, started, outcome);
    }

    fn verify_step(&mut self) {
        let repository = self.repository_name();
        let config = self.app.verify.clone().expect("verify configured");
        let subset =
            parse_read_subset(config.read_data_subset.get_ref()).unwrap_or(ReadSubset::None);
        let mut cycle = self.state.verify.clone().unwrap_or_default();
        let slices = match subset {
            ReadSubset::None => 0,
            ReadSubset::All => 1,
            ReadSubset::Cycle(n) => n,
        };
        if cycle.slices != slices || cycle.next_slice == 0 || cycle.next_slice > slices.max(1) {
            cycle = VerifyState {
                slices,
                next_slice: 1,
                ..VerifyState::default()
            };
        }
        let read_data = match subset {
            ReadSubset::None => ReadData::None,
            ReadSubset::All => ReadData::All,
            ReadSubset::Cycle(m) => ReadData::Slice {
                n: cycle.next_slice,
                m,
            },
        };
        let started = Instant::now();
        let options = VerifyOptions {
            read_data,
            snapshot: None,
        };
        let outcome = verify::run(self.repo(), &options, self.progress);
        let now = Timestamp::now().to_string();
        let outcome = outcome.map_err(|e| e.to_string()).and_then(|report| {
            cycle.last_time = Some(now.clone());
            cycle.last_clean = Some(report.is_clean());
            if slices > 0 {
                cycle.slices_done += 1;
                cycle.next_slice = cycle.next_slice % slices + 1;
                if cycle.slices_done >= slices {
                    cycle.last_cycle_completed = Some(now.clone());
                    cycle.slices_done = 0;
                }
            }
            let what = match read_data {
                ReadData::Slice { n, m } => format!("slice {n}/{m} of the packs read"),
                ReadData::All => "every pack read".into(),
                _ => "structure checked, no pack data read".into(),
            };
            if report.is_clean() {
                Ok(ok_step("verify", &repository, format!("{what}: no problem ({} bytes read)", report.bytes_read), None, Some(report.bytes_read)))
            } else {
                let first = report.problems.first().map(|p| format!(": {}", p.detail)).unwrap_or_default();
                Err(format!("{what}: {} problem(s){first}; run `vault verify` on this repository for the details", report.problems.len()))
            }
        });
        self.state.verify = Some(cycle);
        self.record("verify", &repository, started, outcome);
    }

    /// Runs hook `which` (`before`, `after`, `on_failure`) when the config has it, as a step;
    /// false when it failed.
    fn hook(&mut self, hooks: &HooksConfig, which: &str) -> bool {
        let command = match which {
            "before" => &hooks.before,
            "after" => &hooks.after,
            _ => &hooks.on_failure,
        };
        let Some(command) = command.clone() else {
            return true;
        };
        let timeout = hooks
            .timeout
            .as_ref()
            .and_then(|t| parse_duration(t.get_ref()).ok())
            .unwrap_or(DEFAULT_HOOK_TIMEOUT);
        let started = Instant::now();
        let context = if which == "before" {
            self.hook_context(None)
        } else {
            let report = self.report();
            self.write_report_file(&report)
                .and_then(|path| self.hook_context(Some((&report, path))))
        };
        let repository = self.repository_name();
        let outcome = context
            .map_err(|e| format!("{which} hook: {e}"))
            .and_then(|context| run_hook(which, &command, &context, None, timeout))
            .map(|message| ok_step(which, &repository, message, None, None));
        self.record(which, &repository, started, outcome)
    }

    fn hook_context(
        &self,
        finished: Option<(&AppRunReport, String)>,
    ) -> std::result::Result<HookContext, String> {
        let mut context = HookContext {
            app: self.name.to_string(),
            config: self.config.file.display().to_string(),
            ..HookContext::default()
        };
        if let Some((report, path)) = finished {
            context.result = if report.result == RunResult::Ok {
                "ok"
            } else {
                "failed"
            }
            .into();
            context.failed_step = report.failed_step.clone().unwrap_or_default();
            context.report = path;
        }
        Ok(context)
    }

    fn write_report_file(&self, report: &AppRunReport) -> std::result::Result<String, String> {
        let json = serde_json::to_vec_pretty(report).expect("reports serialize");
        let dir = self.options.state.root().join("reports");
        write_report_file(&dir, self.name, &json).map_err(|e| e.to_string())
    }

    /// The job's report as its steps stand.
    fn report(&self) -> AppRunReport {
        let failed = self.steps.iter().find(|s| s.status == StepStatus::Failed);
        let result = if failed.is_some() {
            RunResult::Failed
        } else {
            RunResult::Ok
        };
        let message = match failed {
            Some(step) => format!("step {} failed: {}", step.step, step.message),
            None => format!(
                "{} step(s) done",
                self.steps
                    .iter()
                    .filter(|s| s.status == StepStatus::Ok)
                    .count()
            ),
        };
        AppRunReport {
            app: self.name.to_string(),
            repository: self.repository_name(),
            started: self.started.to_string(),
            duration_secs: self.clock.elapsed().as_secs_f64(),
            result,
            failed_step: failed.map(|s| s.step.clone()),
            message,
            steps: self.steps.clone(),
            notifications: Vec::new(),
        }
    }

    /// Sends the notifications, records the run (history line, then the summary) and returns
    /// its report. `sent`: the notifications sent already (the start ping).
    fn finish(
        mut self,
        notify: &NotifyConfig,
        mut sent: Vec<NotificationReport>,
    ) -> Result<AppRunReport> {
        let mut report = self.report();
        let result = report.result;
        let context = self
            .write_report_file(&report)
            .and_then(|path| self.hook_context(Some((&report, path))));
        match context {
            Ok(context) => sent.extend(notify::finished(notify, &report, &context)),
            Err(e) => sent.push(NotificationReport {
                kind: "report".into(),
                target: self.options.state.root().display().to_string(),
                ok: false,
                message: format!("the job report could not be written for the notifications: {e}"),
            }),
        }
        report.notifications = sent;
        let _ = self.write_report_file(&report);
        if result == RunResult::Ok {
            self.state.last_success = Some(self.started.to_string());
        }
        if let Some(repo) = &self.repo {
            if let Ok(packs) = repo.backend().list(ObjectKind::Pack) {
                self.state.repository_size_bytes = Some(packs.iter().map(|p| p.size).sum());
            }
        }
        self.state.last_run = Some(report.clone());
        self.state.runs += 1;
        self.options.state.append_history(&report)?;
        self.options.state.write_summary(&self.state)?;
        Ok(report)
    }
}

fn ok_step(
    step: &str,
    repository: &str,
    message: String,
    snapshots: Option<u64>,
    bytes: Option<u64>,
) -> StepReport {
    StepReport {
        step: step.into(),
        repository: repository.into(),
        status: StepStatus::Ok,
        message,
        duration_secs: 0.0,
        snapshot: None,
        snapshots,
        bytes,
    }
}

/// Opens the configured repository `name`: its own password source, and never a password for
/// a repository that turns out not to be encrypted (the config would be wrong about it).
pub fn open(
    config: &LoadedConfig,
    name: &str,
    options: &RunOptions,
) -> std::result::Result<Repository, String> {
    let r = config.repository(name);
    let context = |e: Error| format!("repository {name:?} ({}): {e}", r.location);
    let location = Location::parse(&r.location).map_err(context)?;
    let mut remote = options.remote.clone();
    if let Some(connections) = r.connections {
        remote.connections = connections.into();
    }
    let backend = storage::open(&location, &remote).map_err(context)?;
    let source = r.password_source();
    let password = || {
        match &source {
        Some(source) => source.read().map_err(|reason| Error::Password {
            source_name: format!("repository {name:?}"),
            reason,
        }),
        None => Err(Error::invalid(
            "encryption",
            format!("the repository is encrypted but the config says encryption = \"none\"; give [repositories.{name}] a password_file, password_command or password_env"),
        )),
    }
    };
    let repo = Repository::unlock(backend, &options.cache_root, &password).map_err(context)?;
    if source.is_some() && !repo.encryption().is_on() {
        return Err(format!(
            "repository {name:?} ({}) is not encrypted, but the config gives it a password source; if that is intended, state encryption = \"none\" and remove the password source, else point location at the encrypted repository",
            r.location
        ));
    }
    Ok(repo)
}
