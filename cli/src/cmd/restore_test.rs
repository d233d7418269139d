//! `vault restore-test [APP…]`: restore tests from the config, with their checks.

use anyhow::Result;
use vault_engine::ops::restore_test;

use crate::args::{Cli, RestoreTestArgs};
use crate::exit;
use crate::output::{self, errln, outln};
use crate::progress::Display;

pub fn run(cli: &Cli, args: &RestoreTestArgs) -> Result<i32> {
    let config = super::config::load(&args.ops)?;
    let options = super::config::run_options(cli, &args.ops, &args.apps)?;
    let display = Display::new(cli.quiet || cli.json, "restore test");
    let result = restore_test::restore_test(&config, &options, &display);
    display.finish();
    let report = result?;
    if cli.json {
        output::print_report(&report)?;
    } else {
        for app in &report.apps {
            if !cli.quiet || !app.ok {
                outln!(
                    "{}: restore test {} in {:.1}s{}",
                    app.app,
                    if app.ok { "passed" } else { "FAILED" },
                    app.duration_secs,
                    app.snapshot
                        .as_deref()
                        .map(|s| format!(" (snapshot {})", &s[..8]))
                        .unwrap_or_default()
                )?;
            }
            for check in app.checks.iter().filter(|c| !cli.quiet || !c.ok) {
                outln!(
                    "  {:<6} {}: {}",
                    if check.ok { "ok" } else { "FAILED" },
                    check.check,
                    check.message
                )?;
            }
        }
    }
    let mut code = exit::OK;
    for app in report.apps.iter().filter(|a| !a.ok) {
        if !cli.json {
            errln!(
                "vault: restore test of {}: {}",
                app.app,
                app.error.as_deref().unwrap_or("failed")
            );
        }
        code = exit::ERROR;
    }
    Ok(code)
}
