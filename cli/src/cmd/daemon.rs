//! `vault daemon [APP…]`: the schedules in the foreground, one line (or, with --json, one
//! JSON object) per job on standard output, until SIGINT or SIGTERM.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use vault_engine::ops::daemon::{self, DaemonEvent};
use vault_engine::ops::run::RunResult;
use vault_engine::report::JsonReport;

use crate::args::{Cli, DaemonArgs};
use crate::exit;
use crate::output::{self, outln};
use crate::progress::Display;

pub fn run(cli: &Cli, args: &DaemonArgs) -> Result<i32> {
    let config = super::config::load(&args.ops)?;
    let options = super::config::run_options(cli, &args.ops, &args.apps)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }
    // No progress bars: a daemon's output is a log.
    let display = Display::new(true, "running");
    let mut failed_output = None;
    let mut log = |event: &DaemonEvent| {
        let line = match event {
            DaemonEvent::Started { apps } => {
                if cli.json {
                    return;
                }
                let apps: Vec<String> = apps
                    .iter()
                    .map(|(app, at)| format!("{app} (next {at})"))
                    .collect();
                format!("vault daemon: scheduling {}", apps.join(", "))
            }
            DaemonEvent::Ran(report) | DaemonEvent::Missed(report) if cli.json => {
                report.to_json_line()
            }
            DaemonEvent::Ran(report) | DaemonEvent::Missed(report) => {
                let result = match report.result {
                    RunResult::Ok => "ok",
                    RunResult::Failed => "FAILED",
                    RunResult::Skipped => "skipped",
                };
                let failed: Vec<&str> = report
                    .notifications
                    .iter()
                    .filter(|n| !n.ok)
                    .map(|n| n.message.as_str())
                    .collect();
                format!(
                    "{} {}: {result} in {:.1}s: {}{}",
                    report.started,
                    report.app,
                    report.duration_secs,
                    report.message,
                    if failed.is_empty() {
                        String::new()
                    } else {
                        format!("; notification FAILED: {}", failed.join("; "))
                    }
                )
            }
            DaemonEvent::Tested(report) if cli.json => report.to_json_line(),
            DaemonEvent::Tested(report) => format!(
                "{} {}: restore test {} in {:.1}s{}",
                report.started,
                report.app,
                if report.ok { "passed" } else { "FAILED" },
                report.duration_secs,
                report
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            DaemonEvent::Stopping => {
                if cli.json {
                    return;
                }
                "vault daemon: stopping (signal received)".into()
            }
        };
        if let Err(e) = outln!("{line}") {
            failed_output.get_or_insert(e);
        }
    };
    let result = daemon::daemon(&config, &options, &stop, &display, &mut log);
    display.finish();
    result?;
    if let Some(e) = failed_output {
        if !output::stdout_closed() {
            return Err(e.into());
        }
    }
    Ok(exit::OK)
}
