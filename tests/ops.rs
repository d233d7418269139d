//! The operations layer through the binary: `vault config check`, `vault run`, `vault status`
//! and the Prometheus textfile, with a real PostgreSQL cluster (the one `app_backup` starts),
//! real SQLite files and asset trees.
//!
//! PostgreSQL and sqlite3 come from Debian's `postgresql` and `sqlite3` packages, which
//! `.ci/run` installs; under CI a missing one fails the test, elsewhere it is skipped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app_backup::{
    assert_same_pg_dump, assert_same_text, required, sqlite, sqlite3, sqlite_dump, PgCluster,
};
use crate::util::*;

const PASSWORD: &str = "correct horse battery staple";

/// A test world: the main repository is the environment's own (`env.repo`, encrypted, its
/// password in a file that VAULT_PASSWORD_FILE names for the plain `vault` commands), an
/// off-site one that is stated unencrypted, a config file and a state directory.
struct Ops {
    env: Env,
    password_file: PathBuf,
    offsite: PathBuf,
    config: PathBuf,
    state: PathBuf,
}

impl Ops {
    fn new() -> Ops {
        let env0 = Env::new();
        let password_file = env0.path("main.pass");
        fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        let env = env0.with_envs([("VAULT_PASSWORD_FILE", password_file.as_os_str())]);
        env.run(["init", "--kdf-memory", "8MiB", "--kdf-passes", "1"])
            .ok();
        let offsite = env.path("offsite");
        env.run([
            "init",
            "--encryption",
            "none",
            "--repo",
            offsite.to_str().unwrap(),
        ])
        .ok();
        Ops {
            config: env.path("vault.toml"),
            state: env.path("state"),
            password_file,
            offsite,
            env,
        }
    }

    /// The `[repositories]` part every config here starts with.
    fn repositories(&self) -> String {
        format!(
            "[repositories.main]\nlocation = {:?}\npassword_file = {:?}\n\n[repositories.offsite]\nlocation = {:?}\nencryption = \"none\"\n\n[metrics]\ntextfile = {:?}\n\n",
            self.env.repo,
            self.password_file,
            self.offsite,
            self.textfile()
        )
    }

    fn textfile(&self) -> PathBuf {
        self.env.path("metrics/vault.prom")
    }

    fn write_config(&self, applications: &str) {
        fs::write(
            &self.config,
            format!("{}{applications}", self.repositories()),
        )
        .unwrap();
    }

    /// `vault CMD --config … --state-dir … ARGS`.
    fn ops(&self, command: &[&str], args: &[&str]) -> Out {
        let mut cmd = self.env.cmd(command);
        cmd.arg("--config").arg(&self.config);
        cmd.arg("--state-dir").arg(&self.state);
        cmd.args(args);
        run_cmd(cmd)
    }

    fn offsite_list(&self) -> Vec<Value> {
        self.env.list(["--repo", self.offsite.to_str().unwrap()])
    }
}

fn app<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == name)
        .unwrap_or_else(|| panic!("no app {name} in {run:#}"))
}

fn step<'a>(app: &'a Value, name: &str) -> &'a Value {
    app["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {app:#}"))
}

fn with_label<'a>(snapshots: &'a [Value], app: &str) -> Vec<&'a Value> {
    snapshots
        .iter()
        .filter(|s| s["labels"]["app"] == app)
        .collect()
}

/// The textfile's samples: (metric, app) -> value, parsed by a Prometheus text-format parser.
fn metrics(path: &Path) -> BTreeMap<(String, String), f64> {
    let text = fs::read_to_string(path).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the textfile parses");
    for name in [
        "vault_last_run_success",
        "vault_snapshot_age_seconds",
        "vault_repository_size_bytes",
    ] {
        let doc = scrape.docs.get(name);
        assert!(
            doc.is_some_and(|d| !d.is_empty()),
            "no HELP for {name}:\n{text}"
        );
    }
    scrape
        .samples
        .iter()
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{} is not a gauge: {other:?}", s.metric),
            };
            (
                (
                    s.metric.clone(),
                    s.labels.get("app").unwrap_or("").to_string(),
                ),
                value,
            )
        })
        .collect()
}

