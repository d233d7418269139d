//! `vault forget`.

use anyhow::Result;
use vault_engine::forget::{self, ForgetOptions, ForgetReport};
use vault_engine::retention::{self, Policy};
use vault_engine::Error;

use crate::args::{Cli, ForgetArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, out, outln};

pub fn run(cli: &Cli, args: &ForgetArgs) -> Result<i32> {
    let usage = |what: &'static str| {
        move |reason| Error::InvalidArgument {
            what: what.into(),
            reason,
        }
    };
    let group_by = retention::parse_group_by(&args.group_by).map_err(usage("--group-by"))?;
    let within = args
        .keep_within
        .as_deref()
        .map(retention::parse_within)
        .transpose()
        .map_err(usage("--keep-within"))?;
    let policy = Policy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        within,
        tags: args.keep_tags.clone(),
    };
    let options = ForgetOptions {
        policy,
        group_by,
        time_zone: if args.utc {
            jiff::tz::TimeZone::UTC
        } else {
            jiff::tz::TimeZone::system()
        },
        filter: convert::filter(&args.filter),
        snapshots: args.snapshots.clone(),
        dry_run: args.dry_run,
    };
    let repo = super::open(cli, false)?;
    let report = forget::run(&repo, &options)?;
    if cli.json {
        output::print_report(&report)?;
    } else if !cli.quiet {
        print_report(&report)?;
    }
    if args.prune && !args.dry_run {
        return super::prune::run_on(cli, &repo, &args.prune_options, false);
    }
    Ok(exit::OK)
}

fn print_report(r: &ForgetReport) -> std::io::Result<()> {
    for group in &r.groups {
        let key: Vec<String> = group.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
        outln!(
            "group {}:",
            if key.is_empty() {
                "(all)".to_string()
            } else {
                key.join(" ")
            }
        )?;
        let rows: Vec<Vec<String>> = group
            .snapshots
            .iter()
            .map(|f| {
                vec![
                    f.id.prefix(8),
                    f.time.clone(),
                    if f.keep { "keep" } else { "forget" }.to_string(),
                    f.reasons.join(", "),
                ]
            })
            .collect();
        out!(
            "{}",
            output::table(&["ID", "Time", "Action", "Reasons"], &rows)
        )?;
    }
    let verb = if r.dry_run { "would forget" } else { "forgot" };
    if r.groups.is_empty() {
        for id in &r.forgotten {
            outln!("{verb} {}", id.prefix(8))?;
        }
    }
    outln!(
        "{verb} {} snapshot(s), kept {}{}",
        r.forgotten.len(),
        r.kept,
        if r.dry_run || r.forgotten.is_empty() {
            ""
        } else {
            "; `vault undelete ID` brings one back until the next prune"
        }
    )?;
    Ok(())
}
