//! `vault schedule install | remove | status`: the applications' schedules as systemd timers
//! or crontab lines.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vault_engine::ops::schedule::{self, ScheduleOptions, ScheduleReport, Target};

use crate::args::{Cli, ScheduleArgs, ScheduleCommand};
use crate::exit;
use crate::output::{self, outln};

fn options(args: &ScheduleArgs) -> Result<ScheduleOptions> {
    let target = if args.cron {
        Target::Cron
    } else {
        let root = schedule::running_as_root();
        let user = args.user || (!args.system && !root);
        let unit_dir = match &args.unit_dir {
            Some(dir) => dir.clone(),
            None if user => dirs::config_dir()
                .context("cannot find the user's config directory (no HOME); pass --unit-dir DIR")?
                .join("systemd/user"),
            None => PathBuf::from("/etc/systemd/system"),
        };
        Target::Systemd {
            unit_dir,
            user,
            manage: args.unit_dir.is_none(),
        }
    };
    Ok(ScheduleOptions {
        target,
        binary: std::env::current_exe().context("cannot find the path of this vault binary")?,
        state_dir: args.ops.state_dir.clone(),
        dry_run: args.dry_run,
    })
}

pub fn run(cli: &Cli, command: &ScheduleCommand) -> Result<i32> {
    let (args, verb) = match command {
        ScheduleCommand::Install(args) => (args, "install"),
        ScheduleCommand::Remove(args) => (args, "remove"),
        ScheduleCommand::Status(args) => (args, "status"),
    };
    let config = super::config::load(&args.ops)?;
    let options = options(args)?;
    let report = match verb {
        "install" => schedule::install(&config, &options)?,
        "remove" => schedule::remove(&config, &options)?,
        _ => schedule::status(&config, &options)?,
    };
    if cli.json {
        output::print_report(&report)?;
    } else if !cli.quiet || args.dry_run {
        render(&report, verb)?;
    }
    Ok(exit::OK)
}

fn render(report: &ScheduleReport, verb: &str) -> Result<()> {
    let would = if report.dry_run { "would be " } else { "" };
    if verb == "install" && report.dry_run {
        for unit in &report.written {
            outln!("# {}\n{}", unit.path, unit.content)?;
        }
    }
    if verb != "status" {
        for unit in &report.written {
            outln!("{}: {would}written", unit.path)?;
        }
        for path in &report.removed {
            outln!("{path}: {would}removed")?;
        }
        if let Some(block) = &report.crontab_block {
            let done = if verb == "install" {
                "installed"
            } else {
                "removed"
            };
            outln!("crontab block {would}{done}:\n{}", block.trim_end())?;
        }
        for command in &report.commands {
            outln!(
                "{}{command}",
                if report.dry_run {
                    "would run: "
                } else {
                    "ran: "
                }
            )?;
        }
    }
    let rows: Vec<Vec<String>> = report
        .jobs
        .iter()
        .map(|job| {
            vec![
                if job.job == "run" {
                    job.app.clone()
                } else {
                    format!("{} ({})", job.app, job.job)
                },
                job.schedule.clone(),
                job.on_calendar
                    .clone()
                    .or_else(|| job.cron_line.clone())
                    .unwrap_or_default(),
                if job.installed { "yes" } else { "no" }.into(),
                job.next_runs.first().cloned().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let how = if report.target == "cron" {
        "CRONTAB LINE"
    } else {
        "ONCALENDAR"
    };
    output::out!(
        "{}",
        output::table(&["APP", "SCHEDULE", how, "INSTALLED", "NEXT RUN"], &rows)
    )?;
    if !report.unscheduled.is_empty() {
        outln!(
            "not scheduled (no schedule key): {}",
            report.unscheduled.join(", ")
        )?;
    }
    Ok(())
}
