//! `vault status`: each application's state from the state directory, never the repository.
//!
//! Input: the config and the state directory. Output: a [`StatusReport`]; an application is
//! `failed` when its last run failed, `stale` when its newest snapshot (or, before any, the
//! config) is older than its threshold, `never_run` when nothing is recorded.

use jiff::Timestamp;
use serde::Serialize;

use super::config::{select_apps, stale_after, LoadedConfig};
use super::report::{AppRunReport, RunResult, SnapshotRecord, StepStatus};
use super::state::{StateDir, VerifyState};
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct StepSummary {
    pub step: String,
    pub repository: String,
    pub status: StepStatus,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub started: String,
    pub duration_secs: f64,
    pub result: RunResult,
    pub failed_step: Option<String>,
    pub message: String,
    pub steps: Vec<StepSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewestSnapshot {
    #[serde(flatten)]
    pub record: SnapshotRecord,
    pub age_secs: u64,
}

/// One application's status.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    pub app: String,
    pub repository: String,
    /// `ok`, `failed`, `restore_test_failed`, `stale` or `never_run` (the worst that applies).
    pub health: String,
    pub schedule: Option<String>,
    pub running: bool,
    pub last_run: Option<LastRun>,
    /// Runs recorded (every result).
    pub runs: u64,
    pub last_success: Option<String>,
    pub newest_snapshot: Option<NewestSnapshot>,
    pub stale: bool,
    pub stale_after_secs: u64,
    pub repository_size_bytes: Option<u64>,
    pub last_prune: Option<String>,
    pub verify: Option<VerifyState>,
    /// Share of the current verify cycle's slices read (0 to 1).
    pub verify_cycle_coverage: Option<f64>,
    /// The last `vault restore-test` of the application.
    pub last_restore_test: Option<LastRestoreTest>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastRestoreTest {
    pub started: String,
    pub duration_secs: f64,
    pub ok: bool,
    pub snapshot: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub config: String,
    pub state_dir: String,
    /// No application failed, stale or never run.
    pub healthy: bool,
    pub apps: Vec<AppStatus>,
}

/// The status of `apps` (every application when empty).
pub fn status(config: &LoadedConfig, state: &StateDir, apps: &[String]) -> Result<StatusReport> {
    let names = select_apps(config, apps)?;
    let now = Timestamp::now();
    let mut report = StatusReport {
        config: config.file.display().to_string(),
        state_dir: state.root().display().to_string(),
        healthy: true,
        apps: Vec::new(),
    };
    for name in names {
        let app = config.application(&name).expect("selected");
        let recorded = state.read_summary(&name)?.unwrap_or_default();
        let threshold = stale_after(app);
        let newest_snapshot = recorded.newest_snapshot.clone().map(|record| {
            let age = record
                .time
                .parse::<Timestamp>()
                .map(|t| now.duration_since(t).as_secs().max(0) as u64)
                .unwrap_or(u64::MAX);
            NewestSnapshot {
                record,
                age_secs: age,
            }
        });
        let stale = newest_snapshot
            .as_ref()
            .is_none_or(|s| s.age_secs > threshold.as_secs());
        let failed = recorded
            .last_run
            .as_ref()
            .is_some_and(|r| r.result == RunResult::Failed);
        let restore_test = super::restore_test::last(state, &name);
        let health = if recorded.last_run.is_none() {
            "never_run"
        } else if failed {
            "failed"
        } else if restore_test.as_ref().is_some_and(|t| !t.ok) {
            "restore_test_failed"
        } else if stale {
            "stale"
        } else {
            "ok"
        };
        report.healthy &= health == "ok";
        let verify_cycle_coverage = recorded
            .verify
            .as_ref()
            .filter(|v| v.slices > 0)
            .map(|v| v.slices_done as f64 / v.slices as f64);
        report.apps.push(AppStatus {
            running: state.is_running(&name),
            repository: app.repository.get_ref().clone(),
            health: health.into(),
            schedule: app.schedule.as_ref().map(|s| s.get_ref().clone()),
            last_run: recorded.last_run.as_ref().map(last_run),
            runs: recorded.runs,
            last_success: recorded.last_success.clone(),
            newest_snapshot,
            stale,
            stale_after_secs: threshold.as_secs(),
            repository_size_bytes: recorded.repository_size_bytes,
            last_prune: recorded.last_prune.clone(),
            verify: recorded.verify.clone(),
            verify_cycle_coverage,
            last_restore_test: restore_test.map(|t| LastRestoreTest {
                started: t.started,
                duration_secs: t.duration_secs,
                ok: t.ok,
                snapshot: t.snapshot,
                error: t.error,
            }),
            app: name,
        });
    }
    Ok(report)
}

fn last_run(run: &AppRunReport) -> LastRun {
    LastRun {
        started: run.started.clone(),
        duration_secs: run.duration_secs,
        result: run.result,
        failed_step: run.failed_step.clone(),
        message: run.message.clone(),
        steps: run
            .steps
            .iter()
            .map(|s| StepSummary {
                step: s.step.clone(),
                repository: s.repository.clone(),
                status: s.status,
                message: s.message.clone(),
            })
            .collect(),
    }
}
