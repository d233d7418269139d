//! Application backups with real components: a throw-away PostgreSQL cluster dumped by `pg_dump`
//! through `snapshot --command`, the same round trip with SQLite's `.dump`, commands that fail
//! (nothing may be committed and the repository must stay clean), and the order in which
//! commands and paths are taken.
//!
//! PostgreSQL and sqlite3 come from Debian's `postgresql` and `sqlite3` packages, which `.ci/run`
//! installs. Under CI (`CI` set, and not `false` or `0`) a missing one makes the test fail;
//! elsewhere the test prints why it is skipped and passes.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

// ------------------------------------------------------------------------------------------------
// Dependencies: fail under CI, skip elsewhere
// ------------------------------------------------------------------------------------------------

/// [`crate::util::required`] with the Debian packages this file's tests need.
#[track_caller]
pub(crate) fn required<T>(what: &str, found: Result<T, String>) -> Option<T> {
    crate::util::required(what, "apt-get install postgresql sqlite3", found)
}

/// sqlite3 on PATH; `None` (the test skips) outside CI when it is missing.
pub(crate) fn sqlite3() -> Option<PathBuf> {
    required(
        "sqlite3",
        find_in_path("sqlite3").ok_or_else(|| "sqlite3 is not on PATH".to_string()),
    )
}

/// `'...'` for `sh -c`.
fn sh_quote(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', r"'\''"))
}

fn sh_path(p: &Path) -> String {
    sh_quote(p.to_str().expect("UTF-8 temp path"))
}

