//! `vault run [APP…]`: the applications' jobs from the config.

use anyhow::Result;
use vault_engine::ops::run::{self, RunResult, StepStatus};

use crate::args::{Cli, RunArgs};
use crate::exit;
use crate::output::{self, outln};
use crate::progress::Display;

pub fn run(cli: &Cli, args: &RunArgs) -> Result<i32> {
    let config = super::config::load(&args.ops)?;
    let options = super::config::run_options(cli, &args.ops, &args.apps)?;
    let display = Display::new(cli.quiet || cli.json, "running");
    let result = run::run(&config, &options, &display);
    display.finish();
    let report = result?;
    if cli.json {
        output::print_report(&report)?;
    } else {
        for app in &report.apps {
            let result = match app.result {
                RunResult::Ok => "ok",
                RunResult::Failed => "FAILED",
                RunResult::Skipped => "skipped",
            };
            if cli.quiet && app.result == RunResult::Ok && !app.notification_failed() {
                continue;
            }
            outln!(
                "{}: {result} in {:.1}s: {}",
                app.app,
                app.duration_secs,
                app.message
            )?;
            for step in &app.steps {
                let status = match step.status {
                    StepStatus::Ok => "ok",
                    StepStatus::Failed => "FAILED",
                    StepStatus::Skipped => "skipped",
                };
                outln!(
                    "  {:<12} {:<8} {:<8} {}",
                    step.step,
                    step.repository,
                    status,
                    step.message
                )?;
            }
            for sent in app.notifications.iter().filter(|n| !cli.quiet || !n.ok) {
                outln!(
                    "  {:<12} {:<8} {:<8} {}",
                    format!("notify-{}", sent.kind),
                    "",
                    if sent.ok { "ok" } else { "FAILED" },
                    sent.message
                )?;
            }
        }
    }
    // A notification that did not go out fails the command (exit 1) so that cron or systemd
    // shows it, but the job's result and its snapshot stand.
    Ok(if report.failed() || report.notification_failed() {
        exit::ERROR
    } else if report.skipped() {
        exit::BUSY
    } else {
        exit::OK
    })
}
