//! `vault stats [SNAPSHOT...]`.

use anyhow::Result;
use vault_engine::browse::{self, StatsOptions, StatsReport};

use crate::args::{Cli, StatsArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, out, outln};

pub fn run(cli: &Cli, args: &StatsArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let filter = convert::filter(&args.filter);
    let filtered = !args.filter.tags.is_empty()
        || !args.filter.labels.is_empty()
        || args.filter.host.is_some();
    let snapshots = if !args.snapshots.is_empty() {
        let mut ids = Vec::new();
        for wanted in &args.snapshots {
            ids.push(repo.find_snapshot(wanted, &filter)?.id);
        }
        ids
    } else if filtered {
        let (all, _) = repo.snapshots()?;
        all.iter()
            .filter(|s| filter.matches(&s.manifest))
            .map(|s| s.id)
            .collect()
    } else {
        Vec::new()
    };
    let options = StatsOptions {
        snapshots,
        days: args.days,
        now: jiff::Timestamp::now(),
    };
    let report = browse::stats(&repo, &options)?;
    if cli.json {
        output::print_report(&report)?;
    } else {
        print_report(&report, cli.quiet)?;
    }
    Ok(exit::OK)
}

fn print_report(r: &StatsReport, quiet: bool) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = r
        .snapshots
        .iter()
        .map(|s| {
            vec![
                s.short_id.clone(),
                super::ls::short_time(&s.time),
                s.files.to_string(),
                output::bytes(s.bytes_total),
                output::bytes(s.bytes_added),
                output::bytes(s.bytes_exclusive),
            ]
        })
        .collect();
    out!(
        "{}",
        output::table(
            &["ID", "Time", "Files", "Size", "Added", "Only here"],
            &rows
        )
    )?;
    if quiet {
        return Ok(());
    }
    let repo = &r.repository;
    outln!(
        "repository: {} snapshots, {} packs, {} stored; {} in all snapshots, {} distinct ({} stored)",
        repo.snapshots,
        repo.packs,
        output::bytes(repo.bytes_stored),
        output::bytes(repo.bytes_logical),
        output::bytes(repo.bytes_unique),
        output::bytes(repo.bytes_live),
    )?;
    outln!(
        "deduplication {:.2}x, compression {:.2}x; growth over the last {} days: {}/day",
        repo.dedup_ratio,
        repo.compression_ratio,
        repo.growth_days,
        output::bytes(repo.bytes_added_per_day.round() as u64)
    )
}
