//! `vault restore-app` (a submodule of `ops`): an application's snapshot restored under a new
//! name with a real PostgreSQL cluster and sqlite3: the new database compared with the original
//! by pg_dump (the original keeps existing), files byte for byte, an existing database or file
//! refused, and a load failing half-way leaving no new database.

use super::*;

/// The names of the cluster's databases (what `psql -l` lists).
fn databases(pg: &PgCluster) -> Vec<String> {
    pg.sql("postgres", "SELECT datname FROM pg_database ORDER BY 1;")
        .lines()
        .map(str::to_string)
        .collect()
}

fn pg_database(pg: &PgCluster, name: &str) -> String {
    format!(
        "[[applications.{name}.databases]]\nkind = \"postgresql\"\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\nbin_dir = {:?}\n",
        pg.port, pg.bin
    )
}

#[test]
fn restore_app_loads_dumps_into_new_databases_and_refuses_existing_ones() {
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
    assets(&cms_assets, 5);
    let wiki_db = ops.env.path("wiki/wiki.db");
    fs::create_dir_all(wiki_db.parent().unwrap()).unwrap();
    sqlite(&sqlite3, &wiki_db, "CREATE TABLE pages (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO pages (title) VALUES ('home'), ('about'), ('it''s');");
    let wiki_uploads = ops.env.path("wiki/uploads");
    assets(&wiki_uploads, 11);
    ops.write_config(&format!(
        "[applications.cms]\nrepository = \"main\"\npaths = [{cms_assets:?}]\n\n{}\n[applications.wiki]\nrepository = \"main\"\npaths = [{wiki_uploads:?}]\n\n[[applications.wiki.databases]]\nkind = \"sqlite\"\npath = {wiki_db:?}\n",
        pg_database(&pg, "cms")
    ));
    ops.ops(&["run"], &[]).ok();

    // PostgreSQL under a new name, while the original keeps existing and serving.
    let target = ops.env.path("cms-restored");
    let out = ops.ops(
        &["restore-app"],
        &[
            "cms",
            "--as",
            "cms_copy",
            "--target",
            target.to_str().unwrap(),
            "--json",
        ],
    );
    out.ok();
    let report = out.json();
    assert_eq!(report["ok"], true, "{report:#}");
    let database = &report["databases"][0];
    assert_eq!(database["restored_as"], "cms_copy", "{report:#}");
    assert_eq!(database["status"], "loaded", "{report:#}");
    assert_eq!(database["kind"], "postgresql");
    assert!(database["bytes"].as_u64().unwrap() > 50_000, "{report:#}");
    assert_same_pg_dump(
        "cms restored as cms_copy",
        &pg.pg_dump("cms"),
        &pg.pg_dump("cms_copy"),
    );
    assert_eq!(
        pg.sql("cms_copy", "SELECT count(*) FROM notes;").trim(),
        "5000"
    );
    assert_same_tree(
        &cms_assets,
        &Env::restored(&target, &cms_assets),
        Compare::default(),
    );
    assert!(
        !target.join("databases").exists(),
        "the dumps are loaded, not restored as files"
    );

    // SQLite into a new file (a path), byte-identical dump; the uploads restored too.
    let wiki_copy = ops.env.path("copies/wiki-copy.db");
    let wiki_target = ops.env.path("wiki-restored");
    let out = ops.ops(
        &["restore-app"],
        &[
            "wiki",
            "--as",
            wiki_copy.to_str().unwrap(),
            "--target",
            wiki_target.to_str().unwrap(),
        ],
    );
    out.ok();
    assert!(out.stdout_str().contains("loaded"), "{}", out.stdout_str());
    assert_same_text(
        "wiki restored into a new file",
        &sqlite_dump(&sqlite3, &wiki_db),
        &sqlite_dump(&sqlite3, &wiki_copy),
    );
    assert_same_tree(
        &wiki_uploads,
        &Env::restored(&wiki_target, &wiki_uploads),
        Compare::default(),
    );

    // An existing database or file is refused, named with the fix, and left as it was.
    pg.sql("cms_copy", "INSERT INTO notes VALUES (99999, 'mine');");
    let before = pg.pg_dump("cms_copy");
    let other = ops.env.path("cms-restored-2");
    let out = ops.ops(
        &["restore-app"],
        &[
            "cms",
            "--as",
            "cms_copy",
            "--target",
            other.to_str().unwrap(),
        ],
    );
    out.code(1).no_panic();
    out.stderr_has("\"cms_copy\" exists already");
    out.stderr_has("dropdb cms_copy");
    assert_same_pg_dump(
        "cms_copy after the refusal",
        &before,
        &pg.pg_dump("cms_copy"),
    );
    let wiki_before = fs::read(&wiki_copy).unwrap();
    let out = ops.ops(
        &["restore-app"],
        &[
            "wiki",
            "--as",
            wiki_copy.to_str().unwrap(),
            "--target",
            ops.env.path("wiki-restored-2").to_str().unwrap(),
        ],
    );
    out.code(1).no_panic();
    out.stderr_has("exists already");
    assert!(
        fs::read(&wiki_copy).unwrap() == wiki_before,
        "the existing file is untouched"
    );

    // A non-empty target is refused (as `vault restore` refuses it) before any database is
    // created; a missing --target too.
    let out = ops.ops(
        &["restore-app"],
        &[
            "cms",
            "--as",
            "cms_other",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    out.code(2).no_panic();
    let out = ops.ops(&["restore-app"], &["cms", "--as", "cms_other"]);
    out.code(2).no_panic();
    out.stderr_has("--target");
    assert!(!databases(&pg).contains(&"cms_other".to_string()));
    // A name PostgreSQL would need quoting for is refused with the rule.
    let out = ops.ops(
        &["restore-app"],
        &[
            "cms",
            "--as",
            "cms copy",
            "--target",
            other.to_str().unwrap(),
        ],
    );
    out.code(2).no_panic();
    out.stderr_has("letters, digits");
}

/// A dump that is valid SQL up to half-way: the load stops at the first error, the command
/// fails naming the database, and the half-loaded new database is dropped.
#[test]
fn restore_app_drops_a_half_loaded_database() {
    let ops = Ops::new();
    let Some(pg) = PgCluster::start(&ops.env) else {
        return;
    };
    // Backed up by a command that writes good SQL, then a line that is not SQL, then more.
    let half = "CREATE TABLE t (id integer);\nINSERT INTO t SELECT generate_series(1, 1000);\nTHIS IS NOT SQL;\nINSERT INTO t VALUES (0);\n";
    let dump_file = ops.env.path("half.sql");
    fs::write(&dump_file, half).unwrap();
    ops.write_config(&format!(
        "[applications.half]\nrepository = \"main\"\n\n[[applications.half.databases]]\nkind = \"command\"\nname = \"half\"\ndump_command = \"cat {}\"\n",
        dump_file.display()
    ));
    ops.ops(&["run"], &[]).ok();
    // The same database is now declared as PostgreSQL: its dump is loaded with psql.
    ops.write_config(&pg_database(&pg, "half").replace(
        "[[applications.half.databases]]",
        "[applications.half]\nrepository = \"main\"\n\n[[applications.half.databases]]",
    ));
    let before = databases(&pg);
    let out = ops.ops(&["restore-app"], &["half", "--as", "half_copy", "--json"]);
    out.code(1).no_panic();
    let report = out.json();
    assert_eq!(report["ok"], false, "{report:#}");
    assert_eq!(report["databases"][0]["status"], "dropped", "{report:#}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("\"half_copy\""), "{error}");
    assert!(error.contains("THIS"), "psql's error is named: {error}");
    assert_eq!(databases(&pg), before, "no new database is left");
    let out = ops.ops(&["restore-app"], &["half", "--as", "half_copy"]);
    out.code(1).no_panic();
    out.stderr_has("vault: restore-app half: loading databases/half.sql into the new postgresql database \"half_copy\" failed");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_eq!(databases(&pg), before);

    // A command database with a restore command: it reads the dump with the new name in
    // VAULT_RESTORE_AS; its failure is reported the same way.
    let loaded = ops.env.path("loaded");
    ops.write_config(&format!(
        "[applications.half]\nrepository = \"main\"\n\n[[applications.half.databases]]\nkind = \"command\"\nname = \"half\"\ndump_command = \"cat {}\"\nrestore_command = \"cat > {}.$VAULT_RESTORE_AS\"\n",
        dump_file.display(),
        loaded.display()
    ));
    ops.ops(&["restore-app"], &["half", "--as", "again"]).ok();
    assert_eq!(
        fs::read_to_string(ops.env.path("loaded.again")).unwrap(),
        half
    );
}

/// Scratch directories left under `root` (the restore tests' own).
fn scratch_left(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `vault restore-test`: a passing test (a query returns rows, a file exists, a command sees
/// the restored tree and the scratch database), then a failing check (a query returning no
/// rows): exit 1 naming it, status and the textfile show it, and both times the scratch
/// databases and directory are gone.
#[test]
fn restore_test_checks_a_scratch_copy_and_always_cleans_up() {
    let ops = Ops::new();
    let Some(pg) = PgCluster::start(&ops.env) else {
        return;
    };
    pg.sql("postgres", "CREATE DATABASE shop;");
    pg.sql("shop", NOTES);
    let shop_assets = ops.env.path("shop-assets");
    assets(&shop_assets, 3);
    let scratch = ops.env.path("scratch");
    let logo = shop_assets.join("img/f1.bin");
    let config = |query: &str| {
        format!(
            "[applications.shop]\nrepository = \"main\"\npaths = [{shop_assets:?}]\n\n[applications.shop.restore_test]\nschedule = \"0 4 * * 0\"\nscratch_dir = {scratch:?}\nchecks = [\n  {{ query = \"{query}\", database = \"shop\" }},\n  {{ file = {logo:?} }},\n  {{ command = \"test -f {} && test -n \\\"$VAULT_RESTORE_DB_SHOP\\\" && echo $VAULT_RESTORE_DB_SHOP > {}\" }},\n]\n\n{}",
            logo.strip_prefix("/").unwrap().display(),
            ops.env.path("seen-db").display(),
            pg_database(&pg, "shop")
        )
    };
    ops.write_config(&config("SELECT id FROM notes WHERE id = 4321"));
    ops.ops(&["config", "check"], &[]).ok();
    ops.ops(&["run"], &[]).ok();
    let before = databases(&pg);

    let out = ops.ops(&["restore-test"], &["--json"]);
    out.ok();
    let report = out.json();
    let shop = &report["apps"][0];
    assert_eq!(shop["ok"], true, "{report:#}");
    assert_eq!(shop["cleaned_up"], true);
    let checks = shop["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{report:#}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{report:#}");
    assert_eq!(checks[0]["message"], "1 row(s)", "{report:#}");
    let seen = fs::read_to_string(ops.env.path("seen-db")).unwrap();
    assert!(
        seen.trim().starts_with("vault_restoretest_shop_"),
        "the command saw the scratch database: {seen}"
    );
    assert_eq!(databases(&pg), before, "the scratch database is dropped");
    assert_eq!(scratch_left(&scratch), Vec::<String>::new());
    let status = ops.ops(&["status"], &["--json"]).json();
    let shop_status = app(&status, "shop");
    assert_eq!(shop_status["last_restore_test"]["ok"], true, "{status:#}");
    assert_eq!(shop_status["health"], "ok", "{status:#}");
    let samples = metrics(&ops.textfile());
    let key = |m: &str| (m.to_string(), "shop".to_string());
    assert_eq!(samples[&key("vault_last_restore_test_success")], 1.0);
    assert!(samples[&key("vault_last_restore_test_timestamp_seconds")] > 1.6e9);

    // A query that returns no rows: the test fails naming the check, and still cleans up.
    ops.write_config(&config("SELECT id FROM notes WHERE id > 999999"));
    let out = ops.ops(&["restore-test"], &["shop"]);
    out.code(1).no_panic();
    out.stderr_has("vault: restore test of shop: check query \"SELECT id FROM notes WHERE id > 999999\" in shop failed: returned no rows");
    assert!(out.stdout_str().contains("FAILED"), "{}", out.stdout_str());
    assert_eq!(databases(&pg), before, "the scratch database is dropped");
    assert_eq!(scratch_left(&scratch), Vec::<String>::new());
    let out = ops.ops(&["status"], &["--json"]);
    out.code(3);
    let status = out.json();
    let shop_status = app(&status, "shop");
    assert_eq!(shop_status["health"], "restore_test_failed", "{status:#}");
    assert_eq!(shop_status["last_restore_test"]["ok"], false);
    assert!(shop_status["last_restore_test"]["error"]
        .as_str()
        .unwrap()
        .contains("returned no rows"));
    assert_eq!(
        metrics(&ops.textfile())[&key("vault_last_restore_test_success")],
        0.0
    );
    let history = fs::read_to_string(ops.state.join("restore-tests/shop.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 2, "{history}");

    // Config check: a check of two kinds, and an unknown key, named with line and column.
    ops.write_config(&config("SELECT 1").replace("{ file =", "{ command = \"true\", file ="));
    let out = ops.ops(&["config", "check"], &[]);
    out.code(2).no_panic();
    out.stderr_has("exactly one of query");
    out.stderr_has(&format!("{}:", ops.config.display()));
    ops.write_config(&config("SELECT 1").replace("scratch_dir", "scratch_dri"));
    let out = ops.ops(&["config", "check"], &[]);
    out.code(2).no_panic();
    out.stderr_has("scratch_dri");
    out.stderr_has("applications.shop.restore_test");
}

/// `restore_test.schedule` becomes its own systemd timer (`vault restore-test APP`), and
/// `vault daemon` runs it on its schedule (every two seconds here), recording each result.
#[test]
fn scheduled_restore_tests_get_a_timer_and_run_under_the_daemon() {
    use std::io::Read as _;
    let ops = Ops::new();
    let site = ops.env.path("site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("index.html"), "<h1>hi</h1>").unwrap();
    ops.write_config(&format!(
        "[applications.site]\nrepository = \"main\"\npaths = [{site:?}]\n\n[applications.site.restore_test]\nschedule = \"*/2 * * * * *\"\nchecks = [{{ file = {:?} }}]\n\n[[applications.site.databases]]\nkind = \"command\"\nname = \"db\"\ndump_command = \"echo dump\"\nrestore_command = \"cat > /dev/null\"\n",
        site.join("index.html")
    ));
    ops.ops(&["run"], &[]).ok();
    let units = ops.env.path("units");
    let out = ops.ops(
        &["schedule", "install"],
        &["--unit-dir", units.to_str().unwrap(), "--json"],
    );
    out.ok();
    let report = out.json();
    assert_eq!(report["jobs"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(report["jobs"][0]["job"], "restore-test", "{report:#}");
    let service = fs::read_to_string(units.join("vault-site-restore-test.service")).unwrap();
    assert!(
        service.contains(" restore-test --config "),
        "the service runs vault restore-test: {service}"
    );
    assert!(units.join("vault-site-restore-test.timer").is_file());
    assert!(!units.join("vault-site.timer").exists(), "no run schedule");

    let mut cmd = ops.env.cmd(["daemon", "--config"]);
    cmd.arg(&ops.config).arg("--state-dir").arg(&ops.state);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut daemon = cmd.spawn().unwrap();
    let history = ops.state.join("restore-tests/site.jsonl");
    let waited = Instant::now();
    let tests = loop {
        let tests = fs::read_to_string(&history)
            .map(|h| h.lines().count())
            .unwrap_or(0);
        if tests >= 2 || waited.elapsed() > Duration::from_secs(90) {
            break tests;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // SAFETY: kill(2) on the pid of a child we spawned and have not waited for.
    assert_eq!(unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) }, 0);
    let mut stdout = String::new();
    daemon
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = daemon.wait().unwrap();
    assert!(tests >= 2, "only {tests} restore test(s) in 90 s\n{stdout}");
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("site (restore test) (next "), "{stdout}");
    assert!(
        stdout.contains(" site: restore test passed in "),
        "{stdout}"
    );
    let status = ops.ops(&["status"], &["site", "--json"]).json();
    assert_eq!(app(&status, "site")["last_restore_test"]["ok"], true);
}

/// A dump that cannot be read whole from the repository (a pack damaged in its middle): the
/// client is killed before its input ends, the command fails, and the new SQLite file is
/// removed.
#[test]
fn restore_app_removes_the_new_database_when_the_dump_is_damaged_mid_stream() {
    let ops = Ops::new();
    if sqlite3().is_none() {
        return;
    }
    // Megabytes of SQL comments that do not compress: many chunks, so a damaged pack hits a
    // chunk in the middle of the stream.
    ops.write_config(
        "[applications.big]\nrepository = \"main\"\n\n[[applications.big.databases]]\nkind = \"command\"\nname = \"big\"\ndump_command = \"echo 'CREATE TABLE t (a int);'; head -c 6000000 /dev/urandom | base64 -w 76 | sed 's/^/-- /'; echo 'INSERT INTO t VALUES (1);'\"\n",
    );
    ops.ops(&["run"], &[]).ok();
    let mut packs = pack_files(&ops.env.repo);
    packs.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    let pack = &packs[0];
    let mut bytes = fs::read(pack).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xff;
    }
    fs::write(pack, &bytes).unwrap();
    ops.write_config(
        "[applications.big]\nrepository = \"main\"\n\n[[applications.big.databases]]\nkind = \"sqlite\"\npath = \"/nonexistent/big.db\"\n",
    );
    let copy = ops.env.path("big-copy.db");
    let out = ops.ops(&["restore-app"], &["big", "--as", copy.to_str().unwrap()]);
    out.code(1).no_panic();
    out.stderr_has("loading databases/big.sql into the new sqlite database");
    out.stderr_has("from snapshot");
    assert!(!copy.exists(), "the half-loaded file is removed");
}
