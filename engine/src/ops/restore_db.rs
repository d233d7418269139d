//! New databases for restores: each configured database's dump loaded into a database of the
//! same kind created for it under a new name, never into an existing one.
//!
//! Input: the application's [`DatabaseConfig`]s, the name to restore as, and a snapshot.
//! Output: per database a [`NewDatabase`] that can be created (refusing one that exists),
//! loaded (the dump streamed from the snapshot into the database's client, bounded memory,
//! the first error stopping the load) and dropped again.
//!
//! Naming rule: one database is restored as `NAME`, several as `NAME_<db>` (`<db>` the name
//! it is stored under, `databases/<db>.sql`). An SQLite database becomes the file of that name
//! (a path, relative to the caller's base directory).
//!
//! A load that fails never leaves a half-loaded database behind: the client is killed before
//! its input ends (psql would commit a `--single-transaction` at end of input), then the new
//! database is dropped (PostgreSQL, MariaDB) or its file removed (SQLite). A `command`
//! database cannot be dropped by vault: its `restore_command` owns what it created.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::config::DatabaseConfig;
use super::databases::{stored_name, tool};
use crate::repo::{Repository, SnapshotInfo};
use crate::restore::dump::dump;

/// Bytes of a client's standard error kept for the error message.
const STDERR_KEPT: usize = 4096;

/// One database to create and load.
#[derive(Debug, Clone)]
pub struct NewDatabase {
    /// The name it is stored under (`<db>` of `databases/<db>.sql`).
    pub database: String,
    /// `postgresql`, `mysql`, `sqlite` or `command`.
    pub kind: &'static str,
    /// `databases/<db>.sql`.
    pub stored_as: String,
    /// The new database's name, or the new SQLite file.
    pub restored_as: String,
    client: Client,
}

#[derive(Debug, Clone)]
enum Client {
    Postgresql {
        bin: PathBuf,
        connection: Vec<String>,
    },
    Mysql {
        client: PathBuf,
        connection: Vec<String>,
    },
    Sqlite {
        sqlite3: PathBuf,
    },
    Command {
        restore_command: String,
    },
}

/// The new names of `databases` restored as `name`: `name` for one, `name_<db>` for several.
pub fn new_names(databases: &[DatabaseConfig], name: &str) -> Result<Vec<String>, String> {
    databases
        .iter()
        .map(|d| {
            let stored = stored_name(d)?;
            let db = stored_stem(&stored);
            Ok(if databases.len() == 1 {
                name.to_string()
            } else {
                format!("{name}_{db}")
            })
        })
        .collect()
}

fn stored_stem(stored: &str) -> &str {
    stored
        .strip_prefix("databases/")
        .and_then(|s| s.strip_suffix(".sql"))
        .unwrap_or(stored)
}

/// A server database name: letters, digits, `_` and `-`, at most 63 bytes.
fn check_server_name(kind: &str, name: &str) -> Result<(), String> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.is_empty() || name.len() > 63 || !plain {
        return Err(format!(
            "{name:?} cannot be a new {kind} database name: use letters, digits, '_' and '-' (at most 63)"
        ));
    }
    Ok(())
}

