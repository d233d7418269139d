use std::path::{Path, PathBuf};

use anyhow::Result;
use vault_engine::report::{BulkRestoreReport, RestoreRun};
use vault_engine::restore::{self, bulk, RestoreOptions, RestoreReport};
use vault_engine::{retention, Error};

use crate::args::{Cli, RestoreArgs};
use crate::convert;
use crate::exit;
use crate::output;
use crate::progress::Display;

pub fn run(cli: &Cli, args: &RestoreArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let filter = convert::filter(&args.filter);
    // (snapshot, subpath) per restore.
    let picked: Vec<(vault_engine::repo::SnapshotInfo, Option<String>)> = match &args.latest_per {
        Some(group) => {
            let keys =
                retention::parse_group_by(group).map_err(|reason| Error::InvalidArgument {
                    what: "--latest-per".into(),
                    reason,
                })?;
            let matching = repo
                .snapshots_for_latest()?
                .into_iter()
                .filter(|s| filter.matches(&s.manifest))
                .collect();
            let latest = bulk::latest_per(matching, &keys);
            if latest.is_empty() {
                return Err(Error::NoSuchSnapshot {
                    wanted: "latest".into(),
                }
                .into());
            }
            latest.into_iter().map(|s| (s, None)).collect()
        }
        None => args
            .snapshots
            .iter()
            .map(|text| {
                let (wanted, subpath) = super::split_snapshot_arg(text);
                Ok((
                    repo.find_snapshot(wanted, &filter)?,
                    subpath.map(str::to_string),
                ))
            })
            .collect::<Result<_>>()?,
    };
    let infos: Vec<_> = picked.iter().map(|(s, _)| s.clone()).collect();
    let targets = bulk::targets(&args.target, &infos)?;
    let jobs: Vec<_> = picked
        .into_iter()
        .zip(targets)
        .map(|((snapshot, subpath), target)| {
            let options = RestoreOptions {
                subpath,
                includes: args.includes.clone(),
                overwrite: args.overwrite,
                delta: args.delta,
                verify_existing: args.verify_existing,
                delete: args.delete,
                dry_run: args.dry_run,
                verify: args.verify,
                keep_going: args.keep_going,
                ..RestoreOptions::new(target)
            };
            (snapshot, options)
        })
        .collect();
    let bulk_run = jobs.len() > 1 || args.latest_per.is_some();
    let display = Display::new(cli.quiet, if args.dry_run { "check" } else { "restore" });
    let results = if bulk_run {
        bulk::run(&repo, &jobs, &display)
    } else {
        let (snapshot, options) = &jobs[0];
        restore::run(&repo, snapshot, options, &display).map(|r| vec![Ok(r)])
    };
    display.finish();
    let results = results?;
    let mut code = exit::OK;
    let mut rows = Vec::new();
    let mut first_error = None;
    for ((snapshot, options), result) in jobs.iter().zip(results) {
        match result {
            Ok(report) => {
                if !report.warnings.is_empty()
                    || !report.problems.is_empty()
                    || !report.damaged.is_empty()
                {
                    code = exit::PROBLEMS;
                }
                if !cli.quiet && !cli.json {
                    eprintln!(
                        "{}",
                        summary(&snapshot.id.short(), &options.target, &report)
                    );
                    for problem in &report.problems {
                        eprintln!("problem: {problem}");
                    }
                    for damaged in &report.damaged {
                        eprintln!("damaged, not restored: {damaged}");
                    }
                }
                rows.push(RestoreRun {
                    snapshot: snapshot.id,
                    target: options.target.clone(),
                    report: Some(report),
                    error: None,
                });
            }
            Err(e) if !bulk_run => return Err(e.into()),
            Err(e) => {
                let error = anyhow::Error::from(e).context(format!(
                    "restore of snapshot {} to {}",
                    snapshot.id.short(),
                    options.target.display()
                ));
                let failed = exit::report(&error);
                rows.push(RestoreRun {
                    snapshot: snapshot.id,
                    target: options.target.clone(),
                    report: None,
                    error: Some(format!("{error:#}")),
                });
                first_error.get_or_insert(failed);
            }
        }
    }
    if cli.json {
        if bulk_run {
            output::print_report(&BulkRestoreReport { restores: rows })?;
        } else {
            output::print_report(&rows[0])?;
        }
    }
    Ok(first_error.unwrap_or(code))
}

/// The one-line summary of a restore (or of a dry run: what it would do).
fn summary(id: &str, target: &Path, r: &RestoreReport) -> String {
    let target: PathBuf = target.to_path_buf();
    let verb = if r.dry_run {
        "would restore"
    } else {
        "restored"
    };
    let mut line = format!(
        "{verb} snapshot {id} to {}: {} files, {} dirs, {} symlinks, {} hard links",
        target.display(),
        r.files,
        r.dirs,
        r.symlinks,
        r.hardlinks
    );
    if r.files_unchanged + r.files_patched + r.deleted > 0 {
        line += &format!(
            " ({} unchanged, {} patched, {} written, {} deleted)",
            r.files_unchanged, r.files_patched, r.files_written, r.deleted
        );
    }
    if !r.damaged.is_empty() {
        line += &format!("; {} damaged and left out (listed below)", r.damaged.len());
    }
    if r.dry_run {
        if r.bytes_verified > 0 {
            line += &format!("; {} read and checked", output::bytes(r.bytes_verified));
        }
        line += &format!(", {} problems", r.problems.len());
    } else {
        line += &format!(
            "; {} written, {} from the repository, {} reused from disk",
            output::bytes(r.bytes_written),
            output::bytes(r.bytes_fetched),
            output::bytes(r.bytes_reused)
        );
    }
    line
}
