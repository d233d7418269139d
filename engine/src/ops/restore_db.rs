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
        // MariaDB dumps name their database (`CREATE DATABASE`, `USE`): those lines are
        // rewritten for the new one, so that the load lands there and never in the original,
        // with the original's character set and collation.
        let rename = matches!(self.client, Client::Mysql { .. }).then_some(&*self.restored_as);
        stream_into(cmd, repo, snapshot, &self.stored_as, rename)
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

/// The client's error output on one line: its `ERROR` lines if it has any (psql, mariadb),
/// else its first lines; bounded. `mariadb` echoes the failing statement between lines of
/// dashes before its `ERROR` line: those blocks are left out.
fn first_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut in_echo = false;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            if l.len() >= 10 && l.bytes().all(|b| b == b'-') {
                in_echo = !in_echo;
                return false;
            }
            !in_echo && !l.is_empty()
        })
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("ERROR"))
        .collect();
    let shown = if errors.is_empty() { lines } else { errors };
    let shown: Vec<&str> = shown
        .into_iter()
        .take(3)
        .map(|l| l.get(..500).unwrap_or(l))
        .collect();
    if shown.is_empty() {
        "no error output".into()
    } else {
        shown.join(" / ")
    }
}

/// Reads a client's standard error to its end, keeping its first and its last
/// [`STDERR_KEPT`] bytes (the error a client stops at comes last, after any echo of a long
/// statement); the rest is dropped so the client never blocks on it.
fn keep_stderr(mut stderr: impl Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let mut dropped = false;
    let mut buf = [0u8; 8192];
    while let Ok(n) = stderr.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = STDERR_KEPT.saturating_sub(head.len());
        head.extend_from_slice(&buf[..n.min(room)]);
        tail.extend_from_slice(&buf[n.min(room)..n]);
        if tail.len() > 2 * STDERR_KEPT {
            tail.drain(..tail.len() - STDERR_KEPT);
            dropped = true;
        }
    }
    if dropped {
        head.extend_from_slice(b"\n");
    }
    head.extend_from_slice(&tail);
    head
}

/// Runs `cmd` with the dump at `stored_as` of `snapshot` on its standard input. A damaged
/// dump kills the client before its input ends, so nothing is committed. `mysql_rename`: the
/// new name a MariaDB/MySQL dump is rewritten for ([`MysqlNameFilter`]).
fn stream_into(
    mut cmd: Command,
    repo: &Repository,
    snapshot: &SnapshotInfo,
    stored_as: &str,
    mysql_rename: Option<&str>,
) -> Result<u64, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || keep_stderr(stderr));
    let mut stdin = child.stdin.take().expect("piped");
    let path = format!("/{stored_as}");
    let written = if let Some(new_name) = mysql_rename {
        let mut filtered = MysqlNameFilter::new(&mut stdin, new_name);
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

/// Rewrites the lines of a `mariadb-dump --databases` dump that name its database: `USE …`
/// goes, `CREATE DATABASE … old OPTIONS;` becomes `ALTER DATABASE new OPTIONS;` (the
/// database's character set and collation, which the new database would otherwise not get),
/// or goes when it has no options. Every other byte passes through as it comes. Memory: the
/// current line while undecided or a `CREATE DATABASE` line (bounded by [`CREATE_KEPT`]).
struct MysqlNameFilter<'a> {
    out: &'a mut dyn Write,
    /// The new database's name.
    new_name: &'a str,
    /// The start of the current line while undecided, or the `CREATE DATABASE` line.
    head: Vec<u8>,
    state: LineState,
}

#[derive(PartialEq)]
enum LineState {
    Undecided,
    Pass,
    Drop,
    CreateDatabase,
}

const HEAD: usize = 16;

/// Longest `CREATE DATABASE` line kept for rewriting; a longer one (no real dump has one) is
/// dropped whole.
const CREATE_KEPT: usize = 4096;

impl<'a> MysqlNameFilter<'a> {
    fn new(out: &'a mut dyn Write, new_name: &'a str) -> Self {
        MysqlNameFilter {
            out,
            new_name,
            head: Vec::new(),
            state: LineState::Undecided,
        }
    }

