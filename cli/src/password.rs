//! Where the password of an encrypted repository comes from, in this order: `--password-file` /
//! `VAULT_PASSWORD_FILE`, `--password-command` / `VAULT_PASSWORD_COMMAND`, `VAULT_PASSWORD`
//! (a flag and its variable are one source), then a prompt on the
//! controlling terminal. A run with none of them (cron, CI) fails with
//! [`Error::PasswordNeeded`] instead of waiting for input.

use std::path::Path;
use std::process::{Command, Stdio};

use vault_engine::repo::Password;
use vault_engine::Error;

use crate::args::{Cli, KdfArgs, NewKeyArgs};

/// The text of a password file or command output, without one trailing newline.
fn trimmed(mut bytes: Vec<u8>) -> Password {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Password::new(bytes)
}

fn from_file(path: &Path) -> Result<Password, Error> {
    std::fs::read(path)
        .map(trimmed)
        .map_err(|e| Error::Password {
            source_name: format!("password file {}", path.display()),
            reason: format!("{e}; pass a readable file to --password-file"),
        })
}

fn from_command(command: &str) -> Result<Password, Error> {
    let failed = |reason: String| Error::Password {
        source_name: format!("password command {command:?}"),
        reason,
    };
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| failed(format!("could not be run: {e}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "failed ({}); fix it or pass --password-file",
            output.status
        )));
    }
    Ok(trimmed(output.stdout))
}

/// Asks on the controlling terminal (twice with `confirm`); `None` when there is none.
fn prompt(what: &str, confirm: bool) -> Result<Option<Password>, Error> {
    let Ok(first) = rpassword::prompt_password(format!("{what}: ")) else {
        return Ok(None);
    };
    if confirm {
        let again = rpassword::prompt_password(format!("{what} again: ")).unwrap_or_default();
        if again != first {
            return Err(Error::Password {
                source_name: "terminal".into(),
                reason: "the two passwords differ; nothing was written".into(),
            });
        }
    }
    Ok(Some(Password::new(first.into_bytes())))
}

/// The password for `cli`'s repository; `confirm` asks twice on a terminal (a new repository).
pub fn password(cli: &Cli, confirm: bool) -> Result<Password, Error> {
    if let Some(path) = &cli.password_file {
        return from_file(path);
    }
    if let Some(command) = &cli.password_command {
        return from_command(command);
    }
    if let Some(text) = std::env::var_os("VAULT_PASSWORD") {
        return Ok(Password::new(text.into_encoded_bytes()));
    }
    prompt("repository password", confirm)?.ok_or(Error::PasswordNeeded)
}

/// The password of `vault copy`'s destination: `--to-password-file`, `--to-password-command`,
/// `VAULT_TO_PASSWORD`, then a prompt.
pub fn destination_password(file: Option<&Path>, command: Option<&str>) -> Result<Password, Error> {
    if let Some(path) = file {
        return from_file(path);
    }
    if let Some(command) = command {
        return from_command(command);
    }
    if let Some(text) = std::env::var_os("VAULT_TO_PASSWORD") {
        return Ok(Password::new(text.into_encoded_bytes()));
    }
    prompt("destination repository password", false)?.ok_or_else(|| Error::Password {
        source_name: "destination password".into(),
        reason: "the destination is encrypted: pass --to-password-file PATH or --to-password-command CMD, or set VAULT_TO_PASSWORD".into(),
    })
}

/// A new password for `vault key add` / `passwd`: `--new-password-file`, `VAULT_NEW_PASSWORD`,
/// or asked twice on the terminal.
pub fn new_password(args: &NewKeyArgs) -> Result<Password, Error> {
    let password = if let Some(path) = &args.new_password_file {
        from_file(path)?
    } else if let Some(text) = std::env::var_os("VAULT_NEW_PASSWORD") {
        Password::new(text.into_encoded_bytes())
    } else {
        prompt("new password", true)?.ok_or_else(|| Error::Password {
            source_name: "new password".into(),
            reason: "none given: pass --new-password-file PATH or set VAULT_NEW_PASSWORD (no terminal to ask on)".into(),
        })?
    };
    refuse_empty(password)
}

/// An empty password protects nothing: refused for new keys.
pub fn refuse_empty(password: Password) -> Result<Password, Error> {
    if password.is_empty() {
        return Err(Error::Password {
            source_name: "new password".into(),
            reason: "it is empty; choose a real one".into(),
        });
    }
    Ok(password)
}

/// Refuses KDF parameters the engine would refuse, before any password is asked for.
pub fn check_kdf(args: &KdfArgs) -> Result<(), Error> {
    kdf(args)
        .validate()
        .map_err(|reason| Error::InvalidArgument {
            what: "--kdf-memory / --kdf-passes".into(),
            reason,
        })
}

pub fn kdf(args: &KdfArgs) -> vault_engine::keys::keyfile::KdfParams {
    vault_engine::keys::keyfile::KdfParams {
        memory_kib: args.kdf_memory / 1024,
        passes: args.kdf_passes,
        parallelism: 1,
    }
}
