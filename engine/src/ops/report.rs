//! The reports of a job: what `vault run` returns, the run history stores and `vault status`,
//! the metrics, hooks and notifications read. A leaf: it imports nothing from the other ops
//! modules, so `run`, `state`, `metrics` and `notify` depend on it and not on each other.

use serde::{Deserialize, Serialize};

/// The newest snapshot a run took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub id: String,
    /// RFC 3339.
    pub time: String,
    pub bytes_added: u64,
    pub files: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Ok,
    Failed,
    /// Not run: not due, or a step it needs failed.
    Skipped,
}

/// One step of an application's job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// `snapshot`, `forget`, `prune`, `copy`, `forget-copy`, `verify`.
    pub step: String,
    /// The repository the step worked on (config name).
    pub repository: String,
    pub status: StepStatus,
    /// One line: what it did, why it failed, or why it was skipped.
    pub message: String,
    pub duration_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRecord>,
    /// Snapshots forgotten (forget), copied (copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<u64>,
    /// Bytes freed (prune), stored (copy), read (verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    Ok,
    Failed,
    /// Not run: a job of the same application was running.
    Skipped,
}

/// One application's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRunReport {
    pub app: String,
    pub repository: String,
    /// RFC 3339.
    pub started: String,
    pub duration_secs: f64,
    pub result: RunResult,
    /// The first step that failed.
    pub failed_step: Option<String>,
    pub message: String,
    pub steps: Vec<StepReport>,
    /// The notifications sent after the run (webhook, ping, command). A failed one never
    /// changes `result`: the backup it reports on is kept.
    #[serde(default)]
    pub notifications: Vec<NotificationReport>,
}

impl AppRunReport {
    /// Whether a notification of this run failed to go out.
    pub fn notification_failed(&self) -> bool {
        self.notifications.iter().any(|n| !n.ok)
    }
}

/// One notification of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationReport {
    /// `webhook`, `ping` or `command`.
    pub kind: String,
    /// Where it went: the URL without its path (a ping URL's path is a secret), or the command.
    pub target: String,
    pub ok: bool,
    /// One line: what was sent, or why it failed.
    pub message: String,
}

/// What `vault run` did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub config: String,
    pub state_dir: String,
    pub apps: Vec<AppRunReport>,
}

impl RunReport {
    pub fn failed(&self) -> bool {
        self.apps.iter().any(|a| a.result == RunResult::Failed)
    }
    pub fn skipped(&self) -> bool {
        self.apps.iter().any(|a| a.result == RunResult::Skipped)
    }
    pub fn notification_failed(&self) -> bool {
        self.apps.iter().any(AppRunReport::notification_failed)
    }
}
