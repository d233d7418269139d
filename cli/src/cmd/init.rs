use anyhow::Result;
use vault_engine::report::InitReport;
use vault_engine::{ChunkerParams, InitOptions, Repository};

use crate::args::{Cli, EncryptionArg, InitArgs};
use crate::exit;
use crate::output::{self, outln};
use crate::password;

pub fn run(cli: &Cli, args: &InitArgs) -> Result<i32> {
    let (location, _) = super::location(cli)?;
    let mut options = InitOptions {
        compression: args.compression,
        ..InitOptions::default()
    };
    let backend = super::backend(cli, &location)?;
    if Repository::exists(backend.as_ref())? {
        // Before asking for a password that would not be used.
        return Err(vault_engine::Error::AlreadyExists {
            path: location.display().into(),
        }
        .into());
    }
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
    options.validate()?;
    if args.encryption == EncryptionArg::Repokey {
        password::check_kdf(&args.kdf)?;
        let password = password::refuse_empty(password::password(cli, true)?)?;
        options.encryption = Some((password, password::kdf(&args.kdf)));
    }
    let repo = Repository::init(backend, &super::cache_root(cli)?, &options)?;
    if cli.json {
        output::print_report(&InitReport {
            id: repo.id(),
            location: repo.location(),
            chunker: repo.config().chunker.clone(),
            compression: repo.config().compression,
            encrypted: repo.encryption().is_on(),
        })?;
    } else if !cli.quiet {
        outln!(
            "created {} repository {} at {}",
            if repo.encryption().is_on() {
                "encrypted"
            } else {
                "unencrypted"
            },
            repo.id().short(),
            repo.location()
        )?;
        if repo.encryption().is_on() {
            outln!(
                "keep the password safe: without it (or another key's) the backups cannot be read"
            )?;
        }
    }
    Ok(exit::OK)
}