    fn decide(&mut self) -> std::io::Result<()> {
        if self.head.starts_with(b"CREATE DATABASE ") {
            self.state = LineState::CreateDatabase;
            if self.head.ends_with(b"\n") {
                self.end_create()?;
            }
            return Ok(());
        }
        if self.head.starts_with(b"USE `") {
            self.state = LineState::Drop;
        } else {
            self.state = LineState::Pass;
            self.out.write_all(&self.head)?;
        }
        self.head.clear();
        Ok(())
    }

    /// The whole `CREATE DATABASE` line is in `head`: writes its `ALTER DATABASE`.
    fn end_create(&mut self) -> std::io::Result<()> {
        if let Some(options) = create_database_options(&self.head) {
            let options = String::from_utf8_lossy(options);
            let line = format!("ALTER DATABASE {} {options}\n", backquoted(self.new_name));
            self.out.write_all(line.as_bytes())?;
        }
        self.head.clear();
        self.state = LineState::Drop;
        Ok(())
    }
}

/// What follows the (backquoted) database name in a `CREATE DATABASE` line, trimmed, with
/// its `;`: `None` when there are no options.
fn create_database_options(line: &[u8]) -> Option<&[u8]> {
    let open = line.iter().position(|&b| b == b'`')?;
    let mut i = open + 1;
    // The closing backquote (a doubled one is part of the name).
    let close = loop {
        match (line.get(i), line.get(i + 1)) {
            (Some(b'`'), Some(b'`')) => i += 2,
            (Some(b'`'), _) => break i,
            (Some(_), _) => i += 1,
            (None, _) => return None,
        }
    };
    let rest = line[close + 1..].trim_ascii();
    let options = rest.strip_suffix(b";").unwrap_or(rest).trim_ascii();
    (!options.is_empty()).then_some(rest)
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
                LineState::CreateDatabase => {
                    let room = CREATE_KEPT.saturating_sub(self.head.len());
                    self.head.extend_from_slice(&part[..part.len().min(room)]);
                    if end.is_some() {
                        self.end_create()?;
                    }
                }
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
        if self.state == LineState::CreateDatabase {
            self.end_create()?;
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
    fn mysql_dumps_name_the_new_database_in_any_write_sizes() {
        let dump = "-- MariaDB dump\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `cms` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci */;\n\nUSE `cms`;\nCREATE TABLE `t` (`id` int);\nINSERT INTO `t` VALUES (1),(2);\nUSE\nCREATE DATABASE `a``b`;\nCREATE DATABASE `x`";
        let want = "-- MariaDB dump\nALTER DATABASE `cms_copy` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci */;\n\nCREATE TABLE `t` (`id` int);\nINSERT INTO `t` VALUES (1),(2);\nUSE\n";
        for size in [1, 3, 7, 16, 17, 1000] {
            let mut out = Vec::new();
            let mut filter = MysqlNameFilter::new(&mut out, "cms_copy");
            for piece in dump.as_bytes().chunks(size) {
                filter.write_all(piece).unwrap();
            }
            filter.flush().unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want, "pieces of {size}");
        }
    }

    #[test]
    fn client_errors_show_the_error_line_not_mariadbs_echo_of_the_statement() {
        let long = "INSERT INTO t VALUES ".to_string() + &"(1),".repeat(5000);
        let stderr = format!("--------------\n{long}\n--------------\n\nERROR 1064 (42000) at line 9: syntax error near 'x'\n");
        let kept = keep_stderr(stderr.as_bytes());
        assert!(kept.len() <= 3 * STDERR_KEPT + 1, "{}", kept.len());
        assert_eq!(
            first_lines(&kept),
            "ERROR 1064 (42000) at line 9: syntax error near 'x'"
        );
        assert_eq!(
            first_lines(b"psql:<stdin>:3: ERROR:  relation \"x\" does not exist\n"),
            "psql:<stdin>:3: ERROR:  relation \"x\" does not exist"
        );
        assert_eq!(first_lines(b""), "no error output");
    }
}
