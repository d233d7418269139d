//! The steps of `vault run` that are more than one engine call: an application's label values,
//! its retention in a repository, and which snapshots its off-site copy takes.

use jiff::Timestamp;

use super::config::{LabelSource, RetentionConfig};
use crate::copy;
use crate::forget::{self, ForgetOptions};
use crate::progress::Progress;
use crate::repo::{Repository, SnapshotFilter};
use crate::retention::GroupKey;

pub(super) fn label_value(key: &str, source: &LabelSource) -> std::result::Result<String, String> {
    let first_line = |text: &str| text.lines().next().unwrap_or("").trim().to_string();
    let value = match source {
        LabelSource::Text(text) => text.clone(),
        LabelSource::File { file } => std::fs::read_to_string(file)
            .map(|t| first_line(&t))
            .map_err(|e| format!("label {key:?}: {}: {e}", file.display()))?,
        LabelSource::Command { command } => {
            let output = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("label {key:?}: cannot run {command:?}: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "label {key:?}: command {command:?} failed ({})",
                    output.status
                ));
            }
            first_line(&String::from_utf8_lossy(&output.stdout))
        }
    };
    if value.is_empty() {
        return Err(format!(
            "label {key:?} came out empty; fix its command or file"
        ));
    }
    Ok(value)
}

pub(super) fn app_filter(app: &str) -> SnapshotFilter {
    SnapshotFilter {
        labels: vec![("app".into(), app.into())],
        ..SnapshotFilter::default()
    }
}

/// Forgets the application's snapshots in `repo` that `retention` does not keep.
pub(super) fn apply_retention(
    repo: &Repository,
    app: &str,
    retention: &RetentionConfig,
) -> std::result::Result<u64, String> {
    let options = ForgetOptions {
        policy: retention.policy(),
        group_by: vec![GroupKey::Host, GroupKey::Label("app".into())],
        time_zone: jiff::tz::TimeZone::system(),
        filter: app_filter(app),
        snapshots: Vec::new(),
        dry_run: false,
    };
    forget::run(repo, &options)
        .map(|r| r.forgotten.len() as u64)
        .map_err(|e| e.to_string())
}

/// Copies the application's snapshots newer than its newest one in `dest` (all of them the
/// first time): a night the destination was unreachable is caught up, and a snapshot the
/// destination's retention forgot is not copied again. An older snapshot whose labels or tags
/// were edited is offered too when `dest` still shows a version of it, so the edit follows.
pub(super) fn copy_new_snapshots(
    source: &Repository,
    dest: &Repository,
    app: &str,
    progress: &dyn Progress,
) -> std::result::Result<copy::CopyReport, String> {
    let filter = app_filter(app);
    let time = |m: &crate::Manifest| m.time.parse::<Timestamp>().ok();
    let (there, _) = dest.snapshots().map_err(|e| e.to_string())?;
    let newest_there = there
        .iter()
        .filter(|s| filter.matches(&s.manifest))
        .filter_map(|s| time(&s.manifest))
        .max();
    let versions_there: std::collections::HashSet<String> =
        there.iter().map(|s| dest.origin_of(s)).collect();
    let (here, _) = source.snapshots().map_err(|e| e.to_string())?;
    let wanted: Vec<_> = here
        .into_iter()
        .filter(|s| filter.matches(&s.manifest))
        .filter(|s| {
            let newer = match (newest_there, time(&s.manifest)) {
                (Some(newest), Some(t)) => t > newest,
                _ => true,
            };
            let edit_of_one_there =
                s.manifest.edited.is_some() && versions_there.contains(&source.origin_of(s));
            newer || edit_of_one_there
        })
        .collect();
    copy::run(source, dest, &wanted, progress).map_err(|e| e.to_string())
}
