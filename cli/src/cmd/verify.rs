use std::collections::BTreeMap;

use anyhow::Result;
use vault_engine::verify::{self, ReadData, VerifyOptions};
use vault_engine::{Error, SnapshotId};

use crate::args::{Cli, VerifyArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, outln};
use crate::progress::Display;

pub fn run(cli: &Cli, args: &VerifyArgs) -> Result<i32> {
    let filter = convert::filter(&args.filter);
    let filtered = filter.host.is_some() || !filter.tags.is_empty() || !filter.labels.is_empty();
    if args.snapshot.is_none() && filtered {
        return Err(Error::InvalidArgument {
            what: "--tag, --label, --host".into(),
            reason: "they choose the snapshot of --snapshot latest, and verify without --snapshot checks every snapshot; add --snapshot latest".into(),
        }
        .into());
    }
    let repo = super::open(cli, false)?;
    let snapshot = match &args.snapshot {
        Some(wanted) => Some(repo.find_snapshot(wanted, &filter)?),
        None => None,
    };
    let read_data = match (
        args.read_data_budget.or(args.read_data_subset),
        args.read_data,
    ) {
        (Some(subset), _) => subset,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let display = Display::new(cli.quiet, "verify");
    let result = verify::run(
        &repo,
        &VerifyOptions {
            read_data,
            snapshot,
        },
        &display,
    );
    display.finish();
    let report = result?;
    if cli.json {
        output::print_report(&report.outcome())?;
    } else {
        // Group by snapshot: which backups are still good. `None` (the repository) first.
        let mut by_snapshot: BTreeMap<
            Option<SnapshotId>,
            Vec<(&verify::Problem, &verify::AffectedPaths)>,
        > = BTreeMap::new();
        for problem in &report.problems {
            if problem.affected.is_empty() {
                by_snapshot.entry(None).or_default().push((problem, &EMPTY));
            }
            for (snapshot, paths) in &problem.affected {
                by_snapshot
                    .entry(Some(*snapshot))
                    .or_default()
                    .push((problem, paths));
            }
        }
        for (snapshot, problems) in &by_snapshot {
            match snapshot {
                None => outln!("repository (no snapshot affected):")?,
                Some(id) => outln!("snapshot {}: DAMAGED", id.short())?,
            }
            for (problem, paths) in problems {
                let object = match (problem.blob, problem.pack) {
                    (Some(blob), _) => Some(blob.short()),
                    (None, Some(pack)) => Some(pack.short()),
                    (None, None) => None,
                };
                match object {
                    Some(object) => outln!("  {} {object}: {}", problem.kind, problem.detail)?,
                    // A snapshot, key file or index segment: the detail names it and says what
                    // is wrong ("snapshot 1a2b…: damaged: …"), so the kind would only repeat it.
                    None => outln!("  {}", problem.detail)?,
                }
                for path in &paths.paths {
                    outln!("    {path}")?;
                }
                if paths.more > 0 {
                    outln!("    ... and {} more paths", paths.more)?;
                }
            }
        }
        if report.blobs_unindexed > 0 {
            outln!(
                "{} damaged blob copies were removed from the index: the next snapshot of sources that still hold that data stores it again",
                report.blobs_unindexed
            )?;
        }
        if report.damaged_copies_superseded > 0 {
            outln!(
                "{} damaged blob copies are no longer used (good copies were stored since); prune removes them",
                report.damaged_copies_superseded
            )?;
        }
        if report.damage_records_cleared > 0 {
            println!(
                "{} blobs recorded as damaged by an earlier verify are whole again (their packs read whole now, or are gone)",
                report.damage_records_cleared
            );
        }
        if report.healed_blobs > 0 {
            outln!(
                "{} previously damaged blobs have a good copy again",
                report.healed_blobs
            )?;
            for snapshot in &report.snapshots_whole_again {
                outln!("snapshot {}: whole again", snapshot.short())?;
            }
        }
        if !cli.quiet || !report.is_clean() {
            outln!(
                "{}: {} snapshots, {} trees, {} packs ({} read, {}), {} problems in {:.1}s",
                if report.is_clean() {
                    "clean"
                } else {
                    "PROBLEMS FOUND"
                },
                report.snapshots,
                report.trees,
                report.packs,
                report.packs_read,
                output::bytes(report.bytes_read),
                report.problems.len(),
                report.duration_secs
            )?;
        }
    }
    Ok(if report.is_clean() {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}

static EMPTY: verify::AffectedPaths = verify::AffectedPaths {
    paths: Vec::new(),
    more: 0,
};
