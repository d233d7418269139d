//! Database dumps: the command line that writes each configured database to standard output in
//! a plain format that deduplicates, and the check that its tool is installed.
//!
//! Input: a [`DatabaseConfig`]. Output: a [`Dump`] (the path it is stored under in the snapshot
//! and the `sh -c` line), taken by the snapshot as a command stream source exactly like
//! `vault snapshot --command NAME=CMD`.

use std::path::{Path, PathBuf};

use super::config::DatabaseConfig;

/// One database's dump, as the snapshot takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// Path inside the snapshot, `databases/<name>.sql`.
    pub stored_as: String,
    /// The `sh -c` command line writing the dump to standard output.
    pub command: String,
}

/// `databases/<name>.sql` for `database`; refuses a name that is not a plain file name.
pub fn stored_name(database: &DatabaseConfig) -> Result<String, String> {
    let name = match database {
        DatabaseConfig::Postgresql { name, .. }
        | DatabaseConfig::Mysql { name, .. }
        | DatabaseConfig::Command { name, .. } => name.clone(),
        DatabaseConfig::Sqlite {
            name: Some(name), ..
        } => name.clone(),
        DatabaseConfig::Sqlite { path, name: None } => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
        return Err(format!(
            "database name {name:?} cannot be a file name in the snapshot; set name = \"...\" (letters, digits, '-', '_')"
        ));
    }
    Ok(format!("databases/{name}.sql"))
}

/// `'...'` for `sh -c`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// The program `name` in `bin_dir`, else on PATH; else an error naming the Debian package.
pub(super) fn tool(
    names: &[&str],
    bin_dir: Option<&Path>,
    package: &str,
) -> Result<PathBuf, String> {
    for name in names {
        let found = match bin_dir {
            Some(dir) => Some(dir.join(name)).filter(|p| is_executable(p)),
            None => std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(name))
                    .find(|p| is_executable(p))
            }),
        };
        if let Some(path) = found {
            return Ok(path);
        }
    }
    let place = match bin_dir {
        Some(dir) => format!("in {}", dir.display()),
        None => "on PATH".into(),
    };
    Err(format!(
        "{} not found {place}: install it (Debian: `apt-get install {package}`){}",
        names.join(" / "),
        if bin_dir.is_some() {
            " or fix bin_dir"
        } else {
            " or set bin_dir"
        }
    ))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The dump of `database`, or why it cannot be taken (a missing tool names its package).
pub fn dump(database: &DatabaseConfig) -> Result<Dump, String> {
    let stored_as = stored_name(database)?;
    let command = match database {
        DatabaseConfig::Postgresql {
            name,
            host,
            port,
            user,
            bin_dir,
        } => {
            let pg_dump = tool(&["pg_dump"], bin_dir.as_deref(), "postgresql-client")?;
            // Plain SQL (deduplicates well; pg_dump is one consistent transaction);
            // --no-password: a run from cron must fail rather than wait for a prompt.
            let mut line = format!("{} --format=plain --no-password", quote_path(&pg_dump));
            push_connection(&mut line, "-h", "-p", "-U", host, port, user);
            line.push_str(&format!(" {}", quote(name)));
            line
        }
        DatabaseConfig::Mysql {
            name,
            host,
            port,
            user,
            options_file,
            bin_dir,
        } => {
            let dump = tool(
                &["mariadb-dump", "mysqldump"],
                bin_dir.as_deref(),
                "mariadb-client",
            )?;
            let mut line = quote_path(&dump);
            // The option file must come first.
            if let Some(file) = options_file {
                line.push_str(&format!(" --defaults-extra-file={}", quote_path(file)));
            }
            // One consistent InnoDB snapshot, with the schema's code.
            line.push_str(" --single-transaction --routines --triggers --events --hex-blob");
            push_connection(&mut line, "-h", "-P", "-u", host, port, user);
            line.push_str(&format!(" --databases {}", quote(name)));
            line
        }
        DatabaseConfig::Sqlite { path, .. } => {
            let sqlite3 = tool(&["sqlite3"], None, "sqlite3")?;
            // `.dump` reads inside one transaction: a consistent copy while the application runs.
            format!("{} -bail {} .dump", quote_path(&sqlite3), quote_path(path))
        }
        DatabaseConfig::Command { dump_command, .. } => dump_command.clone(),
    };
    Ok(Dump { stored_as, command })
}

fn push_connection(
    line: &mut String,
    host_flag: &str,
    port_flag: &str,
    user_flag: &str,
    host: &Option<String>,
    port: &Option<u16>,
    user: &Option<String>,
) {
    if let Some(host) = host {
        line.push_str(&format!(" {host_flag} {}", quote(host)));
    }
    if let Some(port) = port {
        line.push_str(&format!(" {port_flag} {port}"));
    }
    if let Some(user) = user {
        line.push_str(&format!(" {user_flag} {}", quote(user)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_debian_package() {
        let database = DatabaseConfig::Postgresql {
            name: "cms".into(),
            host: None,
            port: None,
            user: None,
            bin_dir: Some(PathBuf::from("/nonexistent")),
        };
        let error = dump(&database).unwrap_err();
        assert!(
            error.contains("apt-get install postgresql-client"),
            "{error}"
        );
    }

    #[test]
    fn names_are_plain_file_names() {
        let database = DatabaseConfig::Command {
            name: "../x".into(),
            dump_command: "true".into(),
            restore_command: None,
        };
        assert!(stored_name(&database).is_err());
    }
}
