//! `vault export`: a snapshot (or one path of it) as a tar archive on stdout or in a file.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use vault_engine::export::{self, ExportFormat, ExportOptions};

use crate::args::{Cli, SnapshotFilterArgs};
use crate::convert;
use crate::exit;
use crate::output::{self, errln};
use crate::progress::Display;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// POSIX (pax) tar, readable by GNU tar, bsdtar and Python's tarfile
    Tar,
    /// The same, compressed with zstd (`tar --zstd -xf`, or `zstd -d` then `tar -xf`)
    #[value(name = "tar.zst")]
    TarZst,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Extract with `tar -xpf FILE.tar -C DIR` (as root add --same-owner). Sparse files use GNU tar's sparse format; hard links, symlinks, fifos, devices, modes, owners and nanosecond mtimes are kept."
)]
pub struct ExportArgs {
    /// Snapshot id, unique id prefix or `latest`, optionally with :SUBPATH
    #[arg(value_name = "SNAPSHOT[:SUBPATH]")]
    pub snapshot: String,
    /// Archive format [default: tar, or tar.zst when --output ends in .zst]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// zstd compression level for tar.zst (1 fastest .. 22 smallest)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,
    /// Write the archive to FILE instead of standard output
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

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
