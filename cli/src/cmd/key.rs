//! `vault key list|add|remove|passwd`: the key files of an encrypted repository.

use anyhow::Result;
use vault_engine::report::{KeyEntry, KeyListReport, KeyReport};

use crate::args::{Cli, KeyCommand};
use crate::exit;
use crate::output::{self, errln, outln};
use crate::password;

pub fn run(cli: &Cli, command: &KeyCommand) -> Result<i32> {
    let mut repo = super::open(cli, false)?;
    match command {
        KeyCommand::List => {
            let keys = repo.keys()?;
            if cli.json {
                output::print_report(&KeyListReport {
                    keys: keys.iter().map(KeyEntry::from).collect(),
                })?;
            } else {
                if !repo.encryption().is_on() {
                    errln!("vault: the repository is not encrypted; it has no keys");
                }
                for k in &keys {
                    outln!(
                        "{} {}  {}  {}  argon2id {} KiB x{}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        k.created,
                        k.host,
                        k.kdf.memory_kib,
                        k.kdf.passes
                    )?;
                }
            }
        }
        KeyCommand::Add(args) => {
            password::check_kdf(&args.kdf)?;
            let new = password::new_password(args)?;
            let id = repo.add_key(&new, password::kdf(&args.kdf))?;
            report(cli, "added key", &id)?;
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(id)?;
            report(cli, "removed key", &removed)?;
        }
        KeyCommand::Passwd(args) => {
            password::check_kdf(&args.kdf)?;
            let new = password::new_password(args)?;
            let id = repo.change_password(&new, password::kdf(&args.kdf))?;
            report(cli, "password changed; new key", &id)?;
        }
    }
    Ok(exit::OK)
}

fn report(cli: &Cli, what: &str, id: &str) -> std::io::Result<()> {
    if cli.json {
        output::print_report(&KeyReport { id: id.to_string() })?;
    } else if !cli.quiet {
        outln!("{what} {id}")?;
    }
    Ok(())
}
