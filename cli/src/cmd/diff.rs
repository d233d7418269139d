//! `vault diff A B [PATH]`.

use anyhow::Result;
use vault_engine::browse::{self, Change, ChangeKind, DiffOptions, DiffReport};

use crate::args::{Cli, DiffArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, out, outln};

pub fn run(cli: &Cli, args: &DiffArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let filter = convert::filter(&args.filter);
    let a = repo.find_snapshot(&args.a, &filter)?;
    let b = repo.find_snapshot(&args.b, &filter)?;
    let options = DiffOptions {
        path: args.path.clone().unwrap_or_else(|| "/".into()),
        stat: args.stat,
    };
    let report = browse::diff(&repo, &a, &b, &options)?;
    if cli.json {
        output::print_report(&report)?;
        return Ok(exit::OK);
    }
    match &report.directories {
        Some(dirs) => {
            let rows: Vec<Vec<String>> = dirs
                .iter()
                .map(|d| {
                    vec![
                        d.path.clone(),
                        d.changes.to_string(),
                        format!("+{}", output::bytes(d.bytes_added)),
                        format!("-{}", output::bytes(d.bytes_removed)),
                        format!("~{}", output::bytes(d.bytes_modified)),
                    ]
                })
                .collect();
            out!(
                "{}",
                output::table(
                    &["Directory", "Changes", "Added", "Removed", "Modified"],
                    &rows
                )
            )?;
        }
        None => {
            for change in &report.changes {
                outln!("{}", change_line(change))?;
            }
        }
    }
    if !cli.quiet {
        outln!("{}", summary_line(&report))?;
    }
    Ok(exit::OK)
}

/// `M    /srv/cms/a.jpg  (12.0 KiB new)`.
fn change_line(c: &Change) -> String {
    let detail = match c.change {
        ChangeKind::Added | ChangeKind::Removed if c.bytes > 0 => {
            format!("  ({})", output::bytes(c.bytes))
        }
        ChangeKind::Modified if c.bytes > 0 => format!("  ({} new)", output::bytes(c.bytes)),
        ChangeKind::TypeChanged => format!(
            "  ({} -> {})",
            c.type_before.unwrap_or("?"),
            c.type_after.unwrap_or("?")
        ),
        _ => String::new(),
    };
    format!("{}    {}{}", c.change.symbol(), c.path, detail)
}

fn summary_line(r: &DiffReport) -> String {
    let s = &r.summary;
    format!(
        "{} added, {} removed, {} modified, {} metadata only, {} type changed; {} added, {} removed, {} new in modified files; {} trees read",
        s.added,
        s.removed,
        s.modified,
        s.metadata,
        s.type_changed,
        output::bytes(s.bytes_added),
        output::bytes(s.bytes_removed),
        output::bytes(s.bytes_modified),
        r.trees_read
    )
}
