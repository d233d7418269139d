//! Data gathering: every page's and API route's content as a serializable struct, built only
//! from the engine's own reports (snapshot listing, `browse::ls`, `browse::diff`, `verify::run`,
//! `ops::status`, `retention::apply`). Nothing here knows about HTTP or HTML.
//!
//! Applications are the config's applications (with `--config`) plus every value of the `app`
//! label found on snapshots; snapshots without one belong to [`UNLABELLED`].
//!
//! The verify report is a structural verify (`ReadData::None`: trailers, manifests, trees, and
//! the packs an earlier `verify --read-data` recorded damage in), run at start and again when
//! it is older than [`VERIFY_MAX_AGE`]; requests share the cached one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;
use vault_engine::browse::{self, DiffOptions, DiffReport, LsOptions, LsReport};
use vault_engine::ops::config::{self, LoadedConfig};
use vault_engine::ops::run::RunResult;
use vault_engine::ops::state::{StateDir, VerifyState};
use vault_engine::ops::status;
use vault_engine::retention::{self, Candidate};
use vault_engine::verify::{self, ReadData, VerifyOptions, VerifyReport};
use vault_engine::{NoProgress, Repository, SnapshotInfo};

use crate::error::ServeError;

/// The application of snapshots that carry no `app` label.
pub const UNLABELLED: &str = "unlabelled";
/// A cached verify report older than this is recomputed on the next request.
pub const VERIFY_MAX_AGE: Duration = Duration::from_secs(3600);

type Result<T> = std::result::Result<T, ServeError>;

/// What the server reads: the repository, and with `--config` the recorded state.
pub struct Dashboard {
    pub repo: Repository,
    pub config: Option<LoadedConfig>,
    pub state: Option<StateDir>,
    verify: Mutex<Option<(Instant, VerifyView)>>,
}

/// Red, amber or green, with the reasons in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Green,
    Amber,
    Red,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Green => "green",
            Health::Amber => "amber",
            Health::Red => "red",
        }
    }
}

/// One snapshot as the tables show it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRow {
    pub id: String,
    pub short_id: String,
    pub app: String,
    pub time: String,
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub files: u64,
    /// Logical size.
    pub bytes_total: u64,
    pub bytes_added: u64,
    pub duration_secs: f64,
    pub complete: bool,
    pub protected: bool,
    pub forgotten: bool,
    /// The last verify found a problem that affects it.
    pub damaged: bool,
}

/// The last run of an application's job, from the state directory.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub started: String,
    pub result: RunResult,
    pub failed_step: Option<String>,
    pub message: String,
}

/// One row of the overview.
#[derive(Debug, Clone, Serialize)]
pub struct AppRow {
    pub app: String,
    pub health: Health,
    /// Why it is not green (or what makes it green), in words.
    pub reasons: Vec<String>,
    pub snapshots: u64,
    pub newest_complete: Option<SnapshotRow>,
    /// Seconds since `newest_complete` was taken.
    pub newest_age_secs: Option<u64>,
    pub stale_after_secs: u64,
    pub last_run: Option<RunSummary>,
    pub verify: Option<VerifyState>,
    pub verify_cycle_coverage: Option<f64>,
    /// The last `vault restore-test` (with `--config`), as `vault status` reports it.
    pub last_restore_test: Option<status::LastRestoreTest>,
    /// Stored bytes of the repository the application's snapshots are in.
    pub repository_size_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub repository: String,
    pub generated: String,
    pub repository_size_bytes: u64,
    pub packs: u64,
    pub snapshots: u64,
    pub verify_clean: bool,
    pub verify_checked: String,
    pub apps: Vec<AppRow>,
}

/// One snapshot's fate under the application's retention policy.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionDecision {
    pub id: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetentionView {
    /// `keep_daily = 7, …` as configured.
    pub policy: String,
    pub decisions: Vec<RetentionDecision>,
}

