//! `vault restore-app APP [SNAPSHOT] --as NAME [--target DIR]`: an application restored under a
//! new name.

use anyhow::{Context, Result};
use vault_engine::ops::restore_app::{self, RestoreAppOptions};

use crate::args::{Cli, RestoreAppArgs};
use crate::exit;
use crate::output::{self, errln, outln};
use crate::progress::Display;

pub fn run(cli: &Cli, args: &RestoreAppArgs) -> Result<i32> {
    let config = super::config::load(&args.ops)?;
    let options = RestoreAppOptions {
        app: args.app.clone(),
        snapshot: args.snapshot.clone(),
        name: args.name.clone(),
        target: args.target.clone(),
        overwrite: args.overwrite,
        base: std::env::current_dir().context("the current directory")?,
        run: super::config::run_options(cli, &args.ops, &[])?,
    };
    let display = Display::new(cli.quiet || cli.json, "restore");
    let result = restore_app::restore_app(&config, &options, &display);
    display.finish();
    let report = result?;
    if cli.json {
        output::print_report(&report)?;
    } else if !cli.quiet {
        let short = &report.snapshot[..8];
        if let (Some(files), Some(target)) = (&report.files, &report.target) {
            outln!(
                "{}: snapshot {short}: files restored to {}: {} files, {} dirs, {} written",
                report.app,
                target.display(),
                files.files,
                files.dirs,
                output::bytes(files.bytes_written)
            )?;
        }
        for database in &report.databases {
            outln!(
                "{}: snapshot {short}: {} {} -> {:?}: {}{}",
                report.app,
                database.kind,
                database.stored_as,
                database.restored_as,
                database.status,
                if database.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", database.message)
                }
            )?;
        }
    }
    if let Some(error) = &report.error {
        errln!("vault: restore-app {}: {error}", report.app);
        return Ok(exit::ERROR);
    }
    Ok(exit::OK)
}
