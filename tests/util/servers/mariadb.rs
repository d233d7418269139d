//! A throw-away MariaDB server: a private data directory made by `mariadb-install-db` in the
//! test's temp dir, `mariadbd` listening on a Unix socket there only (no TCP), root without a
//! password (`--auth-root-authentication-method=normal`). Clients reach it through an option
//! file (`[client] socket=… user=root`), the way a vault config's `options_file` does.
//! Dropping it kills the server, also when the test panics.
//!
//! The programs come from Debian's `mariadb-server` and `mariadb-client`, which `.ci/run`
//! installs; a missing one fails the test under CI and skips it elsewhere ([`required`]).

use super::*;

/// A running `mariadbd` with its data in a temp dir.
pub struct MariaDbServer {
    /// `[client]` option file: the socket and `user=root`.
    pub options_file: PathBuf,
    /// The directory of `mariadb`, `mariadb-dump` (a config's `bin_dir`).
    pub client_bin: PathBuf,
    child: Child,
    log: PathBuf,
}

/// `prog` on PATH, else in /usr/sbin or /usr/bin (mariadbd is in /usr/sbin, often not on a
/// user's PATH).
fn find_program(prog: &str) -> Result<PathBuf, String> {
    find_in_path(prog)
        .or_else(|| {
            ["/usr/sbin", "/usr/bin"]
                .iter()
                .map(|d| Path::new(d).join(prog))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| format!("{prog} is not on PATH nor in /usr/sbin, /usr/bin"))
}

impl MariaDbServer {
    /// `None` when MariaDB is missing outside CI (see [`required`]).
    pub fn start(env: &Env) -> Option<MariaDbServer> {
        let install = "apt-get install mariadb-server mariadb-client";
        let what = "MariaDB (mariadbd, mariadb-install-db, mariadb, mariadb-dump, mariadb-admin)";
        let found: Result<Vec<PathBuf>, String> = [
            "mariadbd",
            "mariadb-install-db",
            "mariadb",
            "mariadb-dump",
            "mariadb-admin",
        ]
        .iter()
        .map(|p| find_program(p))
        .collect();
        let programs = required(what, install, found)?;
        let (mariadbd, install_db, client) = (&programs[0], &programs[1], &programs[2]);
        let base = env.path("mariadb");
        let data = base.join("data");
        // Its own temp dir: two servers bootstrapping at once must not share /tmp's files.
        let tmp = base.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let socket = base.join("sock");
        let log = base.join("server.log");
        let options_file = base.join("client.cnf");
        fs::write(
            &options_file,
            format!("[client]\nsocket={}\nuser=root\n", socket.display()),
        )
        .unwrap();
        // As root the server must be told to stay root (it refuses otherwise).
        let user: Vec<String> = if is_root() {
            vec!["--user=root".into()]
        } else {
            Vec::new()
        };
        let out = Command::new(install_db)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(&user)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--tmpdir={}", tmp.display()))
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let child = Command::new(mariadbd)
            .arg("--no-defaults")
            .args(&user)
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                base.join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--skip-networking",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
                "--character-set-server=latin1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = MariaDbServer {
            options_file,
            client_bin: client.parent().unwrap().to_path_buf(),
            child,
            log,
        };
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&self) {
        let admin = self.client_bin.join("mariadb-admin");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ping = Command::new(&admin)
                .arg(self.defaults())
                .arg("ping")
                .stdin(Stdio::null())
                .output()
                .expect("run mariadb-admin");
            if ping.status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "mariadbd did not answer mariadb-admin ping within {START_TIMEOUT:?}: {}\n--- server log ---\n{}",
                    String::from_utf8_lossy(&ping.stderr),
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn defaults(&self) -> String {
        format!("--defaults-file={}", self.options_file.display())
    }

    /// `prog` (`mariadb`, `mariadb-dump`) connected to this server.
    fn client(&self, prog: &str) -> Command {
        let mut cmd = Command::new(self.client_bin.join(prog));
        cmd.arg(self.defaults());
        cmd
    }

    /// Runs `sql` (in `database`, if given), stopping at the first error; returns the rows
    /// tab-separated, without column names.
    #[track_caller]
    pub fn sql(&self, database: Option<&str>, sql: &str) -> String {
        let mut cmd = self.client("mariadb");
        cmd.args(["-N", "-B"]).args(database);
        let out = run_with_stdin(cmd, sql.as_bytes());
        String::from_utf8(out).expect("mariadb output is UTF-8")
    }

    /// `mariadb-dump --skip-dump-date --databases DB` with the options vault uses.
    pub fn dump(&self, database: &str) -> Vec<u8> {
        let mut cmd = self.client("mariadb-dump");
        cmd.args([
            "--skip-dump-date",
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--databases",
            database,
        ]);
        run_with_stdin(cmd, b"")
    }

    /// The server's databases, sorted.
    pub fn databases(&self) -> Vec<String> {
        self.sql(None, "SHOW DATABASES;")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[track_caller]
fn run_with_stdin(mut cmd: Command, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed ({}): {}",
        cmd.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        // Its data is thrown away with the temp dir: no clean shutdown needed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