/// A point of a plot: the snapshot's time and value.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub time: String,
    pub short_id: String,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppDetail {
    #[serde(flatten)]
    pub row: AppRow,
    /// Newest first.
    pub list: Vec<SnapshotRow>,
    pub retention: Option<RetentionView>,
    /// Oldest first, one point per snapshot that is not forgotten.
    pub bytes_added: Vec<Point>,
    /// Stored bytes written to the repository (by every application) up to each snapshot.
    pub repository_growth: Vec<Point>,
    pub duration_secs: Vec<Point>,
    /// Recorded runs of the application's job, newest first (with `--config`).
    pub history: Vec<RunSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotDetail {
    #[serde(flatten)]
    pub row: SnapshotRow,
    pub paths: Vec<String>,
    pub parent: Option<String>,
    /// The snapshot of the same application taken just before it: what `diff` compares with.
    pub previous: Option<String>,
    pub source_problems: usize,
    /// Verify problems affecting it: (kind, affected paths).
    pub problems: Vec<(String, Vec<String>)>,
}

/// The diff against the previous snapshot of the same application.
#[derive(Debug, Clone, Serialize)]
pub struct DiffView {
    pub snapshot: String,
    pub previous: Option<String>,
    pub diff: Option<DiffReport>,
}

/// One recorded verify step of an application's job.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyRun {
    pub app: String,
    pub started: String,
    pub status: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyView {
    /// When this server ran the structural verify.
    pub checked: String,
    pub clean: bool,
    pub damaged_snapshots: Vec<String>,
    pub report: VerifyReport,
    /// Snapshot manifests that cannot be read.
    pub unreadable_snapshots: Vec<String>,
    /// Recorded verify runs (with `--config`), newest first.
    pub history: Vec<VerifyRun>,
}

fn age_words(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn app_of(info: &SnapshotInfo) -> String {
    info.manifest
        .labels
        .get("app")
        .cloned()
        .unwrap_or_else(|| UNLABELLED.to_string())
}

impl Dashboard {
    /// Opens the dashboard over `repo`, running the first verify now.
    pub fn new(
        repo: Repository,
        config: Option<LoadedConfig>,
        state: Option<StateDir>,
    ) -> Result<Dashboard> {
        let dashboard = Dashboard {
            repo,
            config,
            state,
            verify: Mutex::new(None),
        };
        dashboard.verify()?;
        Ok(dashboard)
    }

    /// Every snapshot, forgotten ones included, newest first.
    fn rows(&self, damaged: &BTreeSet<String>) -> Result<Vec<(SnapshotInfo, SnapshotRow)>> {
        let (mut all, _) = self.repo.all_snapshots()?;
        all.sort_by(|a, b| b.manifest.time.cmp(&a.manifest.time).then(b.id.cmp(&a.id)));
        Ok(all
            .into_iter()
            .map(|info| {
                let row = row(&info, damaged);
                (info, row)
            })
            .collect())
    }

    fn repository_size(&self) -> Result<(u64, u64)> {
        let packs = self.repo.index().packs()?;
        Ok((packs.values().map(|p| p.size).sum(), packs.len() as u64))
    }

    /// Application names: the config's, then the `app` labels found.
    fn app_names(&self, rows: &[(SnapshotInfo, SnapshotRow)]) -> Vec<String> {
        let mut names: BTreeSet<String> = rows.iter().map(|(_, r)| r.app.clone()).collect();
        if let Some(config) = &self.config {
            names.extend(config.config.applications.keys().cloned());
        }
        names.into_iter().collect()
    }

    pub fn overview(&self) -> Result<Overview> {
        let verify = self.verify()?;
        let damaged: BTreeSet<String> = verify.damaged_snapshots.iter().cloned().collect();
        let rows = self.rows(&damaged)?;
        let (size, packs) = self.repository_size()?;
        let status = self.status()?;
        let apps = self
            .app_names(&rows)
            .into_iter()
            .map(|app| self.app_row(&app, &rows, &verify, size, &status))
            .collect();
        Ok(Overview {
            repository: self.repo.location(),
            generated: Timestamp::now().to_string(),
            repository_size_bytes: size,
            packs,
            snapshots: rows.iter().filter(|(i, _)| !i.forgotten).count() as u64,
            verify_clean: verify.clean,
            verify_checked: verify.checked,
            apps,
        })
    }

    fn status(&self) -> Result<Vec<status::AppStatus>> {
        match (&self.config, &self.state) {
            (Some(config), Some(state)) => Ok(status::status(config, state, &[])?.apps),
            _ => Ok(Vec::new()),
        }
    }

    fn app_row(
        &self,
        app: &str,
        rows: &[(SnapshotInfo, SnapshotRow)],
        verify: &VerifyView,
        size: u64,
        status: &[status::AppStatus],
    ) -> AppRow {
        let mine: Vec<&SnapshotRow> = rows
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.app == app && !r.forgotten)
            .collect();
        let recorded = status.iter().find(|s| s.app == app);
        let stale_after = recorded
            .map(|s| s.stale_after_secs)
            .or_else(|| {
                self.config
                    .as_ref()
                    .and_then(|c| c.application(app))
                    .map(|a| config::stale_after(a).as_secs())
            })
            .unwrap_or(config::DEFAULT_STALE_AFTER.as_secs());
        let newest_complete = mine.iter().find(|r| r.complete).map(|r| (*r).clone());
        let now = Timestamp::now();
        let newest_age_secs = newest_complete.as_ref().map(|r| {
            r.time
                .parse::<Timestamp>()
                .map(|t| now.duration_since(t).as_secs().max(0) as u64)
                .unwrap_or(u64::MAX)
        });
        let last_run = recorded
            .and_then(|s| s.last_run.as_ref())
            .map(|r| RunSummary {
                started: r.started.clone(),
                result: r.result,
                failed_step: r.failed_step.clone(),
                message: r.message.clone(),
            });

        let mut red = Vec::new();
        let mut amber = Vec::new();
        let damaged: Vec<&&SnapshotRow> = mine.iter().filter(|r| r.damaged).collect();
        if !damaged.is_empty() {
            let ids: Vec<&str> = damaged.iter().map(|r| r.short_id.as_str()).collect();
            red.push(format!(
                "{} snapshot{} damaged: {} (see Verify)",
                ids.len(),
                if ids.len() == 1 { " is" } else { "s are" },
                ids.join(", ")
            ));
        }
        if let Some(run) = last_run.as_ref().filter(|r| r.result == RunResult::Failed) {
            red.push(format!(
                "last run failed{}: {}",
                run.failed_step
                    .as_ref()
                    .map(|s| format!(" at step {s}"))
                    .unwrap_or_default(),
                run.message
            ));
        }
        match (&newest_complete, newest_age_secs) {
            (None, _) => red.push("no complete snapshot".into()),
            (Some(_), Some(age)) if age > stale_after => amber.push(format!(
                "newest complete snapshot is {} old (stale after {})",
                age_words(age),
                age_words(stale_after)
            )),
            _ => {}
        }
        if let Some(newest) = mine.first().filter(|r| !r.complete) {
            amber.push(format!(
                "newest snapshot {} is incomplete (source problems)",
                newest.short_id
            ));
        }
        if let Some(v) = recorded.and_then(|s| s.verify.as_ref()) {
            if v.last_clean == Some(false) {
                red.push("the last verify of its job found problems".into());
            }
        }
        let last_restore_test = recorded.and_then(|s| s.last_restore_test.clone());
        if let Some(test) = last_restore_test.as_ref().filter(|t| !t.ok) {
            red.push(format!(
                "restore test failed: {}",
                test.error.as_deref().unwrap_or("no reason recorded")
            ));
        }
        let (health, reasons) = if !red.is_empty() {
            red.extend(amber);
            (Health::Red, red)
        } else if !amber.is_empty() {
            (Health::Amber, amber)
        } else {
            let age = newest_age_secs.map(age_words).unwrap_or_default();
            (
                Health::Green,
                vec![format!(
                    "newest complete snapshot {age} old; {}{}",
                    if verify.clean {
                        "verify clean"
                    } else {
                        "no verify problem affects it"
                    },
                    if last_restore_test.is_some() {
                        "; restore test passed"
                    } else {
                        ""
                    }
                )],
            )
        };
        AppRow {
            app: app.to_string(),
            health,
            reasons,
            snapshots: mine.len() as u64,
            newest_complete,
            newest_age_secs,
            stale_after_secs: stale_after,
            last_run,
            verify: recorded.and_then(|s| s.verify.clone()),
            verify_cycle_coverage: recorded.and_then(|s| s.verify_cycle_coverage),
            last_restore_test,
            repository_size_bytes: recorded
                .and_then(|s| s.repository_size_bytes)
                .unwrap_or(size),
        }
    }

    /// `None` when no snapshot and no configured application has this name.
    pub fn app(&self, app: &str) -> Result<Option<AppDetail>> {
        let verify = self.verify()?;
        let damaged: BTreeSet<String> = verify.damaged_snapshots.iter().cloned().collect();
        let rows = self.rows(&damaged)?;
        if !self.app_names(&rows).iter().any(|a| a == app) {
            return Ok(None);
        }
        let (size, _) = self.repository_size()?;
        let status = self.status()?;
        let row = self.app_row(app, &rows, &verify, size, &status);

        let retention = self.retention(app, &rows);

        // Oldest first for the plots; growth counts every application's snapshots.
        let mut written = 0u64;
        let (mut bytes_added, mut repository_growth, mut duration_secs) =
            (Vec::new(), Vec::new(), Vec::new());
        for (info, r) in rows.iter().rev().filter(|(i, _)| !i.forgotten) {
            written += info.manifest.summary.bytes_added;
            if r.app != app {
                continue;
            }
            let point = |value: f64| Point {
                time: r.time.clone(),
                short_id: r.short_id.clone(),
                value,
            };
            bytes_added.push(point(r.bytes_added as f64));
            repository_growth.push(point(written as f64));
            duration_secs.push(point(r.duration_secs));
        }
        Ok(Some(AppDetail {
            row,
            list: rows
                .iter()
                .filter(|(_, r)| r.app == app)
                .map(|(_, r)| r.clone())
                .collect(),
            retention,
            bytes_added,
            repository_growth,
            duration_secs,
            history: self.history(app),
        }))
    }

    /// The configured policy applied to the application's snapshots, as `vault forget` would.
    fn retention(&self, app: &str, rows: &[(SnapshotInfo, SnapshotRow)]) -> Option<RetentionView> {
        let config = self.config.as_ref()?;
        let retention = config.application(app)?.retention.as_ref()?;
        let policy = retention.policy();
        let candidates: Vec<Candidate> = rows
            .iter()
            .filter(|(i, r)| r.app == app && !i.forgotten)
            .filter_map(|(i, _)| {
                Some(Candidate {
                    id: i.id.to_hex(),
                    time: i.manifest.time.parse().ok()?,
                    host: i.manifest.host.clone(),
                    paths: i.manifest.paths.clone(),
                    tags: i.manifest.tags.clone(),
                    labels: i.manifest.labels.clone(),
                    protected: i.protected,
                })
            })
            .collect();
        let groups = retention::apply(&policy, &[], &candidates, &jiff::tz::TimeZone::UTC);
        Some(RetentionView {
            policy: policy_words(&policy),
            decisions: groups
                .into_iter()
                .flat_map(|g| g.decisions)
                .map(|d| RetentionDecision {
                    id: d.id,
                    keep: d.keep,
                    reasons: d.reasons,
                })
                .collect(),
        })
    }

    /// Recorded runs of `app`, newest first.
    fn history(&self, app: &str) -> Vec<RunSummary> {
        let Some(state) = &self.state else {
            return Vec::new();
        };
        let path = state.root().join("history").join(format!("{app}.jsonl"));
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        let mut runs: Vec<RunSummary> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                Some(RunSummary {
                    started: v.get("started")?.as_str()?.to_string(),
                    result: serde_json::from_value(v.get("result")?.clone()).ok()?,
                    failed_step: v
                        .get("failed_step")
                        .and_then(|s| s.as_str())
                        .map(str::to_string),
                    message: v
                        .get("message")
                        .and_then(|s| s.as_str())
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .collect();
        runs.reverse();
        runs.truncate(200);
        runs
    }

    /// A snapshot by full id or unique prefix (hex only: never `latest`).
    pub fn snapshot_info(&self, id: &str) -> Result<SnapshotInfo> {
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(vault_engine::Error::NoSuchSnapshot {
                wanted: id.to_string(),
            }
            .into());
        }
        Ok(self.repo.find_snapshot(id, &Default::default())?)
    }

    /// The snapshot of the same application taken just before `info`.
    fn previous(&self, info: &SnapshotInfo) -> Result<Option<SnapshotInfo>> {
        let (all, _) = self.repo.snapshots()?;
        let app = app_of(info);
        Ok(all
            .into_iter()
            .filter(|s| app_of(s) == app && s.id != info.id)
            .filter(|s| (&s.manifest.time, s.id) < (&info.manifest.time, info.id))
            .max_by(|a, b| (&a.manifest.time, a.id).cmp(&(&b.manifest.time, b.id))))
    }

    pub fn snapshot(&self, id: &str) -> Result<SnapshotDetail> {
        let info = self.snapshot_info(id)?;
        let verify = self.verify()?;
        let damaged: BTreeSet<String> = verify.damaged_snapshots.iter().cloned().collect();
        let problems = verify
            .report
            .problems
            .iter()
            .filter_map(|p| {
                p.affected
                    .get(&info.id)
                    .map(|a| (p.kind.name().to_string(), a.paths.clone()))
            })
            .collect();
        Ok(SnapshotDetail {
            row: row(&info, &damaged),
            paths: info.manifest.paths.clone(),
            parent: info.manifest.parent.clone(),
            previous: self.previous(&info)?.map(|p| p.id.to_hex()),
            source_problems: info.manifest.summary.errors.len(),
            problems,
        })
    }

    /// One directory of a snapshot (`path` already checked to stay inside it).
    pub fn tree(&self, id: &str, path: &str) -> Result<LsReport> {
        let info = self.snapshot_info(id)?;
        Ok(browse::ls(
            &self.repo,
            &info,
            &LsOptions {
                path: path.to_string(),
                recursive: false,
            },
        )?)
    }

    pub fn diff(&self, id: &str) -> Result<DiffView> {
        let info = self.snapshot_info(id)?;
        let previous = self.previous(&info)?;
        let diff = match &previous {
            Some(p) => Some(browse::diff(
                &self.repo,
                p,
                &info,
                &DiffOptions {
                    path: "/".into(),
                    stat: false,
                },
            )?),
            None => None,
        };
        Ok(DiffView {
            snapshot: info.id.to_hex(),
            previous: previous.map(|p| p.id.to_hex()),
            diff,
        })
    }

    /// The cached verify report, recomputed when older than [`VERIFY_MAX_AGE`].
    pub fn verify(&self) -> Result<VerifyView> {
        let mut cached = self.verify.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, view)) = cached.as_ref() {
            if at.elapsed() < VERIFY_MAX_AGE {
                return Ok(view.clone());
            }
        }
        let report = verify::run(
            &self.repo,
            &VerifyOptions {
                read_data: ReadData::None,
                snapshot: None,
            },
            &NoProgress,
        )?;
        let (_, unreadable) = self.repo.all_snapshots()?;
        let view = VerifyView {
            checked: Timestamp::now().to_string(),
            clean: report.is_clean(),
            damaged_snapshots: report
                .damaged_snapshots()
                .iter()
                .map(|id| id.to_hex())
                .collect(),
            unreadable_snapshots: unreadable.into_iter().map(|(name, _)| name).collect(),
            history: self.verify_history(),
            report,
        };
        *cached = Some((Instant::now(), view.clone()));
        Ok(view)
    }

    fn verify_history(&self) -> Vec<VerifyRun> {
        let (Some(config), Some(state)) = (&self.config, &self.state) else {
            return Vec::new();
        };
        let mut runs = Vec::new();
        for app in config.config.applications.keys() {
            let path = state.root().join("history").join(format!("{app}.jsonl"));
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            for v in text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            {
                let started = v["started"].as_str().unwrap_or_default().to_string();
                for step in v["steps"].as_array().into_iter().flatten() {
                    if step["step"].as_str() == Some("verify") {
                        runs.push(VerifyRun {
                            app: app.clone(),
                            started: started.clone(),
                            status: step["status"].as_str().unwrap_or_default().to_string(),
                            message: step["message"].as_str().unwrap_or_default().to_string(),
                        });
                    }
                }
            }
        }
        runs.sort_by(|a, b| b.started.cmp(&a.started));
        runs.truncate(200);
        runs
    }
}