fn assets(root: &Path, seed: u8) {
    for (i, dir) in ["img", "img/thumbs", "docs"].iter().enumerate() {
        fs::create_dir_all(root.join(dir)).unwrap();
        for j in 0..5u8 {
            let data: Vec<u8> = (0..(4096 * (j as usize + 1)))
                .map(|k| (k as u8).wrapping_mul(seed).wrapping_add(i as u8 + j))
                .collect();
            fs::write(root.join(dir).join(format!("f{j}.bin")), data).unwrap();
        }
    }
}

const NOTES: &str = "CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL);
INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 5000) AS i;";

#[test]
fn postgres_and_sqlite_apps_run_restore_keep_by_retention_and_report_status() {
    let ops = Ops::new();
    let Some(pg) = PgCluster::start(&ops.env) else {
        return;
    };
    let Some(sqlite3) = sqlite3() else {
        return;
    };
    pg.sql("postgres", "CREATE DATABASE cms;");
    pg.sql("cms", NOTES);
    let cms_assets = ops.env.path("cms-assets");
    assets(&cms_assets, 7);
    let wiki_db = ops.env.path("wiki/wiki.db");
    fs::create_dir_all(wiki_db.parent().unwrap()).unwrap();
    sqlite(&sqlite3, &wiki_db, "CREATE TABLE pages (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO pages (title) VALUES ('home'), ('about');");
    let wiki_uploads = ops.env.path("wiki/uploads");
    assets(&wiki_uploads, 13);
    let version_file = ops.env.path("cms-version.txt");
    fs::write(&version_file, "6.2.41\nbuild 7\n").unwrap();
    ops.write_config(&format!(
        r#"[applications.cms]
repository = "main"
paths = [{cms_assets:?}]
labels = {{ version = {{ file = {version_file:?} }}, env = "prod" }}
retention = {{ keep_last = 1 }}
verify = {{ read_data_subset = "1/2" }}
copy_to = [{{ repository = "offsite", retention = {{ keep_last = 2 }} }}]
schedule = "0 2 * * *"

[[applications.cms.databases]]
kind = "postgresql"
name = "cms"
host = "127.0.0.1"
port = {port}
user = "postgres"
bin_dir = {bin:?}

[applications.wiki]
repository = "main"
paths = [{wiki_uploads:?}]
excludes = ["*.tmp"]

[[applications.wiki.databases]]
kind = "sqlite"
path = {wiki_db:?}
"#,
        port = pg.port,
        bin = pg.bin,
    ));
    let check = ops.ops(&["config", "check"], &["--json"]);
    check.ok();
    let check = check.json();
    assert_eq!(check["valid"], true, "{check:#}");
    assert_eq!(
        check["applications"][0]["databases"][0],
        "postgresql:databases/cms.sql"
    );

    // The first run: both applications, every step.
    let out = ops.ops(&["run"], &["--json"]);
    out.ok();
    let run = out.json();
    let cms = app(&run, "cms");
    assert_eq!(cms["result"], "ok", "{run:#}");
    for name in ["snapshot", "forget", "copy", "forget-copy", "verify"] {
        assert_eq!(step(cms, name)["status"], "ok", "{name}: {cms:#}");
    }
    assert_eq!(app(&run, "wiki")["result"], "ok", "{run:#}");
    let snapshots = ops.env.list(Vec::<String>::new());
    let cms_snapshots = with_label(&snapshots, "cms");
    assert_eq!(cms_snapshots.len(), 1, "{snapshots:#?}");
    let first = cms_snapshots[0]["id"].as_str().unwrap().to_string();
    assert_eq!(step(cms, "snapshot")["snapshot"]["id"], first.as_str());
    assert_eq!(cms_snapshots[0]["labels"]["version"], "6.2.41");
    assert_eq!(cms_snapshots[0]["labels"]["env"], "prod");

    // What the snapshot holds is the database and the assets, byte for byte.
    let stored = ops.env.run(["dump", &first, "/databases/cms.sql"]);
    stored.ok();
    assert_same_pg_dump(
        "the cms dump in the snapshot",
        &pg.pg_dump("cms"),
        &stored.stdout,
    );
    let target = ops.env.path("restored-cms");
    ops.env.restore(&first, &target, Vec::<String>::new()).ok();
    assert_same_tree(
        &cms_assets,
        &Env::restored(&target, &cms_assets),
        Compare::default(),
    );
    let wiki = with_label(&snapshots, "wiki")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = ops.env.run(["dump", &wiki, "/databases/wiki.sql"]);
    stored.ok();
    assert_same_text(
        "the wiki dump",
        &sqlite_dump(&sqlite3, &wiki_db),
        &stored.stdout,
    );
    let target = ops.env.path("restored-wiki");
    ops.env.restore(&wiki, &target, Vec::<String>::new()).ok();
    assert_same_tree(
        &wiki_uploads,
        &Env::restored(&target, &wiki_uploads),
        Compare::default(),
    );

    // The second run after a change: the cms retention keeps one snapshot, the off-site two.
    pg.sql(
        "cms",
        "INSERT INTO notes SELECT i, 'later ' || i FROM generate_series(5001, 5100) AS i;",
    );
    let out = ops.ops(&["run"], &["cms", "--json"]);
    out.ok();
    let run = out.json();
    let cms = app(&run, "cms");
    assert_eq!(step(cms, "forget")["snapshots"], 1, "{cms:#}");
    let snapshots = ops.env.list(Vec::<String>::new());
    let cms_snapshots = with_label(&snapshots, "cms");
    assert_eq!(cms_snapshots.len(), 1, "{snapshots:#?}");
    let second = cms_snapshots[0]["id"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    let stored = ops.env.run(["dump", &second, "/databases/cms.sql"]);
    stored.ok();
    assert_same_pg_dump("the second cms dump", &pg.pg_dump("cms"), &stored.stdout);
    assert_eq!(with_label(&ops.offsite_list(), "cms").len(), 2);
    let history = fs::read_to_string(ops.state.join("history/cms.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 2, "{history}");

    // Status answers from the state directory.
    let out = ops.ops(&["status"], &["--json"]);
    out.ok();
    let status = out.json();
    assert_eq!(status["healthy"], true, "{status:#}");
    let cms_status = app(&status, "cms");
    assert_eq!(cms_status["health"], "ok");
    assert_eq!(cms_status["newest_snapshot"]["id"], second.as_str());
    assert_eq!(cms_status["verify"]["slices"], 2);
    assert_eq!(cms_status["stale_after_secs"], 2 * 86_400);
    assert_eq!(cms_status["running"], false);

    // The textfile says the same.
    let samples = metrics(&ops.textfile());
    let get = |metric: &str, app: &str| samples[&(metric.to_string(), app.to_string())];
    assert_eq!(get("vault_last_run_success", "cms"), 1.0);
    assert_eq!(get("vault_last_run_success", "wiki"), 1.0);
    assert_eq!(
        get("vault_repository_size_bytes", "cms"),
        cms_status["repository_size_bytes"].as_f64().unwrap()
    );
    assert_eq!(
        get("vault_snapshot_added_bytes", "cms"),
        cms_status["newest_snapshot"]["bytes_added"]
            .as_f64()
            .unwrap()
    );
    assert!(get("vault_snapshot_age_seconds", "cms") < 600.0);

    // A wrong database name: the snapshot step fails, later steps are skipped, the snapshots
    // stay as they were, and status and the textfile say so.
    let before = ops.env.snapshot_ids();
    let config = fs::read_to_string(&ops.config).unwrap();
    fs::write(
        &ops.config,
        config.replace("name = \"cms\"", "name = \"no_such_db\""),
    )
    .unwrap();
    let out = ops.ops(&["run"], &["cms", "--json"]);
    out.code(1);
    let run = out.json();
    let cms = app(&run, "cms");
    assert_eq!(cms["result"], "failed");
    assert_eq!(cms["failed_step"], "snapshot", "{cms:#}");
    assert!(
        step(cms, "snapshot")["message"]
            .as_str()
            .unwrap()
            .contains("no_such_db"),
        "{cms:#}"
    );
    assert_eq!(step(cms, "forget")["status"], "skipped");
    assert_eq!(step(cms, "copy")["status"], "skipped");
    assert_eq!(ops.env.snapshot_ids(), before);
    let out = ops.ops(&["status"], &[]);
    out.code(3);
    assert!(out.stdout_str().contains("failed"), "{}", out.stdout_str());
    assert_eq!(
        metrics(&ops.textfile())[&("vault_last_run_success".into(), "cms".into())],
        0.0
    );
}

/// Config problems: each names the file, line, column and key, exits 2, and `--json` gives the
/// same as a document.
#[test]
fn config_errors_name_file_line_column_and_key() {
    let ops = Ops::new();
    let app = "[applications.site]\nrepository = \"main\"\npaths = [\"/srv/site\"]\n";
    let lines = ops.repositories().lines().count();
    let cases: [(&str, String, usize, &str, &str); 6] = [
        (
            "unknown key",
            format!("{app}retention = {{ keep_dayly = 7 }}\n"),
            lines + 4,
            "applications.site.retention",
            "keep_dayly",
        ),
        (
            "wrong type",
            "[applications.site]\nrepository = \"main\"\npaths = \"/srv/site\"\n".into(),
            lines + 3,
            "applications.site.paths",
            "expected a sequence",
        ),
        (
            "missing repository",
            "[applications.site]\nrepository = \"mian\"\npaths = [\"/srv\"]\n".into(),
            lines + 2,
            "applications.site.repository",
            "no repository \"mian\"",
        ),
        (
            "bad schedule",
            format!("{app}schedule = \"every night\"\n"),
            lines + 4,
            "applications.site.schedule",
            "not a cron expression",
        ),
        (
            "bad subset",
            format!("{app}verify = {{ read_data_subset = \"2/7\" }}\n"),
            lines + 4,
            "applications.site.verify",
            "1/N",
        ),
        (
            "empty retention",
            format!("{app}retention = {{ keep_daily = 0 }}\n"),
            lines + 1,
            "applications.site",
            "would forget every snapshot",
        ),
    ];
    for (what, text, line, key, message) in cases {
        ops.write_config(&text);
        let out = ops.ops(&["config", "check"], &[]);
        out.code(2).no_panic();
        let at = format!("{}:{line}:", ops.config.display());
        assert!(
            out.stderr.contains(&at),
            "{what}: want {at}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(key),
            "{what}: want key {key}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(message),
            "{what}: want {message:?}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "{what}: one line: {}",
            out.stderr
        );
        let out = ops.ops(&["config", "check"], &["--json"]);
        out.code(2);
        let v = out.json();
        assert_eq!(v["valid"], false, "{what}: {v:#}");
        assert_eq!(v["error"]["line"], line, "{what}: {v:#}");
        assert!(v["error"]["column"].as_u64().unwrap() >= 1);
        // vault run refuses the same config before touching anything.
        ops.ops(&["run"], &[]).code(2);
    }
}

/// A repository without a password source is refused unless it states encryption = "none";
/// one that states a password source but is not encrypted is refused at run time.
#[test]
fn encryption_must_be_stated_never_assumed() {
    let ops = Ops::new();
    let site = ops.env.path("site");
    assets(&site, 3);
    fs::write(
        &ops.config,
        format!("[repositories.main]\nlocation = {:?}\n\n[applications.site]\nrepository = \"main\"\npaths = [{site:?}]\n", ops.env.repo),
    )
    .unwrap();
    let out = ops.ops(&["config", "check"], &[]);
    out.code(2);
    assert!(
        out.stderr
            .contains(":1:1: repositories.main: repository \"main\" has no password source"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("encryption = \"none\""),
        "{}",
        out.stderr
    );

    // The config claims a password for the unencrypted off-site repository.
    fs::write(
        &ops.config,
        format!("[repositories.main]\nlocation = {:?}\npassword_file = {:?}\n\n[applications.site]\nrepository = \"main\"\npaths = [{site:?}]\n", ops.offsite, ops.password_file),
    )
    .unwrap();
    ops.ops(&["config", "check"], &[]).ok();
    let out = ops.ops(&["run"], &["--json"]);
    out.code(1);
    let run = out.json();
    let message = step(app(&run, "site"), "snapshot")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("is not encrypted"), "{message}");
    assert!(ops.offsite_list().is_empty());
}

#[test]
fn a_missing_database_tool_names_the_debian_package() {
    let ops = Ops::new();
    ops.write_config(
        "[applications.cms]\nrepository = \"main\"\n\n[[applications.cms.databases]]\nkind = \"postgresql\"\nname = \"cms\"\nbin_dir = \"/nonexistent/bin\"\n",
    );
    let out = ops.ops(&["run"], &[]);
    out.code(1).no_panic();
    let text = out.stdout_str();
    assert!(text.contains("apt-get install postgresql-client"), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(ops.env.snapshot_ids().is_empty());
}

/// A run of an application whose job is still running is skipped (exit 4), and status shows
/// the job running.
#[test]
fn a_run_of_an_application_already_running_is_skipped() {
    let ops = Ops::new();
    let marker = ops.env.path("dump-started");
    ops.write_config(&format!(
        "[applications.slow]\nrepository = \"main\"\n\n[[applications.slow.databases]]\nkind = \"command\"\nname = \"slow\"\ndump_command = \"touch {} && sleep 3 && echo dumped\"\n",
        marker.display()
    ));
    let mut first = ops.env.cmd(["run", "--json", "--config"]);
    first.arg(&ops.config).arg("--state-dir").arg(&ops.state);
    first.stdout(Stdio::piped()).stderr(Stdio::piped());
    let first = first.spawn().unwrap();
    let waited = Instant::now();
    while !marker.exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the first run never started its dump"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = ops.ops(&["status"], &["--json"]);
    assert_eq!(app(&out.json(), "slow")["running"], true);
    let out = ops.ops(&["run"], &["--json"]);
    out.code(4);
    let run = out.json();
    assert_eq!(app(&run, "slow")["result"], "skipped", "{run:#}");
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let status = ops.ops(&["status"], &["--json"]);
    status.ok();
    let status = status.json();
    assert_eq!(app(&status, "slow")["running"], false);
    assert_eq!(app(&status, "slow")["last_run"]["result"], "ok");
    assert_eq!(ops.env.snapshot_ids().len(), 1);
}

/// Status: an application that never ran, and one whose newest snapshot is older than its
/// `stale_after`, are reported so (exit 3); the textfile carries the snapshot's age.
#[test]
fn status_reports_stale_and_never_run_applications() {
    let ops = Ops::new();
    ops.write_config(
        "[applications.quick]\nrepository = \"main\"\nstale_after = \"2s\"\n\n[[applications.quick.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n\n[applications.later]\nrepository = \"main\"\nschedule = \"0 * * * *\"\n\n[[applications.later.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\n",
    );
    ops.ops(&["run"], &["quick"]).ok();
    let out = ops.ops(&["status"], &["quick", "--json"]);
    out.ok();
    assert_eq!(app(&out.json(), "quick")["health"], "ok");
    let out = ops.ops(&["status"], &["--json"]);
    out.code(3);
    let status = out.json();
    assert_eq!(status["healthy"], false);
    assert_eq!(app(&status, "later")["health"], "never_run");
    assert_eq!(app(&status, "later")["stale_after_secs"], 2 * 3600);
    std::thread::sleep(Duration::from_secs(3));
    let out = ops.ops(&["status"], &["quick", "--json"]);
    out.code(3);
    let quick = out.json();
    let quick = app(&quick, "quick");
    assert_eq!(quick["health"], "stale", "{quick:#}");
    assert!(quick["newest_snapshot"]["age_secs"].as_u64().unwrap() >= 2);
    let out = ops.ops(&["status"], &["nosuch"]);
    out.code(2);
    assert!(
        out.stderr.contains("no application \"nosuch\""),
        "{}",
        out.stderr
    );
}

#[path = "ops_hooks.rs"]
mod hooks;

#[path = "ops_schedule.rs"]
mod schedule;

#[path = "ops_daemon.rs"]
mod daemon;

#[path = "ops_restore.rs"]
mod restore;

#[path = "ops_mariadb.rs"]
mod mariadb;