/// Plans the restore of `databases` as `name`; SQLite files are placed relative to `base`.
/// Checks names and tools; touches nothing.
pub fn plan(
    databases: &[DatabaseConfig],
    name: &str,
    base: &Path,
) -> Result<Vec<NewDatabase>, String> {
    let names = new_names(databases, name)?;
    databases
        .iter()
        .zip(names)
        .map(|(database, restored_as)| {
            let stored_as = stored_name(database)?;
            let (kind, client, restored_as) = match database {
                DatabaseConfig::Postgresql {
                    host,
                    port,
                    user,
                    bin_dir,
                    ..
                } => {
                    check_server_name("PostgreSQL", &restored_as)?;
                    let psql = tool(&["psql"], bin_dir.as_deref(), "postgresql-client")?;
                    let bin = psql.parent().unwrap_or(Path::new("")).to_path_buf();
                    for program in ["createdb", "dropdb"] {
                        tool(&[program], Some(&bin), "postgresql-client")?;
                    }
                    let mut connection = vec!["--no-password".to_string()];
                    connect(&mut connection, ["-h", "-p", "-U"], host, port, user);
                    let client = Client::Postgresql { bin, connection };
                    ("postgresql", client, restored_as)
                }
                DatabaseConfig::Mysql {
                    host,
                    port,
                    user,
                    options_file,
                    bin_dir,
                    ..
                } => {
                    check_server_name("MariaDB/MySQL", &restored_as)?;
                    let client =
                        tool(&["mariadb", "mysql"], bin_dir.as_deref(), "mariadb-client")?;
                    let mut connection = Vec::new();
                    // The option file must come first.
                    if let Some(file) = options_file {
                        connection.push(format!("--defaults-extra-file={}", file.display()));
                    }
                    connect(&mut connection, ["-h", "-P", "-u"], host, port, user);
                    ("mysql", Client::Mysql { client, connection }, restored_as)
                }
                DatabaseConfig::Sqlite { .. } => {
                    let sqlite3 = tool(&["sqlite3"], None, "sqlite3")?;
                    let file = base.join(&restored_as).display().to_string();
                    ("sqlite", Client::Sqlite { sqlite3 }, file)
                }
                DatabaseConfig::Command {
                    name,
                    restore_command,
                    ..
                } => {
                    let restore_command = restore_command.clone().ok_or_else(|| {
                        format!("database {name:?} (kind = \"command\") has no restore_command to load its dump with; add restore_command = \"...\" (reads the dump on standard input, the new name in VAULT_RESTORE_AS)")
                    })?;
                    ("command", Client::Command { restore_command }, restored_as)
                }
            };
            Ok(NewDatabase {
                database: stored_stem(&stored_as).to_string(),
                kind,
                stored_as,
                restored_as,
                client,
            })
        })
        .collect()
}

fn connect(
    args: &mut Vec<String>,
    flags: [&str; 3],
    host: &Option<String>,
    port: &Option<u16>,
    user: &Option<String>,
) {
    let values = [host.clone(), port.map(|p| p.to_string()), user.clone()];
    for (flag, value) in flags.iter().zip(values) {
        if let Some(value) = value {
            args.push(flag.to_string());
            args.push(value);
        }
    }
}