fn row(info: &SnapshotInfo, damaged: &BTreeSet<String>) -> SnapshotRow {
    let m = &info.manifest;
    let id = info.id.to_hex();
    SnapshotRow {
        short_id: info.id.short(),
        app: app_of(info),
        time: m.time.clone(),
        host: m.host.clone(),
        labels: m.labels.clone(),
        tags: m.tags.clone(),
        files: m.summary.files,
        bytes_total: m.summary.bytes_total,
        bytes_added: m.summary.bytes_added,
        duration_secs: m.summary.duration_secs,
        complete: m.complete,
        protected: info.protected,
        forgotten: info.forgotten,
        damaged: damaged.contains(&id),
        id,
    }
}

/// `last 3, daily 7, within 30d`: the policy's rules in words.
fn policy_words(policy: &retention::Policy) -> String {
    let mut parts = Vec::new();
    for (name, count) in [
        ("last", policy.last),
        ("hourly", policy.hourly),
        ("daily", policy.daily),
        ("weekly", policy.weekly),
        ("monthly", policy.monthly),
        ("yearly", policy.yearly),
    ] {
        if let Some(n) = count.filter(|n| *n > 0) {
            parts.push(format!("{name} {n}"));
        }
    }
    if let Some(within) = &policy.within {
        parts.push(format!("within {}", within.as_str()));
    }
    for tag in &policy.tags {
        parts.push(format!("tag {tag}"));
    }
    if parts.is_empty() {
        "keep everything".into()
    } else {
        parts.join(", ")
    }
}
