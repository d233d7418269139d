//! Bulk restore: several snapshots at once, each into a target named by a template.
//!
//! `--latest-per label:app --target '/srv/dev/{label:app}'` picks the newest snapshot of every
//! group and renders each target from the snapshot's labels, host or id. The first target is
//! restored alone, the others then in parallel; every chunk written is remembered, so a chunk
//! the targets share is read from the repository once and copied from disk (checked against
//! its id) after that.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;

use super::write::RestoredChunks;
use super::{RestoreOptions, RestoreReport};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repo::{Repository, SnapshotInfo};
use crate::retention::GroupKey;

/// The newest snapshot of each group (`keys` as in `forget --group-by`), oldest group first.
/// A snapshot without a label the keys name belongs to no group.
pub fn latest_per(snapshots: Vec<SnapshotInfo>, keys: &[GroupKey]) -> Vec<SnapshotInfo> {
    // `snapshots` come oldest first: a later one of the same group replaces the earlier.
    let mut latest: BTreeMap<Vec<Vec<String>>, SnapshotInfo> = BTreeMap::new();
    let labelled = |s: &SnapshotInfo| {
        keys.iter().all(|k| match k {
            GroupKey::Label(key) => s.manifest.labels.contains_key(key),
            _ => true,
        })
    };
    for s in snapshots.into_iter().filter(labelled) {
        let key = keys.iter().map(|k| k.value_of(&s.manifest)).collect();
        latest.insert(key, s);
    }
    let mut out: Vec<SnapshotInfo> = latest.into_values().collect();
    out.sort_by_cached_key(|s| (s.manifest.time.parse::<jiff::Timestamp>().ok(), s.id));
    out
}

/// `template` with `{id}`, `{host}` and `{label:KEY}` replaced by the snapshot's values. A
/// value must be one plain path component, so no label can place a target elsewhere.
pub fn render_target(template: &str, snapshot: &SnapshotInfo) -> Result<PathBuf> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            return Err(Error::invalid(
                format!("--target {template:?}"),
                "has a '{' without a closing '}'",
            ));
        };
        let name = &rest[start + 1..start + len];
        let value = match name {
            "id" => snapshot.id.short(),
            "host" => snapshot.manifest.host.clone(),
            _ => match name.strip_prefix("label:") {
                Some(key) => snapshot.manifest.labels.get(key).cloned().ok_or_else(|| {
                    Error::invalid(
                        format!("--target {template:?}"),
                        format!(
                            "snapshot {} has no label {key:?}; select snapshots that have it (--label {key}=VALUE)",
                            snapshot.id.short()
                        ),
                    )
                })?,
                None => {
                    return Err(Error::invalid(
                        format!("--target {template:?}"),
                        format!("unknown placeholder {{{name}}}; use {{id}}, {{host}} or {{label:KEY}}"),
                    ))
                }
            },
        };
        if value.is_empty()
            || value == "."
            || value == ".."
            || value.contains('/')
            || value.contains('\0')
        {
            return Err(Error::invalid(
                format!("--target {template:?}"),
                format!(
                    "{{{name}}} of snapshot {} is {value:?}, which is not a plain directory name; refused",
                    snapshot.id.short()
                ),
            ));
        }
        out.push_str(&value);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(PathBuf::from(out))
}

/// Targets for `snapshots` from `template`; with more than one snapshot they must all differ.
pub fn targets(template: &str, snapshots: &[SnapshotInfo]) -> Result<Vec<PathBuf>> {
    let targets: Vec<PathBuf> = snapshots
        .iter()
        .map(|s| render_target(template, s))
        .collect::<Result<_>>()?;
    let mut seen = HashSet::new();
    for (t, s) in targets.iter().zip(snapshots) {
        if !seen.insert(t) {
            return Err(Error::invalid(
                format!("--target {template:?}"),
                format!(
                    "gives {} for more than one snapshot (one is {}); add a placeholder that differs, e.g. {{id}} or {{label:KEY}}",
                    t.display(),
                    s.id.short()
                ),
            ));
        }
    }
    Ok(targets)
}

/// Restores each snapshot with its options. A target's failure does not stop the others.
pub fn run(
    repo: &Repository,
    jobs: &[(SnapshotInfo, RestoreOptions)],
    progress: &dyn Progress,
) -> Result<Vec<Result<RestoreReport>>> {
    repo.io_scope(|| {
        let _reader = repo.register("restore", false)?;
        let restored = RestoredChunks::default();
        let one = |(snapshot, options): &(SnapshotInfo, RestoreOptions)| {
            super::restore(repo, snapshot, options, Some(&restored), progress)
        };
        let Some((first, rest)) = jobs.split_first() else {
            return Ok(Vec::new());
        };
        let mut reports = vec![one(first)];
        reports.extend(rest.par_iter().map(one).collect::<Vec<_>>());
        Ok(reports)
    })
}
