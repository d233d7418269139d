//! `vault status [APP…]`: recorded state of the applications' jobs.

use anyhow::Result;
use vault_engine::ops::status;

use crate::args::{Cli, StatusArgs};
use crate::exit;
use crate::output::{self, outln};

/// `3h 12m`-style age.
fn age(secs: u64) -> String {
    match secs {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

pub fn run(cli: &Cli, args: &StatusArgs) -> Result<i32> {
    let config = super::config::load(&args.ops)?;
    let state = super::config::state_dir(&args.ops)?;
    let report = status::status(&config, &state, &args.apps)?;
    if cli.json {
        output::print_report(&report)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .apps
            .iter()
            .map(|a| {
                vec![
                    a.app.clone(),
                    format!("{}{}", a.health, if a.running { " (running)" } else { "" }),
                    a.last_run
                        .as_ref()
                        .map(|r| match &r.failed_step {
                            Some(step) => format!("{} ({step} failed)", r.started),
                            None => r.started.clone(),
                        })
                        .unwrap_or_else(|| "never".into()),
                    a.newest_snapshot
                        .as_ref()
                        .map(|s| {
                            format!(
                                "{} ago, +{}",
                                age(s.age_secs),
                                output::bytes(s.record.bytes_added)
                            )
                        })
                        .unwrap_or_else(|| "none".into()),
                    a.repository_size_bytes
                        .map(output::bytes)
                        .unwrap_or_else(|| "?".into()),
                    match (&a.verify, a.verify_cycle_coverage) {
                        (Some(v), Some(c)) => format!(
                            "{} {:.0}% of cycle",
                            if v.last_clean == Some(true) {
                                "clean,"
                            } else {
                                "PROBLEMS,"
                            },
                            c * 100.0
                        ),
                        (Some(v), None) => {
                            if v.last_clean == Some(true) {
                                "clean".into()
                            } else {
                                "PROBLEMS".into()
                            }
                        }
                        _ => "-".into(),
                    },
                ]
            })
            .collect();
        output::out!(
            "{}",
            output::table(
                &[
                    "APP",
                    "HEALTH",
                    "LAST RUN",
                    "NEWEST SNAPSHOT",
                    "REPOSITORY",
                    "VERIFY"
                ],
                &rows
            )
        )?;
        for a in &report.apps {
            if let Some(run) = a.last_run.as_ref().filter(|r| r.failed_step.is_some()) {
                outln!("{}: {}", a.app, run.message)?;
            }
        }
    }
    Ok(if report.healthy {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}
