use anyhow::Result;
use vault_engine::report::RebuildReport;

use crate::args::{Cli, IndexCommand};
use crate::exit;
use crate::output::{self, errln, outln};

pub fn run(cli: &Cli, command: &IndexCommand) -> Result<i32> {
    match command {
        IndexCommand::Rebuild => {
            let repo = super::open(cli, false)?;
            let report = repo.rebuild_index()?;
            let blobs = repo.index().blob_count()?;
            if cli.json {
                output::print_report(&RebuildReport::new(&report, blobs))?;
            } else {
                for (pack, reason) in &report.unreadable {
                    errln!("vault: pack {pack} could not be read: {reason}");
                }
                for (_, error) in &report.segments_unreadable {
                    errln!("vault: {error}; {}", vault_engine::repo::SEGMENT_LOST);
                }
                if !cli.quiet {
                    outln!(
                        "index rebuilt from {} packs: {} blobs",
                        report.packs_added,
                        blobs
                    )?;
                }
            }
            Ok(
                if report.unreadable.is_empty() && report.segments_unreadable.is_empty() {
                    exit::OK
                } else {
                    exit::PROBLEMS
                },
            )
        }
    }
}