/// `mariadb`'s quoting of an identifier (names are checked to need none, but still).
fn backquoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl NewDatabase {
    /// Creates the empty database (or file); refuses one that exists, naming the fix.
    pub fn create(&self) -> Result<(), String> {
        let exists = |how: &str| {
            format!(
                "{} database {:?} exists already; choose another --as NAME, or remove it first ({how})",
                self.kind, self.restored_as
            )
        };
        match &self.client {
            Client::Postgresql { bin, connection } => {
                let mut cmd = Command::new(bin.join("createdb"));
                cmd.args(connection).arg(&self.restored_as);
                run_client(cmd).map(|_| ()).map_err(|e| {
                    if e.contains("already exists") {
                        exists(&format!("dropdb {}", self.restored_as))
                    } else {
                        format!("createdb {}: {e}", self.restored_as)
                    }
                })
            }
            Client::Mysql { client, connection } => {
                let mut cmd = Command::new(client);
                cmd.args(connection)
                    .arg("-e")
                    .arg(format!("CREATE DATABASE {}", backquoted(&self.restored_as)));
                run_client(cmd).map(|_| ()).map_err(|e| {
                    if e.contains("exists") {
                        exists(&format!("DROP DATABASE {}", self.restored_as))
                    } else {
                        format!("CREATE DATABASE {}: {e}", self.restored_as)
                    }
                })
            }
            Client::Sqlite { .. } => {
                let path = Path::new(&self.restored_as);
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                // Claimed with O_EXCL: an empty file is an empty SQLite database.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Err(exists(&format!("rm {}", self.restored_as)))
                    }
                    Err(e) => Err(format!("{}: {e}", self.restored_as)),
                }
            }
            Client::Command { .. } => Ok(()),
        }
    }

    /// Streams the dump from `snapshot` into the new database; returns the dump's size.
    /// Any error (the client's first, or a damaged dump) stops the load and is returned; the
    /// caller then [`drop`](Self::drop)s the database.
    pub fn load(&self, repo: &Repository, snapshot: &SnapshotInfo) -> Result<u64, String> {
        let cmd = match &self.client {
            Client::Postgresql { bin, connection } => {
                let mut cmd = Command::new(bin.join("psql"));
                cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
                    .args(connection)
                    .arg("-d")
                    .arg(&self.restored_as);
                cmd
            }
            Client::Mysql { client, connection } => {
                let mut cmd = Command::new(client);
                cmd.args(connection).arg(&self.restored_as);
                cmd
            }
            Client::Sqlite { sqlite3 } => {
                let mut cmd = Command::new(sqlite3);
                cmd.args(["-bail", "-batch"]).arg(&self.restored_as);
                cmd
            }
            Client::Command { restore_command } => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(restore_command)
                    .env("VAULT_RESTORE_AS", &self.restored_as);
                cmd
            }
        };
        // MariaDB dumps name their database (`CREATE DATABASE`, `USE`): those lines go, so
        // that the load lands in the new database and never in the original.
        let filter = matches!(self.client, Client::Mysql { .. });
        stream_into(cmd, repo, snapshot, &self.stored_as, filter)
    }

    /// Removes the new database (after a failed load). `Ok(false)`: nothing vault can remove
    /// (a `command` database).
    pub fn drop(&self) -> Result<bool, String> {
        match &self.client {
            Client::Postgresql { bin, connection } => {
                let mut cmd = Command::new(bin.join("dropdb"));
                cmd.args(connection)
                    .arg("--if-exists")
                    .arg(&self.restored_as);
                run_client(cmd).map(|_| true)
            }
            Client::Mysql { client, connection } => {
                let mut cmd = Command::new(client);
                cmd.args(connection).arg("-e").arg(format!(
                    "DROP DATABASE IF EXISTS {}",
                    backquoted(&self.restored_as)
                ));
                run_client(cmd).map(|_| true)
            }
            Client::Sqlite { .. } => match std::fs::remove_file(&self.restored_as) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                Err(e) => Err(format!("{}: {e}", self.restored_as)),
            },
            Client::Command { .. } => Ok(false),
        }
    }

    /// Runs `query` in the new database; returns its rows (one line each, empty lines left
    /// out). `None`: this kind takes no queries (`command`).
    pub fn query(&self, query: &str) -> Option<Result<Vec<String>, String>> {
        let cmd = match &self.client {
            Client::Postgresql { bin, connection } => {
                let mut cmd = Command::new(bin.join("psql"));
                cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                    .args(connection)
                    .arg("-d")
                    .arg(&self.restored_as)
                    .arg("-c")
                    .arg(query);
                cmd
            }
            Client::Mysql { client, connection } => {
                let mut cmd = Command::new(client);
                cmd.args(connection)
                    .args(["-N", "-B"])
                    .arg(&self.restored_as)
                    .arg("-e")
                    .arg(query);
                cmd
            }
            Client::Sqlite { sqlite3 } => {
                let mut cmd = Command::new(sqlite3);
                cmd.args(["-bail", "-batch", "-readonly"])
                    .arg(&self.restored_as)
                    .arg(query);
                cmd
            }
            Client::Command { .. } => return None,
        };
        Some(run_client(cmd).map(|out| {
            out.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        }))
    }
}

/// Runs a client to its end; its standard output, or its standard error as the error.
fn run_client(mut cmd: Command) -> Result<String, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} failed ({}): {}",
            output.status,
            first_lines(&output.stderr)
        ))
    }
}

/// The client's error output on one line (its first lines, bounded).
fn first_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(&stderr[..stderr.len().min(STDERR_KEPT)]);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    if lines.is_empty() {
        "no error output".into()
    } else {
        lines.join(" / ")
    }
}

