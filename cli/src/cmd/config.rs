//! `vault config check`, and loading the operations config for `run` and `status`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vault_engine::ops::check::ConfigCheckReport;
use vault_engine::ops::config::{self, ConfigError};
use vault_engine::ops::load;
use vault_engine::ops::{LoadedConfig, RunOptions, StateDir};
use vault_engine::Error;

use crate::args::{Cli, ConfigCommand, OpsArgs};
use crate::exit;
use crate::output::{self, outln};

/// The config file `ops` names, or the default one; `Err` is a usage error (exit 2).
fn locate(ops: &OpsArgs) -> Result<PathBuf> {
    config::locate(ops.config.as_deref()).map_err(|reason| {
        Error::InvalidArgument {
            what: "config".into(),
            reason,
        }
        .into()
    })
}

/// A config problem as a usage error: `vault: FILE:LINE:COLUMN: KEY: what` (exit 2).
fn usage(error: ConfigError) -> anyhow::Error {
    Error::InvalidArgument {
        what: format!("{}:{}:{}", error.file.display(), error.line, error.column),
        reason: if error.key.is_empty() {
            error.message
        } else {
            format!("{}: {}", error.key, error.message)
        },
    }
    .into()
}

/// Loads and checks the config for `run` and `status`.
pub fn load(ops: &OpsArgs) -> Result<LoadedConfig> {
    load::load(&locate(ops)?).map_err(usage)
}

/// The state directory `ops` names, or the default one.
pub fn state_dir(ops: &OpsArgs) -> Result<StateDir> {
    let root = match &ops.state_dir {
        Some(dir) => dir.clone(),
        None => StateDir::default_root().context(
            "cannot find a state directory (no XDG_STATE_HOME nor HOME); pass --state-dir DIR",
        )?,
    };
    Ok(StateDir::new(root))
}

/// What `vault run` and `vault daemon` pass to the jobs of `apps` (every application when
/// empty): the cache, remote and state settings of the command line.
pub fn run_options(cli: &Cli, ops: &OpsArgs, apps: &[String]) -> Result<RunOptions> {
    Ok(RunOptions {
        apps: apps.to_vec(),
        cache_root: super::cache_root(cli)?,
        remote: super::remote_options(cli)?,
        state: state_dir(ops)?,
    })
}

pub fn run(cli: &Cli, command: &ConfigCommand) -> Result<i32> {
    let ConfigCommand::Check { ops } = command;
    let file = locate(ops)?;
    match load::load(&file) {
        Ok(loaded) => {
            let report = ConfigCheckReport::valid(&loaded);
            if cli.json {
                output::print_report(&report)?;
            } else if !cli.quiet {
                outln!(
                    "{}: valid: {} repositor{}, {} application{}",
                    report.config,
                    report.repositories.len(),
                    if report.repositories.len() == 1 {
                        "y"
                    } else {
                        "ies"
                    },
                    report.applications.len(),
                    if report.applications.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                )?;
                for app in &report.applications {
                    outln!(
                        "  {}: into {}; {} database(s), {} path(s); schedule {}; copies to {}",
                        app.name,
                        app.repository,
                        app.databases.len(),
                        app.paths.len(),
                        app.schedule.as_deref().unwrap_or("none"),
                        if app.copy_to.is_empty() {
                            "none".to_string()
                        } else {
                            app.copy_to.join(", ")
                        },
                    )?;
                }
            }
            Ok(exit::OK)
        }
        Err(error) if cli.json => {
            output::print_report(&ConfigCheckReport::invalid(error))?;
            Ok(exit::USAGE)
        }
        Err(error) => Err(usage(error)),
    }
}
