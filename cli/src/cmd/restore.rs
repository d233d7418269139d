use anyhow::Result;
use serde_json::json;
use vault_engine::restore::{self, RestoreOptions};

use crate::args::{Cli, RestoreArgs};
use crate::convert;
use crate::exit;
use crate::output;
use crate::progress::Display;

pub fn run(cli: &Cli, args: &RestoreArgs) -> Result<i32> {
    let repo = super::open(cli, false)?;
    let (wanted, subpath) = super::split_snapshot_arg(&args.snapshot);
    let snapshot = repo.find_snapshot(wanted, &convert::filter(&args.filter))?;
    let options = RestoreOptions {
        subpath: subpath.map(str::to_string),
        target: args.target.clone(),
        includes: args.includes.clone(),
        overwrite: args.overwrite,
    };
    let display = Display::new(cli.quiet, "restore");
    let result = restore::run(&repo, &snapshot, &options, &display);
    display.finish();
    let report = result?;
    if cli.json {
        output::print_json(
            &json!({ "snapshot": snapshot.id.to_hex(), "target": args.target, "report": report }),
        );
    } else if !cli.quiet {
        eprintln!(
            "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} hard links, {} written",
            snapshot.id.short(),
            args.target.display(),
            report.files,
            report.dirs,
            report.symlinks,
            report.hardlinks,
            output::bytes(report.bytes_written)
        );
    }
    Ok(if report.warnings.is_empty() {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}
