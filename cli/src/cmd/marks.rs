//! `vault protect`, `unprotect`, `undelete` and `unlock`: the small state changes beside the
//! immutable snapshots.

use anyhow::Result;
use vault_engine::repo::writers;
use vault_engine::report::{MarkReport, UnlockReport};
use vault_engine::SnapshotFilter;

use crate::args::{Cli, SnapshotIdsArgs, UnlockArgs};
use crate::exit;
use crate::output::{self, outln};

pub fn protect(cli: &Cli, args: &SnapshotIdsArgs, protected: bool) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let mut done = Vec::new();
    for wanted in &args.snapshots {
        let snapshot = repo.find_snapshot(wanted, &SnapshotFilter::default())?;
        repo.set_protected(snapshot.id, protected)?;
        done.push(snapshot.id);
    }
    let verb = if protected {
        "protected"
    } else {
        "unprotected"
    };
    if cli.json {
        output::print_report(&if protected {
            MarkReport::Protected(done)
        } else {
            MarkReport::Unprotected(done)
        })?;
    } else if !cli.quiet {
        for id in &done {
            outln!("snapshot {} {verb}", id.short())?;
        }
    }
    Ok(exit::OK)
}

pub fn undelete(cli: &Cli, args: &SnapshotIdsArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let mut done = Vec::new();
    for wanted in &args.snapshots {
        let snapshot = repo.find_forgotten(wanted)?;
        repo.undelete_snapshot(snapshot.id)?;
        done.push(snapshot.id);
    }
    if cli.json {
        output::print_report(&MarkReport::Undeleted(done))?;
    } else if !cli.quiet {
        for id in &done {
            outln!("snapshot {} is back", id.short())?;
        }
    }
    Ok(exit::OK)
}

pub fn unlock(cli: &Cli, args: &UnlockArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let options = writers::UnlockOptions {
        remove_all: args.remove_all,
    };
    let report = UnlockReport::from(writers::unlock(repo.backend().as_ref(), &options)?);
    if cli.json {
        output::print_report(&report)?;
    } else if !cli.quiet {
        for r in &report.removed {
            outln!("removed: {r}")?;
        }
        for k in &report.kept {
            outln!("kept (still running or on another host; --remove-all removes it): {k}")?;
        }
        if report.removed.is_empty() && report.kept.is_empty() {
            outln!("no locks or registrations")?;
        }
    }
    Ok(exit::OK)
}
