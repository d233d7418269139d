use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use vault_engine::storage::LocalBackend;
use vault_engine::{ChunkerParams, InitOptions, Repository};

use crate::args::{Cli, InitArgs};
use crate::exit;
use crate::output;

pub fn run(cli: &Cli, args: &InitArgs) -> Result<i32> {
    let (path, _) = super::repo_path(cli)?;
    let mut options = InitOptions {
        compression: args.compression,
        ..InitOptions::default()
    };
    if args.chunk_min.is_some() || args.chunk_avg.is_some() || args.chunk_max.is_some() {
        // Explicit sizes apply to every kind of source; unspecified ones scale from the average.
        let avg = args.chunk_avg.unwrap_or(options.chunker.stream.avg);
        let params = ChunkerParams {
            min: args.chunk_min.unwrap_or(avg / 4),
            avg,
            max: args.chunk_max.unwrap_or(avg.saturating_mul(4)),
        };
        options.chunker.stream = params;
        options.chunker.file = params;
    }
    let repo = Repository::init(
        Arc::new(LocalBackend::new(&path)),
        &super::cache_root(cli)?,
        &options,
    )?;
    if cli.json {
        output::print_json(&json!({
            "id": repo.id().to_hex(),
            "location": repo.location(),
            "chunker": repo.config().chunker,
            "compression": repo.config().compression,
        }));
    } else if !cli.quiet {
        println!(
            "created repository {} at {}",
            repo.id().short(),
            repo.location()
        );
    }
    Ok(exit::OK)
}
