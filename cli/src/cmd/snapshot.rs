use anyhow::Result;
use vault_engine::report::SnapshotTaken;
use vault_engine::snapshot::{self, OwnDir, SnapshotOptions, StreamSource};
use vault_engine::storage::Location;

use crate::args::{Cli, SnapshotArgs};
use crate::exit;
use crate::output::{self, outln};
use crate::progress::Display;

pub fn run(cli: &Cli, args: &SnapshotArgs) -> Result<i32> {
    let repo = super::open(cli, true)?;
    let mut streams = Vec::new();
    if args.stdin {
        streams.push(StreamSource::stdin(args.stdin_name.clone()));
    }
    for (name, command) in &args.commands {
        streams.push(StreamSource::command(
            name.clone(),
            command.clone(),
            args.command_timeout,
        ));
    }
    // The repository and the cache are never backed up, even when a source holds them.
    let mut own_dirs = vec![OwnDir {
        what: "cache",
        path: super::cache_root(cli)?,
    }];
    if let (Location::Local(path), _) = super::location(cli)? {
        own_dirs.push(OwnDir {
            what: "repository",
            path,
        });
    }
    let options = SnapshotOptions {
        streams,
        paths: args.paths.clone(),
        tags: args.tags.clone(),
        labels: args.labels.clone(),
        host: args.host.clone(),
        excludes: args.excludes.clone(),
        force_read: args.force_read,
        time: args.time,
        protect: args.protect,
        allow_empty: args.allow_empty,
        own_dirs,
    };
    let display = Display::new(cli.quiet, "snapshot");
    let result = snapshot::run(&repo, options, &display);
    display.finish();
    let report = result?;
    let m = &report.manifest;
    let s = &m.summary;
    if !cli.quiet {
        for dir in &report.excluded {
            eprintln!(
                "vault: excluding the {} {} from the snapshot (vault never backs up its own data)",
                dir.what,
                dir.path.display()
            );
        }
    }
    if cli.json {
        output::print_report(&SnapshotTaken::new(&report, args.protect))?;
    } else {
        outln!("{}", report.id)?;
        if !cli.quiet {
            eprintln!(
                "snapshot {} saved{}: {} files ({} unchanged), {} dirs; read {}, added {} ({} of {} chunks new) in {:.1}s",
                report.id.short(),
                if m.complete { "" } else { " INCOMPLETE" },
                s.files,
                s.files_unchanged,
                s.dirs,
                output::bytes(s.bytes_read),
                output::bytes(s.bytes_added),
                s.chunks_new,
                s.chunks_total,
                s.duration_secs
            );
        }
    }
    if m.complete {
        Ok(exit::OK)
    } else {
        eprintln!(
            "vault: snapshot {} is incomplete: {} source problem(s):",
            report.id.short(),
            s.errors.len()
        );
        for problem in &s.errors {
            eprintln!("  {}: {}", problem.path, problem.reason);
        }
        Ok(exit::PROBLEMS)
    }
}