/// Output of a helper program (not vault), asserting success.
#[track_caller]
pub(crate) fn run_ok(mut cmd: Command) -> Vec<u8> {
    let cmdline = cmdline_of(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    assert!(
        out.status.success(),
        "{cmdline}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4000)]),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd` with `input` on its stdin, asserting success; returns stdout.
#[track_caller]
pub(crate) fn run_with_input(mut cmd: Command, input: &[u8]) -> Vec<u8> {
    let cmdline = cmdline_of(&cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    let fed = feeder.join().unwrap();
    assert!(
        out.status.success() && fed.is_ok(),
        "{cmdline}: {} (feeding stdin: {fed:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4000)]),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `vault dump SNAPSHOT PATH`, fully read (the dumps here are tens of MiB at most).
#[track_caller]
pub(crate) fn vault_dump(env: &Env, snapshot: &str, path: &str) -> Vec<u8> {
    let out = env.run(["dump", snapshot, path]);
    out.ok();
    out.stdout
}

/// Pipes `vault dump SNAPSHOT PATH` into `consumer` (its stdin), asserting both succeed.
#[track_caller]
fn pipe_dump_into(env: &Env, snapshot: &str, path: &str, mut consumer: Command) {
    let mut dump = env.cmd(["dump", snapshot, path]);
    dump.stdout(Stdio::piped()).stderr(Stdio::piped());
    let dump_line = cmdline_of(&dump);
    let mut producer = dump.spawn().expect("spawn vault dump");
    let pipe = producer.stdout.take().unwrap();
    let consumer_line = cmdline_of(&consumer);
    let consumed = consumer
        .stdin(Stdio::from(pipe))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {consumer_line}: {e}"));
    let produced = producer.wait_with_output().unwrap();
    assert!(
        produced.status.success(),
        "{dump_line}: {}\n{}",
        produced.status,
        String::from_utf8_lossy(&produced.stderr)
    );
    assert!(
        consumed.status.success(),
        "{dump_line} | {consumer_line}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        consumed.status,
        String::from_utf8_lossy(&consumed.stdout[..consumed.stdout.len().min(4000)]),
        String::from_utf8_lossy(&consumed.stderr)
    );
}

/// Asserts two texts are equal; on a difference, names the first differing line rather than
/// printing tens of MiB.
#[track_caller]
pub(crate) fn assert_same_text(what: &str, want: &[u8], got: &[u8]) {
    if want == got {
        return;
    }
    let a: Vec<&[u8]> = want.split(|&b| b == b'\n').collect();
    let b: Vec<&[u8]> = got.split(|&b| b == b'\n').collect();
    let i = (0..a.len().min(b.len()))
        .find(|&i| a[i] != b[i])
        .unwrap_or(a.len().min(b.len()));
    let line = |v: &[&[u8]], i: usize| {
        v.get(i).map_or("<end>".to_string(), |l| {
            String::from_utf8_lossy(l).into_owned()
        })
    };
    panic!(
        "{what}: {} vs {} bytes, {} vs {} lines; first difference at line {}:\n  want: {:?}\n  got:  {:?}",
        want.len(),
        got.len(),
        a.len(),
        b.len(),
        i + 1,
        line(&a, i),
        line(&b, i)
    );
}

fn ids(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

// ------------------------------------------------------------------------------------------------
// A throw-away PostgreSQL cluster
// ------------------------------------------------------------------------------------------------

const PG_PROGRAMS: [&str; 5] = ["initdb", "pg_ctl", "postgres", "pg_dump", "psql"];

/// Environment variables that would change what the PostgreSQL clients connect to or print.
const PG_ENV: [&str; 13] = [
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGTZ",
    "PGDATESTYLE",
    "PGCLIENTENCODING",
];

fn clear_pg_env(cmd: &mut Command) -> &mut Command {
    for v in PG_ENV {
        cmd.env_remove(v);
    }
    cmd
}

/// The newest `/usr/lib/postgresql/N/bin` (Debian) holding every program the test uses, or the
/// directory of an `initdb` on PATH.
fn postgres_bindir() -> Result<PathBuf, String> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    let mut dirs: Vec<PathBuf> = versions.into_iter().rev().map(|(_, d)| d).collect();
    if let Some(initdb) = find_in_path("initdb") {
        dirs.push(initdb.parent().unwrap().to_path_buf());
    }
    dirs.into_iter()
        .find(|d| PG_PROGRAMS.iter().all(|p| is_executable(&d.join(p))))
        .ok_or_else(|| {
            format!("no /usr/lib/postgresql/*/bin nor PATH directory has all of {PG_PROGRAMS:?}")
        })
}

/// uid and gid of `postgres` (the server refuses to run as root).
fn postgres_user() -> Result<(u32, u32), String> {
    let name = c"postgres";
    // SAFETY: a valid C string; the result is read at once, before any other getpw* call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err("there is no `postgres` user to run the server as (we are root)".into());
    }
    // SAFETY: non-null result of getpwnam.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn free_loopback_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().unwrap().port()
}

/// A PostgreSQL cluster in a test's temp dir, listening on 127.0.0.1 only (trust auth) with
/// its socket in the temp dir too. Dropping it stops the server, also when the test panics.
pub(crate) struct PgCluster {
    pub(crate) bin: PathBuf,
    /// `<tmp>/pg`, owned by the server's user.
    base: PathBuf,
    data: PathBuf,
    log: PathBuf,
    pub(crate) port: u16,
    /// Run the server programs as `postgres` (we are root).
    as_postgres: bool,
}

impl PgCluster {
    /// `None` when PostgreSQL is missing outside CI (see [`required`]).
    pub(crate) fn start(env: &Env) -> Option<PgCluster> {
        let bin = required(
            "PostgreSQL (initdb, pg_ctl, postgres, pg_dump, psql)",
            postgres_bindir(),
        )?;
        let owner = if is_root() {
            Some(required("the postgres user", postgres_user())?)
        } else {
            None
        };
        if owner.is_some() {
            required(
                "runuser",
                find_in_path("runuser").ok_or_else(|| "runuser is not on PATH".to_string()),
            )?;
        }
        // The server's user must reach its directory inside the (0700) temp dir.
        chmod(env.dir.path(), 0o755);
        let base = env.path("pg");
        let sock = base.join("sock");
        fs::create_dir_all(&sock).unwrap();
        chmod(&base, 0o700);
        if let Some((uid, gid)) = owner {
            chown_tree(&base, uid, gid);
        }
        let mut pg = PgCluster {
            bin,
            data: base.join("data"),
            log: base.join("server.log"),
            base,
            port: 0,
            as_postgres: owner.is_some(),
        };
        let mut initdb = pg.server_cmd("initdb");
        initdb.arg("-D").arg(&pg.data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--locale=C",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run_ok(initdb);
        // A free port can be taken by someone else before the server binds it: try again.
        // synchronize_seqscans=off: a sequential scan of a big table (over a quarter of
        // shared_buffers) may otherwise start where an earlier scan of it stopped (an index
        // build, a foreign-key check), so pg_dump's COPY could print the same rows rotated.
        // autovacuum=off: where updated rows land (and so how much of the dump changes) must
        // not depend on whether a vacuum happened to run between loading and updating.
        for attempt in 1..=5 {
            pg.port = free_loopback_port();
            let mut ctl = pg.server_cmd("pg_ctl");
            ctl.arg("-D")
                .arg(&pg.data)
                .arg("-l")
                .arg(&pg.log)
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off \
                     -c full_page_writes=off -c synchronous_commit=off \
                     -c synchronize_seqscans=off -c autovacuum=off",
                    pg.port,
                    sock.display()
                ))
                .arg("start");
            let out = ctl.stdin(Stdio::null()).output().expect("run pg_ctl start");
            if out.status.success() {
                return Some(pg);
            }
            let log = fs::read_to_string(&pg.log).unwrap_or_default();
            if attempt < 5 && log.contains("could not bind") {
                continue;
            }
            panic!(
                "pg_ctl start failed ({}):\n{}{}\n--- server log ---\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        unreachable!()
    }

    /// A server program (initdb, pg_ctl), run as `postgres` when we are root.
    fn server_cmd(&self, prog: &str) -> Command {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(prog));
            c
        } else {
            Command::new(self.bin.join(prog))
        };
        clear_pg_env(&mut cmd)
            .current_dir(&self.base)
            .stdin(Stdio::null());
        cmd
    }

    /// A client program (psql, pg_dump) connected to this server over TCP as `postgres`.
    fn client(&self, prog: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(prog));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        clear_pg_env(&mut cmd);
        cmd
    }

    /// The `pg_dump` command line that a snapshot runs through `sh -c`.
    fn pg_dump_line(&self, db: &str) -> String {
        format!(
            "{} -h 127.0.0.1 -p {} -U postgres {db}",
            sh_path(&self.bin.join("pg_dump")),
            self.port
        )
    }

    pub(crate) fn pg_dump(&self, db: &str) -> Vec<u8> {
        let mut cmd = self.client("pg_dump");
        cmd.arg(db);
        run_ok(cmd)
    }

    fn psql_cmd(&self, db: &str) -> Command {
        let mut cmd = self.client("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db]);
        cmd
    }

    /// Runs SQL, stopping at the first error; returns unaligned, tuples-only output.
    #[track_caller]
    pub(crate) fn sql(&self, db: &str, sql: &str) -> String {
        let mut cmd = self.psql_cmd(db);
        cmd.args(["-A", "-t"]);
        String::from_utf8(run_with_input(cmd, sql.as_bytes())).unwrap()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let pid_file = self.data.join("postmaster.pid");
        if !pid_file.exists() {
            return;
        }
        let stop = self
            .server_cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .output();
        if matches!(&stop, Ok(o) if o.status.success()) {
            return;
        }
        eprintln!("pg_ctl stop failed ({stop:?}); killing the postmaster");
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        if let Some(pid) = pid.filter(|&p| p > 1) {
            // SAFETY: plain kill(2) of the postmaster this guard started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// pg_dump output without the lines that differ between two dumps of equal databases:
/// `\restrict KEY` / `\unrestrict KEY` (a random key per run, added by the August 2025 minor
/// releases, e.g. 15.14 and 17.6) and the `-- Started on` / `-- Completed on` timestamp comments
/// (verbose mode). Returns the text and how many lines were dropped.
pub(crate) fn normalize_pg_dump(dump: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(dump.len());
    let mut dropped = 0;
    for line in dump.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"\\restrict ")
            || line.starts_with(b"\\unrestrict ")
            || line.starts_with(b"-- Started on ")
            || line.starts_with(b"-- Completed on ")
        {
            dropped += 1;
        } else {
            out.extend_from_slice(line);
        }
    }
    (out, dropped)
}

/// Asserts two pg_dump outputs are equal but for the lines [`normalize_pg_dump`] drops.
#[track_caller]
pub(crate) fn assert_same_pg_dump(what: &str, want: &[u8], got: &[u8]) {
    let (w, _) = normalize_pg_dump(want);
    let (g, _) = normalize_pg_dump(got);
    assert_same_text(what, &w, &g);
}

// ------------------------------------------------------------------------------------------------
// Asset trees
// ------------------------------------------------------------------------------------------------

const ASSET_DIRS: [&str; 8] = [
    "img",
    "img/thumbs",
    "css",
    "js",
    "uploads/2024",
    "uploads/2025",
    "docs",
    "fonts",
];
const ASSET_EXTS: [&str; 6] = ["jpg", "png", "css", "js", "pdf", "woff2"];

/// Writes `count` asset files of mixed sizes under `root` (deterministic from `seed`): mostly
/// small, some up to 1 MiB, a few of several MiB; half incompressible, half text. Returns the
/// bytes written.
fn make_assets(root: &Path, seed: u64, count: u64, prefix: &str) -> u64 {
    let mut rng = Rng::new(seed);
    let mut total = 0;
    for i in 0..count {
        let r = rng.below(100);
        let size = if r < 60 {
            rng.below(8 << 10)
        } else if r < 92 {
            (8 << 10) + rng.below(120 << 10)
        } else if r < 98 {
            (128 << 10) + rng.below(896 << 10)
        } else {
            (1 << 20) + rng.below(2 << 20)
        };
        let dir = ASSET_DIRS[rng.below(ASSET_DIRS.len() as u64) as usize];
        let ext = ASSET_EXTS[rng.below(ASSET_EXTS.len() as u64) as usize];
        let path = root.join(dir).join(format!("{prefix}{i:04}.{ext}"));
        let gen: fn(u64, usize) -> Vec<u8> = if i % 2 == 0 {
            random_bytes
        } else {
            compressible_bytes
        };
        write_generated(&path, seed.wrapping_mul(7_919).wrapping_add(i), size, gen);
        total += size;
    }
    total
}

/// Total size of the regular files under `root`.
fn tree_bytes(root: &Path) -> u64 {
    scan(root)
        .values()
        .filter(|n| n.kind == Kind::File)
        .map(|n| n.size)
        .sum()
}

/// `cp -a`: a frozen copy of a tree (modes, mtimes, owners kept) to compare a restore with.
fn copy_tree(src: &Path, dst: &Path) {
    let mut cp = Command::new("cp");
    cp.arg("-a").arg(src).arg(dst);
    run_ok(cp);
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL
// ------------------------------------------------------------------------------------------------

const ORDERS: u64 = 300_000;

const WEBSITE_SCHEMA: &str = "
CREATE TABLE customers (
    id int PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    created timestamptz NOT NULL
);
INSERT INTO customers
SELECT i, 'Customer ' || i, 'c' || i || '@example.com',
       timestamptz '2020-01-01 00:00:00+00' + i * interval '17 minutes'
FROM generate_series(1, 20000) i;

CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers(id),
    status text NOT NULL,
    amount numeric(12,2) NOT NULL,
    note text,
    created timestamptz NOT NULL
);
INSERT INTO orders (customer_id, status, amount, note, created)
SELECT 1 + (i::bigint * 7919) % 20000,
       (array['open','paid','shipped','refunded','cancelled'])[1 + i % 5],
       ((i::bigint * 31337) % 1000000) / 100.0,
       'order ' || i || ' ' || md5(i::text) || ' ' || repeat(chr(97 + i % 26), i % 40)
           || CASE WHEN i % 997 = 0 THEN E'\\ttab, back\\\\slash, ''quote'', caf\\u00e9' ELSE '' END,
       timestamptz '2021-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 300000) i;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW open_orders AS SELECT * FROM orders WHERE status = 'open';
COMMENT ON TABLE orders IS 'orders of the website';
";

/// About 2% of the orders change, in four clustered ranges of 1,500 (recent and popular orders
/// are what changes in practice); 100 orders are deleted, 3,000 added; 50 customers change
/// their address and 200 sign up.
///
/// Why clustered: pg_dump writes a table in heap order and an UPDATE moves the new row version to
/// the end of the heap, so each updated row leaves a hole where it was. 6,000 updated rows spread
/// uniformly over a 36 MB dump would touch nearly every one of its ~2,300 stream chunks (16 KiB
/// on average), whatever the backup tool: that would measure the update pattern, not vault.
const WEBSITE_CHANGES: &str = "
UPDATE orders SET status = 'shipped', note = note || ' [shipped]'
WHERE id BETWEEN 20001 AND 21500 OR id BETWEEN 90001 AND 91500
   OR id BETWEEN 160001 AND 161500 OR id BETWEEN 260001 AND 261500;
DELETE FROM orders WHERE id BETWEEN 5001 AND 5100;
INSERT INTO customers
SELECT i, 'Customer ' || i, 'c' || i || '@example.com',
       timestamptz '2020-01-01 00:00:00+00' + i * interval '17 minutes'
FROM generate_series(20001, 20200) i;
UPDATE customers SET email = 'moved' || id || '@example.org' WHERE id BETWEEN 1000 AND 1049;
INSERT INTO orders (customer_id, status, amount, note, created)
SELECT 20001 + i % 200, 'open', (i % 10000) / 100.0, 'new order ' || i || ' ' || md5(i::text),
       timestamptz '2022-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 3000) i;
";

/// What a fresh repository stores for `content` alone (stream chunking and compression, no
/// deduplication against anything): the yardstick for an incremental snapshot's bytes_added.
fn stored_alone(content: Vec<u8>, name: &str) -> u64 {
    let env = Env::init();
    let cmd = env.cmd(["snapshot", "--json", "--stdin", "--stdin-name", name]);
    let fed = Fed::spawn(cmd, std::io::Cursor::new(content)).wait();
    fed.out.ok();
    summary(&fed.out.json(), "bytes_added")
}

#[test]
fn postgres_dump_and_assets_round_trip_with_dedup() {
    let started = Instant::now();
    let env = Env::init();
    // Declared after `env`, so dropped (server stopped) before the temp dir goes.
    let Some(pg) = PgCluster::start(&env) else {
        return;
    };
    pg.sql("postgres", "CREATE DATABASE website;");
    pg.sql("website", WEBSITE_SCHEMA);
    assert_eq!(
        pg.sql("website", "SELECT count(*) FROM orders;").trim(),
        ORDERS.to_string()
    );

    let assets = env.path("srv/website/assets");
    make_assets(&assets, 11, 320, "a");
    write(&assets.join("empty.txt"), b"");
    write(&assets.join("img/same-1.png"), &random_bytes(5, 50_000));
    write(&assets.join("docs/same-2.png"), &random_bytes(5, 50_000));
    write(&assets.join("css/site.css"), b"body { color: #000; }\n");
    let dump_cmd = format!("db/website.sql={}", pg.pg_dump_line("website"));

    let snapshot = |env: &Env| -> Value {
        let mut cmd = env.cmd(["snapshot", "--json", "--label", "app=website", "--command"]);
        cmd.arg(&dump_cmd).arg(&assets);
        clear_pg_env(&mut cmd);
        let out = run_cmd(cmd);
        out.ok();
        let v = out.json();
        check_snapshot_json(&v);
        v
    };

    // Snapshot 1, and what the database held then (a separate pg_dump right after).
    let snap1 = snapshot(&env);
    let direct1 = pg.pg_dump("website");
    let id1 = id_of(&snap1);
    assert_eq!(snap1["complete"], true, "{snap1}");
    assert_eq!(&snap1["labels"], &json!({"app": "website"}));
    assert_eq!(
        snap1["sources"][0],
        json!({"kind": "command", "path": "/db/website.sql", "command": pg.pg_dump_line("website")}),
        "{snap1}"
    );
    assert_eq!(snap1["sources"][1]["kind"], "path", "{snap1}");
    let assets_at_1 = env.path("assets-at-1");
    copy_tree(&assets, &assets_at_1);

    // ~2% of the rows change and some are added; a few assets are added, one is rewritten.
    pg.sql("website", WEBSITE_CHANGES);
    make_assets(&assets, 12, 5, "new");
    write(
        &assets.join("uploads/2026/fresh.jpg"),
        &random_bytes(13, 200_000),
    );
    write(
        &assets.join("css/site.css"),
        b"body { color: #222; }\n/* v2 */\n",
    );
    let snap2 = snapshot(&env);
    let direct2 = pg.pg_dump("website");
    let id2 = id_of(&snap2);
    assert_eq!(snap2["complete"], true, "{snap2}");
    assert_eq!(snap2["parent"], snap1["id"], "{snap2}");

    // Both snapshots are listed, by label too.
    assert_eq!(
        ids(&env.list(["--label", "app=website"])),
        ids(&[snap1.clone(), snap2.clone()])
    );
    assert!(env.list(["--label", "app=other"]).is_empty());

    // What each snapshot holds is what pg_dump printed at its time.
    let dump1 = vault_dump(&env, &id1, "/db/website.sql");
    let dump2 = vault_dump(&env, &id2, "/db/website.sql");
    assert!(
        dump1.len() > 30_000_000,
        "dump of {} bytes is smaller than planned",
        dump1.len()
    );
    assert_same_pg_dump(
        "snapshot 1's dump vs pg_dump right after it",
        &direct1,
        &dump1,
    );
    assert_same_pg_dump(
        "snapshot 2's dump vs pg_dump right after it",
        &direct2,
        &dump2,
    );
    assert_ne!(normalize_pg_dump(&dump1).0, normalize_pg_dump(&dump2).0);
    let (_, stripped) = normalize_pg_dump(&dump1);
    assert_eq!(
        summary(&snap1, "bytes_total"),
        dump1.len() as u64 + tree_bytes(&assets_at_1)
    );

    // Deduplication. Expected new content in dump 2: the 6,000 updated rows now at the end of
    // the table (~0.8 MB), 3,000 new rows (~0.3 MB), the five holes, the changed customers:
    // roughly 3% of the dump, plus ~2 chunks of 16 KiB around each edit. Bound: snapshot 2 may add at most
    // 20% of what the dump costs stored on its own in a fresh repository (compressed, like
    // bytes_added), i.e. 4-5x headroom; and at most 10% of the dump's raw bytes. New assets
    // (~random, incompressible) count in bytes_added too and fit well inside the margin.
    let added2 = summary(&snap2, "bytes_added");
    let alone2 = stored_alone(dump2.clone(), "db/website.sql");
    let raw2 = dump2.len() as u64;
    eprintln!(
        "postgres: dump {raw2} bytes raw, {alone2} stored alone; snapshot 1 added {}, snapshot 2 \
         added {added2} ({:.1}% of stored-alone, {:.1}% of raw; {} of {} chunks new; assets grew \
         by {} bytes); {stripped} volatile pg_dump line(s) ignored in comparisons",
        summary(&snap1, "bytes_added"),
        100.0 * added2 as f64 / alone2 as f64,
        100.0 * added2 as f64 / raw2 as f64,
        summary(&snap2, "chunks_new"),
        summary(&snap2, "chunks_total"),
        tree_bytes(&assets) - tree_bytes(&assets_at_1),
    );
    assert!(
        added2 * 5 < alone2,
        "snapshot 2 added {added2} bytes, not under 20% of the {alone2} bytes the dump costs alone\n{snap2}"
    );
    assert!(
        added2 * 10 < raw2,
        "snapshot 2 added {added2} bytes, not under 10% of the {raw2}-byte dump\n{snap2}"
    );
    assert!(
        summary(&snap2, "files_unchanged") >= 300,
        "unchanged assets were read again\n{snap2}"
    );

    // Restore each snapshot's dump into a fresh database; pg_dump of it prints the same dump.
    // psql --single-transaction, as one restores in practice (all or nothing), also makes the
    // rows land in COPY order: a table created in the loading transaction is filled without the
    // free space map. In autocommit, COPY may put a short row into an earlier page's leftover
    // space, and pg_dump of the restored database would print the same rows in another order.
    for (id, db, dump, orders) in [
        (&id1, "restored1", &dump1, ORDERS),
        (&id2, "restored2", &dump2, ORDERS - 100 + 3000),
    ] {
        pg.sql("postgres", &format!("CREATE DATABASE {db};"));
        let mut psql = pg.psql_cmd(db);
        psql.arg("--single-transaction");
        pipe_dump_into(&env, id, "/db/website.sql", psql);
        let again = pg.pg_dump(db);
        assert_same_pg_dump(
            &format!("pg_dump of {db} vs the dump in {id}"),
            dump,
            &again,
        );
        assert_eq!(
            pg.sql(db, "SELECT count(*) FROM orders;").trim(),
            orders.to_string()
        );
    }
    assert_eq!(
        pg.sql(
            "restored2",
            "SELECT count(*) FROM orders WHERE note LIKE '%[shipped]';"
        )
        .trim(),
        "6000"
    );

    // The asset trees, byte for byte with their metadata, as they were at each snapshot.
    for (id, want, target) in [(&id1, &assets_at_1, "r1"), (&id2, &assets, "r2")] {
        let t = env.path(target);
        env.restore(
            &format!("{id}:{}", assets.display()),
            &t,
            Vec::<&str>::new(),
        )
        .ok();
        assert_same_tree(want, &t, Compare::default());
    }

    // A dump of a database that does not exist fails the snapshot and commits nothing.
    let before = env.snapshot_ids();
    let mut cmd = env.cmd(["snapshot", "--label", "app=website", "--command"]);
    cmd.arg(format!("db/website.sql={}", pg.pg_dump_line("no_such_db")))
        .arg(&assets);
    clear_pg_env(&mut cmd);
    run_cmd(cmd).code(1).stderr_has("no_such_db");
    assert_eq!(env.snapshot_ids(), before);

    env.run(["verify", "--read-data"]).ok();
    eprintln!(
        "postgres round trip took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------------------------------------------
// SQLite
// ------------------------------------------------------------------------------------------------

const NOTES_SCHEMA: &str = "
PRAGMA foreign_keys = ON;
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author INTEGER NOT NULL REFERENCES authors(id),
    title TEXT NOT NULL,
    body TEXT,
    score REAL,
    data BLOB,
    created TEXT NOT NULL
);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
INSERT INTO authors SELECT i, 'author ' || i FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
INSERT INTO notes (author, title, body, score, data, created)
SELECT 1 + i % 500,
       'note ' || i,
       'body of note ' || i || ' ' || printf('%08x%08x', (i * 2654435761) % 4294967296, i * i % 99991)
           || CASE WHEN i % 1000 = 0 THEN char(10) || 'it''s multi-line, caf' || char(233) ELSE '' END,
       i * 0.25,
       CASE WHEN i % 10 = 0 THEN CAST(printf('%016x', i * 7919) AS BLOB) END,
       datetime(1600000000 + i * 60, 'unixepoch')
FROM n;
CREATE INDEX notes_author ON notes (author);
CREATE VIEW recent AS SELECT * FROM notes WHERE created > '2021-01-01';
CREATE TRIGGER notes_touch AFTER UPDATE ON notes BEGIN SELECT 1; END;
";

const NOTES_CHANGES: &str = "
UPDATE notes SET body = body || ' (edited)', score = score + 1 WHERE id BETWEEN 50001 AND 54000;
DELETE FROM notes WHERE id BETWEEN 120001 AND 120100;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO notes (author, title, body, score, created)
SELECT 1 + i % 500, 'new note ' || i, 'fresh', 0, datetime(1700000000 + i, 'unixepoch') FROM n;
";

pub(crate) fn sqlite(sqlite3: &Path, db: &Path, sql: &str) -> Vec<u8> {
    let mut cmd = Command::new(sqlite3);
    cmd.arg("-bail").arg(db);
    run_with_input(cmd, sql.as_bytes())
}

pub(crate) fn sqlite_dump(sqlite3: &Path, db: &Path) -> Vec<u8> {
    let mut cmd = Command::new(sqlite3);
    cmd.arg(db).arg(".dump");
    run_ok(cmd)
}

#[test]
fn sqlite_dump_round_trips() {
    let Some(sqlite3) = sqlite3() else {
        return;
    };
    let env = Env::init();
    let db = env.path("app/app.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    sqlite(&sqlite3, &db, NOTES_SCHEMA);
    let command = format!("db/app.sql={} {} .dump", sh_path(&sqlite3), sh_path(&db));
    let snapshot = || -> Value {
        let snap = env.snapshot(["--label", "app=notes", "--command", &command]);
        assert_eq!(snap["complete"], true, "{snap}");
        assert_eq!(snap["paths"], json!(["/db/app.sql"]), "{snap}");
        snap
    };

    let snap1 = snapshot();
    let direct1 = sqlite_dump(&sqlite3, &db);
    sqlite(&sqlite3, &db, NOTES_CHANGES);
    let snap2 = snapshot();
    let direct2 = sqlite_dump(&sqlite3, &db);
    assert_eq!(
        ids(&env.list(["--label", "app=notes"])),
        ids(&[snap1.clone(), snap2.clone()])
    );

    let dump1 = vault_dump(&env, &id_of(&snap1), "/db/app.sql");
    let dump2 = vault_dump(&env, &id_of(&snap2), "/db/app.sql");
    assert!(dump1.len() > 10_000_000, "dump of {} bytes", dump1.len());
    assert_same_text(
        "snapshot 1's dump vs .dump right after it",
        &direct1,
        &dump1,
    );
    assert_same_text(
        "snapshot 2's dump vs .dump right after it",
        &direct2,
        &dump2,
    );
    assert_ne!(dump1, dump2);
    assert_eq!(summary(&snap1, "bytes_total"), dump1.len() as u64);

    // SQLite dumps rows in rowid order, so updates stay in place. 2% of the rows change in one
    // range, 100 go, 2,000 (1%) come: the same 20%-of-stored-alone bound as for PostgreSQL.
    // Snapshot 1 held the dump alone, so its bytes_added is that yardstick's twin.
    let added2 = summary(&snap2, "bytes_added");
    let alone2 = stored_alone(dump2.clone(), "db/app.sql");
    eprintln!(
        "sqlite: dump {} bytes raw, {alone2} stored alone, snapshot 1 added {}, snapshot 2 added \
         {added2} ({:.1}%)",
        dump2.len(),
        summary(&snap1, "bytes_added"),
        100.0 * added2 as f64 / alone2 as f64
    );
    assert!(
        added2 * 5 < alone2,
        "snapshot 2 added {added2} of {alone2}\n{snap2}"
    );

    for (snap, dump, name) in [(&snap1, &dump1, "new1.db"), (&snap2, &dump2, "new2.db")] {
        let fresh = env.path(name);
        let mut load = Command::new(&sqlite3);
        load.arg("-bail").arg(&fresh);
        pipe_dump_into(&env, &id_of(snap), "/db/app.sql", load);
        assert_same_text(
            &format!(".dump of {name} vs the dump in snapshot {}", id_of(snap)),
            dump,
            &sqlite_dump(&sqlite3, &fresh),
        );
    }
    let count = |name: &str| {
        String::from_utf8(sqlite(
            &sqlite3,
            &env.path(name),
            "SELECT count(*) FROM notes;",
        ))
        .unwrap()
    };
    assert_eq!(count("new1.db").trim(), "200000");
    assert_eq!(count("new2.db").trim(), "201900");
    env.run(["verify", "--read-data"]).ok();
}

// ------------------------------------------------------------------------------------------------
// Failing commands
// ------------------------------------------------------------------------------------------------

/// A repository with one good snapshot of `<tmp>/data`, for the failure tests.
fn env_with_one_snapshot() -> (Env, PathBuf, String) {
    let env = Env::init();
    let data = env.path("data");
    write(&data.join("a.txt"), b"a\n");
    write(&data.join("b.bin"), &random_bytes(3, 300_000));
    let snap = env.snapshot([data.as_os_str()]);
    (env, data, id_of(&snap))
}

/// Runs a snapshot whose commands fail: it must exit 1 naming the reason, print no id, commit
/// nothing, leave `verify --read-data` clean and the repository usable. Returns how long the
/// failed snapshot took.
#[track_caller]
fn assert_failed_snapshot(commands: &[&str], extra: &[&str], reason: &str) -> Duration {
    let (env, data, first) = env_with_one_snapshot();
    let mut cmd = env.cmd(["snapshot", "--json", "--label", "app=failing"]);
    for c in commands {
        cmd.arg("--command").arg(c);
    }
    cmd.args(extra).arg(&data);
    let started = Instant::now();
    let out = run_cmd(cmd);
    let took = started.elapsed();
    out.code(1)
        .stderr_has(reason)
        .stderr_has("nothing was committed");
    assert!(
        out.stdout.is_empty(),
        "a failed snapshot printed {:?}",
        out.stdout_str()
    );
    assert_eq!(ids(&env.list(Vec::<&str>::new())), vec![first.clone()]);
    assert!(env.list(["--label", "app=failing"]).is_empty());
    env.run(["verify", "--read-data"]).ok();
    // The repository takes the next snapshot as usual, with the good one as its parent.
    let next = env.snapshot(["--command", "ok.txt=echo ok", data.to_str().unwrap()]);
    assert_eq!(next["parent"], json!(first));
    assert_eq!(vault_dump(&env, &id_of(&next), "/ok.txt"), b"ok\n");
    env.run(["verify", "--read-data"]).ok();
    took
}

#[test]
fn command_exiting_non_zero_commits_nothing() {
    assert_failed_snapshot(&["db/x.sql=false"], &[], "exited with status 1");
}

#[test]
fn command_killed_by_a_signal_commits_nothing() {
    assert_failed_snapshot(&["db/x.sql=kill -9 $$"], &[], "killed by signal 9");
}

#[test]
fn command_failing_after_megabytes_of_output_commits_nothing() {
    assert_failed_snapshot(
        &["db/x.sql=head -c 5000000 /dev/urandom; exit 2"],
        &[],
        "exited with status 2",
    );
}

#[test]
fn second_command_failing_after_the_first_succeeded_commits_nothing() {
    assert_failed_snapshot(
        &[
            "db/one.sql=head -c 1000000 /dev/urandom",
            "db/two.sql=echo partial; exit 3",
        ],
        &[],
        "exited with status 3",
    );
}

/// The timeout kills the command: with `exec`, `sh` becomes `sleep`, the process vault kills.
#[test]
fn command_timeout_kills_the_command_and_commits_nothing() {
    let took = assert_failed_snapshot(
        &["db/x.sql=exec sleep 30"],
        &["--command-timeout", "1s"],
        "timed out",
    );
    assert!(
        took < Duration::from_secs(10),
        "a 1s timeout returned after {took:?}"
    );
}

/// The brief's case, `sleep 30` under `sh -c`: dash forks `sleep` rather than exec'ing it.
#[test]
fn command_timeout_bounds_the_time_of_the_commands_children() {
    let took = assert_failed_snapshot(
        &["db/x.sql=sleep 30"],
        &["--command-timeout", "1s"],
        "timed out",
    );
    assert!(
        took < Duration::from_secs(10),
        "a 1s timeout returned after {took:?}"
    );
}

// ------------------------------------------------------------------------------------------------
// Ordering
// ------------------------------------------------------------------------------------------------

#[test]
fn commands_run_in_order_before_the_paths_are_walked() {
    let env = Env::init();
    let data = env.path("data");
    write(&data.join("existing.txt"), b"there before\n");
    let marker = data.join("made-by-command.txt");
    let log = env.path("order.log");
    let first = format!(
        "first.txt=echo first >> {log}; echo marker > {marker}; echo one",
        log = sh_path(&log),
        marker = sh_path(&marker)
    );
    // Prints what the first command logged: proof that it had finished.
    let second = format!(
        "second.txt=cat {log}; echo second >> {log}",
        log = sh_path(&log)
    );
    let snap = env.snapshot([
        "--command",
        &first,
        "--command",
        &second,
        data.to_str().unwrap(),
    ]);
    let id = id_of(&snap);
    let kinds: Vec<&str> = snap["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    let paths: Vec<&str> = snap["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["command", "command", "path"], "{snap}");
    assert_eq!(
        paths,
        ["/first.txt", "/second.txt", data.to_str().unwrap()],
        "{snap}"
    );

    assert_eq!(vault_dump(&env, &id, "/first.txt"), b"one\n");
    assert_eq!(vault_dump(&env, &id, "/second.txt"), b"first\n");
    assert_eq!(fs::read(&log).unwrap(), b"first\nsecond\n");

    // The marker the first command made inside the path is in the snapshot.
    let t = env.path("t");
    env.restore(&format!("{id}:{}", data.display()), &t, Vec::<&str>::new())
        .ok();
    assert_eq!(names(&t), ["existing.txt", "made-by-command.txt"]);
    assert_eq!(
        fs::read(t.join("made-by-command.txt")).unwrap(),
        b"marker\n"
    );
    assert_same_tree(&data, &t, Compare::default());
}
