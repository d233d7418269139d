//! `vault label` and `vault tag`: edit a snapshot's labels or tags (a new manifest replaces the
//! old one; `vault_engine::edit`).

use anyhow::Result;
use vault_engine::edit::{self, EditOptions, EditReport};
use vault_engine::{Error, Repository, SnapshotInfo};

use crate::args::{Cli, LabelArgs, SnapshotFilterArgs, TagArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, errln, outln};

pub fn label(cli: &Cli, args: &LabelArgs) -> Result<i32> {
    let options = EditOptions {
        add_labels: args.add.clone(),
        remove_labels: args.remove.clone(),
        ..EditOptions::default()
    };
    run(cli, &args.snapshot, &args.filter, &options)
}

pub fn tag(cli: &Cli, args: &TagArgs) -> Result<i32> {
    let options = EditOptions {
        add_tags: args.add.clone(),
        remove_tags: args.remove.clone(),
        ..EditOptions::default()
    };
    run(cli, &args.snapshot, &args.filter, &options)
}

fn run(cli: &Cli, wanted: &str, filter: &SnapshotFilterArgs, options: &EditOptions) -> Result<i32> {
    options.validate()?;
    let repo = super::open(cli, false)?;
    let snapshot = find(&repo, wanted, &convert::filter(filter))?;
    let report = edit::run(&repo, &snapshot, options)?;
    if cli.json {
        output::print_report(&report)?;
    } else {
        print(cli, &report)?;
    }
    Ok(exit::OK)
}

/// The snapshot to edit. One that is forgotten (or replaced by an earlier edit) is found too,
/// so that the edit refuses it by name instead of calling it unknown.
fn find(
    repo: &Repository,
    wanted: &str,
    filter: &vault_engine::SnapshotFilter,
) -> Result<SnapshotInfo> {
    match repo.find_snapshot(wanted, filter) {
        Err(unknown @ Error::NoSuchSnapshot { .. }) if wanted != "latest" => {
            match repo.find_forgotten(wanted) {
                Err(Error::NoSuchSnapshot { .. }) => Err(unknown.into()),
                other => Ok(other?),
            }
        }
        other => Ok(other?),
    }
}

fn print(cli: &Cli, report: &EditReport) -> std::io::Result<()> {
    let labels: Vec<String> = report
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let now = format!(
        "tags: {}; labels: {}",
        none_if_empty(&report.tags.join(",")),
        none_if_empty(&labels.join(","))
    );
    // Like `vault snapshot`: the id on stdout (the new one, or the unchanged one when there
    // was nothing to change), what happened on stderr.
    outln!("{}", report.replaced_by.unwrap_or(report.snapshot).to_hex())?;
    if !cli.quiet {
        match report.replaced_by {
            Some(new) => errln!(
                "snapshot {} replaced by {}; {now}",
                report.snapshot.short(),
                new.short()
            ),
            None => errln!(
                "snapshot {}: nothing to change, nothing written; {now}",
                report.snapshot.short()
            ),
        }
    }
    Ok(())
}

fn none_if_empty(text: &str) -> &str {
    if text.is_empty() {
        "none"
    } else {
        text
    }
}
