//! `vault prune`.

use anyhow::Result;
use vault_engine::prune::{self, PruneOptions, PruneReport};
use vault_engine::Repository;

use crate::args::{Cli, PruneArgs, PruneOptionsArgs};
use crate::exit;
use crate::output::{self, outln};
use crate::progress::Display;

pub fn run(cli: &Cli, args: &PruneArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    run_on(cli, &repo, &args.options, args.dry_run)
}

/// Runs prune on an open repository (also after `forget --prune`) and prints its report.
pub fn run_on(cli: &Cli, repo: &Repository, args: &PruneOptionsArgs, dry_run: bool) -> Result<i32> {
    let options = PruneOptions {
        max_unused: args.max_unused,
        dry_run,
        wait: !args.no_wait,
    };
    let display = Display::new(cli.quiet, "prune");
    let result = prune::run(repo, &options, &display);
    display.finish();
    let report = result?;
    if cli.json {
        output::print_report(&report)?;
    } else if !cli.quiet {
        print_report(&report)?;
    }
    Ok(exit::OK)
}

fn print_report(r: &PruneReport) -> std::io::Result<()> {
    let would = if r.dry_run { "would be " } else { "" };
    if r.plans_finished > 0 {
        outln!("finished {} interrupted prune(s) first", r.plans_finished)?;
    }
    outln!(
        "{} snapshots remain; {} forgotten snapshot(s) {would}deleted",
        r.snapshots,
        r.snapshots_deleted
    )?;
    outln!(
        "{} of {} packs {would}deleted unused, {} {would}repacked ({} live blobs copied, {} {would}written); {} blob(s) rescued for snapshots taken meanwhile",
        r.packs_deleted,
        r.packs_before,
        r.packs_repacked,
        r.blobs_repacked,
        output::bytes(r.bytes_written),
        r.blobs_rescued
    )?;
    outln!(
        "{} {would}freed: {} -> {}; {} unused remains in kept packs",
        output::bytes(r.bytes_freed),
        output::bytes(r.bytes_before),
        output::bytes(r.bytes_after),
        output::bytes(r.bytes_unused_after)
    )?;
    for pack in &r.packs_kept_damaged {
        outln!(
            "kept pack {pack}: a live blob in it failed its check (run `vault verify --read-data`)"
        )?;
    }
    if r.blobs_missing > 0 {
        outln!(
            "{} blob(s) that snapshots reach are in no pack (run `vault verify`)",
            r.blobs_missing
        )?;
    }
    if r.temp_files_removed > 0 {
        println!(
            "{} temporary file(s) of vault processes that no longer run {would}removed ({})",
            r.temp_files_removed,
            output::bytes(r.temp_bytes_removed)
        );
    }
    if !r.waited_for.is_empty() {
        outln!("waited for: {}", r.waited_for.join("; "))?;
    }
    if r.pending {
        outln!("snapshots are still running: unused packs stay until the next `vault prune`")?;
    }
    outln!("took {:.1}s", r.duration_secs)?;
    Ok(())
}
