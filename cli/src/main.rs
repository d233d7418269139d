//! The `vault` command. Thin: parses arguments, calls the engine, renders its reports.

mod args;
mod cmd;
mod convert;
mod exit;
mod output;
mod parse;
mod password;
mod progress;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    vault_engine::init_thread_pool();
    let code = match cmd::run(&cli) {
        Ok(code) => code,
        Err(error) => exit::report(&error),
    };
    std::process::exit(code);
}
