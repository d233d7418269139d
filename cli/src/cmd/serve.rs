//! `vault serve`: the web dashboard ([`vault_serve`]) over the repository the global options
//! name (or the config's one repository), until the process is stopped.

use std::io::Write;

use anyhow::Result;
use vault_engine::ops::{self, RunOptions};
use vault_engine::Error;
use vault_serve::{Dashboard, Limits, ServeError, ServeOptions};

use crate::args::{Cli, OpsArgs, ServeArgs};
use crate::exit;
use crate::output::errln;

/// One line on stderr and the exit code of a server error.
fn report(error: ServeError) -> Result<i32> {
    match error {
        ServeError::Engine(e) => Err(e.into()),
        e => {
            errln!("vault: serve: {e}");
            Ok(if e.is_usage() {
                exit::USAGE
            } else {
                exit::ERROR
            })
        }
    }
}

pub fn run(cli: &Cli, args: &ServeArgs) -> Result<i32> {
    // Checked before anything is opened: an unsafe address never waits for a password.
    let token = match &args.token_file {
        Some(path) => match vault_serve::read_token(path) {
            Ok(token) => Some(token),
            Err(e) => return report(e),
        },
        None => None,
    };
    if let Err(e) = vault_serve::check_listen(args.listen, token.as_deref()) {
        return report(e);
    }
    let ops_args = OpsArgs {
        config: args.config.clone(),
        state_dir: args.state_dir.clone(),
    };
    let (config, state) = match &args.config {
        Some(_) => (
            Some(super::config::load(&ops_args)?),
            Some(super::config::state_dir(&ops_args)?),
        ),
        None => (None, None),
    };
    let repo = match (&cli.repo, &config) {
        (None, Some(config)) => {
            let names: Vec<&String> = config.config.repositories.keys().collect();
            let [name] = names.as_slice() else {
                return Err(Error::InvalidArgument {
                    what: "--repo".into(),
                    reason: format!(
                        "the config names {} repositories; pass --repo LOCATION to choose one",
                        names.len()
                    ),
                }
                .into());
            };
            let options = RunOptions {
                apps: Vec::new(),
                cache_root: super::cache_root(cli)?,
                remote: super::remote_options(cli)?,
                state: state.clone().expect("with config"),
            };
            ops::run::open(config, name, &options).map_err(anyhow::Error::msg)?
        }
        _ => super::open(cli, false)?,
    };
    let dashboard = match Dashboard::new(repo, config, state) {
        Ok(d) => d,
        Err(e) => return report(e),
    };
    let options = ServeOptions {
        listen: args.listen,
        token,
        limits: Limits {
            downloads: args.max_downloads.into(),
            ..Limits::default()
        },
    };
    let result = vault_serve::serve(dashboard, options, |addr| {
        // The first line on stdout: scripts and tests read the bound address from it.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on http://{addr}/");
        let _ = out.flush();
    });
    match result {
        Ok(()) => Ok(exit::OK),
        Err(e) => report(e),
    }
}
