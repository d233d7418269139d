use anyhow::Result;
use vault_engine::report::{ListReport, SnapshotEntry};

use crate::args::{Cli, ListArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, errln, out, outln};

pub fn run(cli: &Cli, args: &ListArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let filter = convert::filter(&args.filter);
    let (mut snapshots, unreadable) = repo.all_snapshots()?;
    snapshots.retain(|s| s.forgotten == args.forgotten);
    // Each error names its snapshot.
    for (_, error) in &unreadable {
        errln!("vault: {error}; `vault verify` tells what else is damaged");
    }
    let shown: Vec<_> = snapshots
        .iter()
        .filter(|s| filter.matches(&s.manifest))
        .collect();
    if cli.json {
        output::print_report(&ListReport {
            snapshots: shown
                .iter()
                .map(|s| SnapshotEntry {
                    replaced_by: s.replaced_by,
                    ..SnapshotEntry::new(s.id, &s.manifest, s.protected, s.forgotten)
                })
                .collect(),
        })?;
    } else {
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|s| {
                let m = &s.manifest;
                let labels: Vec<String> =
                    m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                vec![
                    s.id.short(),
                    m.time.clone(),
                    m.host.clone(),
                    m.tags.join(","),
                    labels.join(","),
                    output::bytes(m.summary.bytes_total),
                    [
                        (!m.complete).then_some("incomplete"),
                        s.protected.then_some("protected"),
                        (s.forgotten && s.replaced_by.is_none()).then_some("forgotten"),
                        s.replaced_by.is_some().then_some("replaced"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(","),
                    m.paths.join(" "),
                ]
            })
            .collect();
        out!(
            "{}",
            output::table(
                &["ID", "Time", "Host", "Tags", "Labels", "Size", "State", "Paths"],
                &rows
            )
        )?;
        if !cli.quiet {
            outln!(
                "{} {}snapshots",
                rows.len(),
                if args.forgotten { "forgotten " } else { "" }
            )?;
        }
    }
    Ok(if unreadable.is_empty() {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}
