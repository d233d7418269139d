//! `vault key list|add|remove|passwd`: the key files of an encrypted repository.

use anyhow::Result;
use serde_json::json;

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
                output::print_json(&json!(keys
                    .iter()
                    .map(|k| json!({
                        "id": k.id,
                        "created": k.created,
                        "host": k.host,
                        "current": k.current,
                        "kdf": {"algorithm": "argon2id", "memory_kib": k.kdf.memory_kib, "passes": k.kdf.passes, "parallelism": k.kdf.parallelism},
                    }))
                    .collect::<Vec<_>>()))?;
            } else {
                if !repo.encryption().is_on() {
                    errln!("vault: the repository is not encrypted; it has no keys");
                }
                for k in &keys {
                    outln!(
                        "{} {}  {}  {}  argon2id {} KiB x{}",
                        if k.current { "*" } else { " " },
                        &k.id[..16],
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
        output::print_json(&json!({ "id": id }))?;
    } else if !cli.quiet {
        outln!("{what} {id}")?;
    }
    Ok(())
}
