//! One module per subcommand, plus opening the repository the global options name.

mod config;
mod copy;
mod daemon;
mod dump;
mod edit;
pub mod export;
mod forget;
mod index;
mod init;
mod key;
mod list;
mod marks;
mod mount;
mod prune;
mod restore;
mod restore_app;
mod restore_test;
mod run;
mod schedule;
mod serve;
mod snapshot;
mod status;
mod verify;

mod diff;
mod find;
mod ls;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use vault_engine::storage::{self, Backend, Location, RemoteOptions};
use vault_engine::{Error, Repository};

use crate::args::{Cli, Command};
use crate::output::errln;

pub fn run(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Init(args) => init::run(cli, args),
        Command::Snapshot(args) => snapshot::run(cli, args),
        Command::List(args) => list::run(cli, args),
        Command::Restore(args) => restore::run(cli, args),
        Command::Dump(args) => dump::run(cli, args),
        Command::Export(args) => export::run(cli, args),
        Command::Verify(args) => verify::run(cli, args),
        Command::Forget(args) => forget::run(cli, args),
        Command::Prune(args) => prune::run(cli, args),
        Command::Protect(args) => marks::protect(cli, args, true),
        Command::Unprotect(args) => marks::protect(cli, args, false),
        Command::Undelete(args) => marks::undelete(cli, args),
        Command::Label(args) => edit::label(cli, args),
        Command::Tag(args) => edit::tag(cli, args),
        Command::Unlock(args) => marks::unlock(cli, args),
        Command::Index(command) => index::run(cli, command),
        Command::Key(command) => key::run(cli, command),
        Command::Copy(args) => copy::run(cli, args),
        Command::Ls(args) => ls::run(cli, args),
        Command::Find(args) => find::run(cli, args),
        Command::Diff(args) => diff::run(cli, args),
        Command::Stats(args) => stats::run(cli, args),
        Command::Mount(args) => mount::run(cli, args),
        Command::Config(command) => config::run(cli, command),
        Command::Run(args) => run::run(cli, args),
        Command::RestoreApp(args) => restore_app::run(cli, args),
        Command::RestoreTest(args) => restore_test::run(cli, args),
        Command::Status(args) => status::run(cli, args),
        Command::Serve(args) => serve::run(cli, args),
        Command::Schedule(command) => schedule::run(cli, command),
        Command::Daemon(args) => daemon::run(cli, args),
    }
}

/// The repository location: --repo / VAULT_REPO, or the default under the user's data
/// directory (then `true`).
pub fn location(cli: &Cli) -> Result<(Location, bool)> {
    match &cli.repo {
        Some(text) => Ok((Location::parse(text)?, false)),
        None => {
            let data = dirs::data_dir()
                .context("cannot find the user's data directory; pass --repo PATH")?;
            Ok((Location::Local(data.join("vault").join("repo")), true))
        }
    }
}

/// How remote repositories are reached: the global options and the usual environment
/// variables of S3 and ssh tools.
pub fn remote_options(cli: &Cli) -> Result<RemoteOptions> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let known_hosts = env("VAULT_SFTP_KNOWN_HOSTS").unwrap_or_else(|| "strict".into());
    if !["strict", "add", "accept"].contains(&known_hosts.as_str()) {
        return Err(Error::InvalidArgument {
            what: "VAULT_SFTP_KNOWN_HOSTS".into(),
            reason: format!("{known_hosts:?} is not one of strict, add, accept"),
        }
        .into());
    }
    Ok(RemoteOptions {
        connections: cli.connections.into(),
        retries: cli.retries.into(),
        spool_dir: cache_root(cli)?.join("uploads"),
        s3_region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
        s3_virtual_host: env("VAULT_S3_VIRTUAL_HOST").is_some_and(|v| v != "0" && v != "false"),
        sftp_key: env("VAULT_SFTP_KEY").map(PathBuf::from),
        sftp_known_hosts: known_hosts,
    })
}

/// The backend of a location.
pub fn backend(cli: &Cli, location: &Location) -> Result<Arc<dyn Backend>> {
    Ok(storage::open(location, &remote_options(cli)?)?)
}

pub fn cache_root(cli: &Cli) -> Result<PathBuf> {
    match &cli.cache_dir {
        Some(dir) => Ok(dir.clone()),
        None => Ok(dirs::cache_dir()
            .context("cannot find the user's cache directory; pass --cache-dir DIR")?
            .join("vault")),
    }
}

/// Opens the repository; with `create_default`, the default repository is created on first use.
pub fn open(cli: &Cli, create_default: bool) -> Result<Repository> {
    let (location, is_default) = location(cli)?;
    let cache = cache_root(cli)?;
    let backend = backend(cli, &location)?;
    let password = || crate::password::password(cli, false);
    let repo = match Repository::unlock(backend.clone(), &cache, &password) {
        Err(Error::NotARepository { .. }) if create_default && is_default => {
            // The default repository must work without any set-up (a first `vault snapshot`),
            // so it cannot ask for a password: it is not encrypted, and says so even with
            // --quiet, since a misspelt VAULT_REPO sends backups here.
            errln!(
                "vault: creating the default repository at {} -- NOT ENCRYPTED: anyone who can read it can read your backups; neither --repo nor VAULT_REPO is set; for an encrypted one run `vault init --encryption repokey --repo PATH`",
                location.display()
            );
            match Repository::init(backend.clone(), &cache, &Default::default()) {
                // Another vault created it at the same moment.
                Err(Error::AlreadyExists { .. }) => Repository::unlock(backend, &cache, &password)?,
                other => other?,
            }
        }
        other => other?,
    };
    if !cli.quiet {
        for notice in repo.notices() {
            errln!("vault: {notice}");
        }
    }
    Ok(repo)
}

/// Splits `SNAPSHOT[:SUBPATH]`.
pub fn split_snapshot_arg(text: &str) -> (&str, Option<&str>) {
    match text.split_once(':') {
        Some((snapshot, path)) => (snapshot, Some(path)),
        None => (text, None),
    }
}
