//! The Prometheus textfile (node_exporter's textfile collector): every application's recorded
//! state as gauges, rewritten atomically after every run.
//!
//! Input: the config and the state directory. Output: the text exposition format, one
//! `# HELP` and `# TYPE` line per metric, labels `app` and `repository` only (never paths or
//! other unbounded values).

use std::fmt::Write as _;
use std::path::Path;

use jiff::Timestamp;

use super::config::LoadedConfig;
use super::report::RunResult;
use super::state::StateDir;
use crate::error::Result;

/// The metrics' names, help texts, and how each is read from the recorded state.
const METRICS: [(&str, &str); 12] = [
    (
        "vault_last_run_timestamp_seconds",
        "Start of the last run of the application's job (Unix time).",
    ),
    (
        "vault_last_run_success",
        "1 when the last run of the application's job succeeded, else 0.",
    ),
    (
        "vault_last_run_duration_seconds",
        "How long the last run of the application's job took.",
    ),
    (
        "vault_last_success_timestamp_seconds",
        "Start of the last successful run (Unix time).",
    ),
    (
        "vault_snapshot_timestamp_seconds",
        "Time of the newest snapshot a run took (Unix time).",
    ),
    (
        "vault_snapshot_age_seconds",
        "Age of the newest snapshot when this file was written.",
    ),
    (
        "vault_snapshot_added_bytes",
        "Bytes the newest snapshot added to the repository.",
    ),
    (
        "vault_repository_size_bytes",
        "Bytes of packs in the application's repository after its last run.",
    ),
    (
        "vault_verify_cycle_coverage_ratio",
        "Share of the current verify cycle's slices read (0 to 1).",
    ),
    (
        "vault_last_restore_test_success",
        "1 when the last restore test of the application passed, else 0.",
    ),
    (
        "vault_last_restore_test_timestamp_seconds",
        "Start of the last restore test of the application (Unix time).",
    ),
    (
        "vault_last_restore_test_duration_seconds",
        "How long the last restore test of the application took.",
    ),
];

fn seconds(time: &str) -> Option<f64> {
    time.parse::<Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The textfile's content for every configured application with recorded state.
pub fn render(config: &LoadedConfig, state: &StateDir) -> Result<String> {
    let now = Timestamp::now().as_millisecond() as f64 / 1000.0;
    let mut samples: Vec<Vec<(String, f64)>> = vec![Vec::new(); METRICS.len()];
    for name in config.config.applications.keys() {
        let test = super::restore_test::last(state, name);
        let Some(recorded) = state.read_summary(name)?.or_else(|| {
            test.as_ref().map(|_| super::state::AppState {
                repository: config
                    .application(name)
                    .map(|a| a.repository.get_ref().clone())
                    .unwrap_or_default(),
                ..Default::default()
            })
        }) else {
            continue;
        };
        let labels = format!(
            "{{app=\"{}\",repository=\"{}\"}}",
            escape(name),
            escape(&recorded.repository)
        );
        let mut put = |index: usize, value: Option<f64>| {
            if let Some(value) = value {
                samples[index].push((labels.clone(), value));
            }
        };
        let run = recorded.last_run.as_ref();
        put(0, run.and_then(|r| seconds(&r.started)));
        put(
            1,
            run.map(|r| if r.result == RunResult::Ok { 1.0 } else { 0.0 }),
        );
        put(2, run.map(|r| r.duration_secs));
        put(3, recorded.last_success.as_deref().and_then(seconds));
        let snapshot_time = recorded
            .newest_snapshot
            .as_ref()
            .and_then(|s| seconds(&s.time));
        put(4, snapshot_time);
        put(5, snapshot_time.map(|t| (now - t).max(0.0)));
        put(
            6,
            recorded
                .newest_snapshot
                .as_ref()
                .map(|s| s.bytes_added as f64),
        );
        put(7, recorded.repository_size_bytes.map(|b| b as f64));
        put(
            8,
            recorded
                .verify
                .as_ref()
                .filter(|v| v.slices > 0)
                .map(|v| v.slices_done as f64 / v.slices as f64),
        );
        put(9, test.as_ref().map(|t| if t.ok { 1.0 } else { 0.0 }));
        put(10, test.as_ref().and_then(|t| seconds(&t.started)));
        put(11, test.as_ref().map(|t| t.duration_secs));
    }
    let mut text = String::new();
    for ((name, help), samples) in METRICS.iter().zip(samples) {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(text, "{name}{labels} {value}");
        }
    }
    Ok(text)
}

/// Writes the textfile atomically (the collector never reads half a file).
pub fn write(config: &LoadedConfig, state: &StateDir, path: &Path) -> Result<()> {
    let text = render(config, state)?;
    super::state::write_atomically(path, text.as_bytes())
}
