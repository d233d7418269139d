//! `vault forget`: apply a retention policy (see [`crate::retention`]) or forget named
//! snapshots. Forgetting is a soft delete: a marker beside the manifest, undone by `undelete`,
//! made final by `prune`.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repo::{Repository, Resolved, SnapshotFilter};
use crate::retention::{self, Candidate, GroupKey, Policy};

pub struct ForgetOptions {
    pub policy: Policy,
    pub group_by: Vec<GroupKey>,
    /// Time zone of the day/week/month/year buckets.
    pub time_zone: jiff::tz::TimeZone,
    /// Only snapshots matching this are considered (and grouped).
    pub filter: SnapshotFilter,
    /// Forget exactly these snapshots (ids or prefixes) instead of applying a policy.
    pub snapshots: Vec<String>,
    pub dry_run: bool,
}

/// One snapshot's fate.
#[derive(Debug, Clone, Serialize)]
pub struct Fate {
    pub id: SnapshotId,
    pub time: String,
    pub keep: bool,
    /// Why it is kept (`daily #3`, `protected`, …); empty when it is forgotten.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForgetGroup {
    /// (key, value) pairs the group shares, e.g. `("label:app", "website")`.
    pub key: Vec<(String, String)>,
    /// Newest first.
    pub snapshots: Vec<Fate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub dry_run: bool,
    pub groups: Vec<ForgetGroup>,
    /// Ids forgotten (or, with `dry_run`, that would be).
    pub forgotten: Vec<SnapshotId>,
    pub kept: u64,
}

pub fn run(repo: &Repository, options: &ForgetOptions) -> Result<ForgetReport> {
    let mut report = ForgetReport {
        dry_run: options.dry_run,
        groups: Vec::new(),
        forgotten: Vec::new(),
        kept: 0,
    };
    if !options.snapshots.is_empty() {
        if !options.policy.is_empty() {
            return Err(Error::invalid(
                "forget",
                "give snapshot ids or --keep-* options, not both",
            ));
        }
        // A snapshot whose manifest cannot be read can be forgotten by its id: it is the way
        // out that `latest` and the other commands point to.
        let protected = repo.protected()?;
        let mut chosen = Vec::new();
        for wanted in &options.snapshots {
            let id = match repo.resolve_snapshot(wanted, &options.filter)? {
                Resolved::Snapshot(s) => s.id,
                Resolved::Unreadable(id, _) => id,
            };
            if protected.contains(&id) {
                return Err(Error::Protected { id: id.to_hex() });
            }
            chosen.push(id);
        }
        for id in chosen {
            if !options.dry_run {
                repo.forget_snapshot(id)?;
            }
            report.forgotten.push(id);
        }
        return Ok(report);
    }
    if options.policy.is_empty() {
        return Err(Error::invalid(
            "forget",
            "no --keep-* option given, which would forget every snapshot; give a policy (e.g. --keep-daily 7) or snapshot ids",
        ));
    }
    let (snapshots, _) = repo.snapshots()?;
    let candidates: Vec<Candidate> = snapshots
        .iter()
        .filter(|s| options.filter.matches(&s.manifest))
        .filter_map(|s| {
            Some(Candidate {
                id: s.id.to_hex(),
                time: s.manifest.time.parse().ok()?,
                host: s.manifest.host.clone(),
                paths: s.manifest.paths.clone(),
                tags: s.manifest.tags.clone(),
                labels: s.manifest.labels.clone(),
                protected: s.protected,
            })
        })
        .collect();
    let groups = retention::apply(
        &options.policy,
        &options.group_by,
        &candidates,
        &options.time_zone,
    );
    for group in groups {
        let mut fates = Vec::new();
        for d in group.decisions {
            let id = SnapshotId::from_hex(&d.id).expect("candidates are named by snapshot id");
            if d.keep {
                report.kept += 1;
            } else {
                report.forgotten.push(id);
            }
            fates.push(Fate {
                id,
                time: d.time.to_string(),
                keep: d.keep,
                reasons: d.reasons,
            });
        }
        report.groups.push(ForgetGroup {
            key: group.key,
            snapshots: fates,
        });
    }
    if !options.dry_run {
        for id in &report.forgotten {
            repo.forget_snapshot(*id)?;
        }
    }
    Ok(report)
}
