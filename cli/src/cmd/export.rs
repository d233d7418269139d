//! `vault export`: a snapshot (or one path of it) as a tar archive on stdout or in a file.
use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use vault_engine::export::{self, ExportFormat, ExportOptions};

use crate::args::{Cli, ExportArgs, ExportFormatArg as Format};
use crate::convert;
use crate::exit;
use crate::output::{self, errln};
use crate::progress::Display;

pub fn run(cli: &Cli, args: &ExportArgs) -> Result<i32> {
    let format = match args.format {
        Some(f) => f,
        None if args
            .output
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "zst")) =>
        {
            Format::TarZst
        }
        None => Format::Tar,
    };
    if args.output.is_none() && std::io::stdout().is_terminal() {
        return Err(vault_engine::Error::InvalidArgument {
            what: "standard output".into(),
            reason: "is a terminal; refusing to write a tar archive to it: redirect it (`> file.tar`) or pass --output FILE".into(),
        }
        .into());
    }
    let repo = super::open(cli, false)?;
    let (wanted, subpath) = super::split_snapshot_arg(&args.snapshot);
    let snapshot = repo.find_snapshot(wanted, &convert::filter(&args.filter))?;
    let options = ExportOptions {
        subpath: subpath.map(str::to_string),
        format: match format {
            Format::Tar => ExportFormat::Tar,
            Format::TarZst => ExportFormat::TarZstd { level: args.level },
        },
    };
    let display = Display::new(cli.quiet, "export");
    let result = match &args.output {
        None => {
            // Not `stdout().lock()`: the engine may write from a worker thread (Send).
            let mut out = std::io::BufWriter::with_capacity(1 << 20, output::stdout());
            export::export(&repo, &snapshot, &options, &mut out, &display)
                .and_then(|s| {
                    out.flush()
                        .map(|()| s)
                        .map_err(|e| vault_engine::Error::Io {
                            path: "standard output".into(),
                            source: e,
                        })
                })
                .map_err(anyhow::Error::from)
        }
        Some(path) => write_file(&repo, &snapshot, &options, path, &display),
    };
    display.finish();
    let summary = result?;
    if !cli.quiet {
        // Never JSON: stdout may be the archive.
        errln!(
            "exported snapshot {}: {} files, {} dirs, {} symlinks, {} hard links, {} sparse, {}",
            snapshot.id.short(),
            summary.files,
            summary.dirs,
            summary.symlinks,
            summary.hardlinks,
            summary.sparse,
            output::bytes(summary.bytes)
        );
    }
    Ok(exit::OK)
}

/// Exports into `path`; a failed export removes the partial file.
fn write_file(
    repo: &vault_engine::Repository,
    snapshot: &vault_engine::SnapshotInfo,
    options: &ExportOptions,
    path: &std::path::Path,
    display: &Display,
) -> Result<export::ExportSummary> {
    let file = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = export::export(repo, snapshot, options, &mut out, display)
        .map_err(anyhow::Error::from)
        .and_then(|s| {
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(s)
        })
        .with_context(|| format!("{}", path.display()));
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}
