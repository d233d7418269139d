//! `vault find PATTERN`.

use anyhow::Result;
use vault_engine::browse::{self, FindOptions};

use crate::args::{Cli, FindArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, errln, outln};

pub fn run(cli: &Cli, args: &FindArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let filter = convert::filter(&args.filter);
    let mut code = exit::OK;
    let snapshots = if args.snapshot.is_empty() {
        let (all, unreadable) = repo.snapshots()?;
        for (_, error) in &unreadable {
            errln!("vault: {error}; not searched (`vault verify` tells what else is damaged)");
            code = exit::PROBLEMS;
        }
        all.into_iter()
            .filter(|s| filter.matches(&s.manifest))
            .collect()
    } else {
        let mut chosen = Vec::new();
        for wanted in &args.snapshot {
            let s = repo.find_snapshot(wanted, &filter)?;
            if !chosen
                .iter()
                .any(|c: &vault_engine::SnapshotInfo| c.id == s.id)
            {
                chosen.push(s);
            }
        }
        chosen.sort_by_cached_key(|s| (s.manifest.time.parse::<jiff::Timestamp>().ok(), s.id));
        chosen
    };
    let options = FindOptions {
        pattern: args.pattern.clone(),
        path: args.path.clone(),
        newer: args.newer,
        older: args.older,
        size: args.size,
    };
    let report = browse::find(&repo, &snapshots, &options)?;
    if cli.json {
        output::print_report(&report)?;
        return Ok(code);
    }
    let mut last_path: Option<&str> = None;
    for m in &report.matches {
        if last_path != Some(m.entry.path.as_str()) {
            outln!("{}", m.entry.path)?;
            last_path = Some(&m.entry.path);
        }
        let content = m.entry.content.as_deref().map_or("", |c| &c[..16]);
        outln!(
            "  {}  {}  {}  {:>12}  {}  {}",
            m.short_id,
            super::ls::short_time(&m.snapshot_time),
            super::ls::mode_string(m.entry.kind, m.entry.mode),
            m.entry.size,
            super::ls::short_time(&m.entry.mtime),
            content
        )?;
    }
    if !cli.quiet {
        let paths = {
            let mut p: Vec<&str> = report
                .matches
                .iter()
                .map(|m| m.entry.path.as_str())
                .collect();
            p.dedup();
            p.len()
        };
        outln!(
            "{} matches ({} paths) in {} snapshots; {} trees read, {} reused",
            report.matches.len(),
            paths,
            report.snapshots_searched,
            report.trees_read,
            report.trees_reused
        )?;
    }
    Ok(code)
}
