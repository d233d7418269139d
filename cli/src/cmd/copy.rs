use anyhow::Result;
use vault_engine::storage::Location;
use vault_engine::{copy, Repository};

use crate::args::{Cli, CopyArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, errln, outln};
use crate::password;
use crate::progress::Display;

pub fn run(cli: &Cli, args: &CopyArgs) -> Result<i32> {
    let source = super::open(cli, false)?;
    let location = Location::parse(&args.to)?;
    let backend = super::backend(cli, &location)?;
    let password = || {
        password::destination_password(
            args.to_password_file.as_deref(),
            args.to_password_command.as_deref(),
        )
    };
    let dest = Repository::unlock(backend, &super::cache_root(cli)?, &password)?;
    if !cli.quiet {
        for notice in dest.notices() {
            errln!("vault: destination: {notice}");
        }
    }
    let filter = convert::filter(&args.filter);
    let snapshots = if args.snapshots.is_empty() {
        let (all, _) = source.snapshots()?;
        all.into_iter()
            .filter(|s| filter.matches(&s.manifest))
            .collect()
    } else {
        args.snapshots
            .iter()
            .map(|wanted| source.find_snapshot(wanted, &filter))
            .collect::<Result<Vec<_>, _>>()?
    };
    let progress = Display::new(cli.quiet || cli.json, "copying");
    let report = copy::run(&source, &dest, &snapshots, &progress)?;
    progress.finish();
    if cli.json {
        output::print_report(&report)?;
    } else if !cli.quiet {
        for copied in &report.copied {
            match copied.replaced {
                Some(old) => outln!(
                    "copied snapshot {} as {}, replacing {} (its tags or labels were edited)",
                    copied.source.short(),
                    copied.destination.short(),
                    old.short()
                )?,
                None => outln!(
                    "copied snapshot {} as {}",
                    copied.source.short(),
                    copied.destination.short()
                )?,
            }
        }
        outln!(
            "{} snapshot(s) copied, {} already in {}; {} new blobs ({} before compression, {} of packs written), {} read",
            report.copied.len(),
            report.skipped.len(),
            dest.location(),
            report.blobs_stored,
            output::bytes(report.bytes_stored),
            output::bytes(report.bytes_written),
            output::bytes(report.bytes_read),
        )?;
    }
    Ok(exit::OK)
}