/// Runs `cmd` with the dump at `stored_as` of `snapshot` on its standard input. A damaged
/// dump kills the client before its input ends, so nothing is committed.
fn stream_into(
    mut cmd: Command,
    repo: &Repository,
    snapshot: &SnapshotInfo,
    stored_as: &str,
    filter_mysql: bool,
) -> Result<u64, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stderr = child.stderr.take().expect("piped");
    // Kept bounded; the rest is read and dropped so the client never blocks on it.
    let errors = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = STDERR_KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    });
    let mut stdin = child.stdin.take().expect("piped");
    let path = format!("/{stored_as}");
    let written = if filter_mysql {
        let mut filtered = MysqlNameFilter::new(&mut stdin);
        dump(repo, snapshot, &path, &mut filtered)
    } else {
        dump(repo, snapshot, &path, &mut stdin)
    };
    if written.is_err() {
        // Before its input ends: at end of input psql commits what it loaded.
        let _ = child.kill();
    }
    drop(stdin);
    let status = child.wait().map_err(|e| format!("{program}: {e}"))?;
    let stderr = errors.join().unwrap_or_default();
    match written {
        Ok(bytes) if status.success() => Ok(bytes),
        Ok(_) => Err(format!(
            "{program} failed ({status}): {}",
            first_lines(&stderr)
        )),
        // The client stopped reading (it failed): its error says why.
        Err(_) if !status.success() && !stderr.is_empty() => Err(format!(
            "{program} failed ({status}): {}",
            first_lines(&stderr)
        )),
        Err(e) => Err(format!(
            "reading {stored_as} from snapshot {}: {e}",
            snapshot.id.short()
        )),
    }
}

/// Drops the lines of a `mariadb-dump --databases` dump that name its database
/// (`CREATE DATABASE …`, `USE …`), passing every other byte through as it comes. Memory: the
/// first bytes of the current line only.
struct MysqlNameFilter<'a> {
    out: &'a mut dyn Write,
    /// The start of the current line while undecided.
    head: Vec<u8>,
    state: LineState,
}

#[derive(PartialEq)]
enum LineState {
    Undecided,
    Pass,
    Drop,
}

const HEAD: usize = 16;

impl<'a> MysqlNameFilter<'a> {
    fn new(out: &'a mut dyn Write) -> Self {
        MysqlNameFilter {
            out,
            head: Vec::new(),
            state: LineState::Undecided,
        }
    }

    fn decide(&mut self) -> std::io::Result<()> {
        let names_database =
            self.head.starts_with(b"CREATE DATABASE ") || self.head.starts_with(b"USE `");
        if names_database {
            self.state = LineState::Drop;
        } else {
            self.state = LineState::Pass;
            self.out.write_all(&self.head)?;
        }
        self.head.clear();
        Ok(())
    }
}

impl Write for MysqlNameFilter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            let line_part = &rest[..end.map_or(rest.len(), |e| e + 1)];
            let mut part = line_part;
            if self.state == LineState::Undecided {
                let take = (HEAD - self.head.len()).min(part.len());
                self.head.extend_from_slice(&part[..take]);
                part = &part[take..];
                if self.head.len() == HEAD || self.head.ends_with(b"\n") {
                    self.decide()?;
                }
            }
            match self.state {
                LineState::Pass => self.out.write_all(part)?,
                LineState::Drop | LineState::Undecided => {}
            }
            if end.is_some() {
                self.state = LineState::Undecided;
            }
            rest = &rest[line_part.len()..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.state == LineState::Undecided && !self.head.is_empty() {
            self.decide()?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_database_keeps_the_name_several_get_a_suffix() {
        let sqlite = |name: &str| DatabaseConfig::Sqlite {
            path: PathBuf::from(format!("/srv/{name}.db")),
            name: None,
        };
        assert_eq!(new_names(&[sqlite("wiki")], "copy").unwrap(), ["copy"]);
        assert_eq!(
            new_names(&[sqlite("wiki"), sqlite("users")], "copy").unwrap(),
            ["copy_wiki", "copy_users"]
        );
        assert!(check_server_name("PostgreSQL", "a b").is_err());
        assert!(check_server_name("PostgreSQL", "cms_copy-2").is_ok());
    }

    #[test]
    fn mysql_dumps_lose_the_lines_naming_their_database_in_any_write_sizes() {
        let dump = "-- MariaDB dump\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `cms` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n\nUSE `cms`;\nCREATE TABLE `t` (`id` int);\nINSERT INTO `t` VALUES (1),(2);\nUSE\n";
        let want = "-- MariaDB dump\n\nCREATE TABLE `t` (`id` int);\nINSERT INTO `t` VALUES (1),(2);\nUSE\n";
        for size in [1, 3, 7, 16, 17, 1000] {
            let mut out = Vec::new();
            let mut filter = MysqlNameFilter::new(&mut out);
            for piece in dump.as_bytes().chunks(size) {
                filter.write_all(piece).unwrap();
            }
            filter.flush().unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want, "pieces of {size}");
        }
    }
}
