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
    let Some(sqlite3) = required(
        "sqlite3",
        find_in_path("sqlite3").ok_or_else(|| "sqlite3 is not on PATH".to_string()),
    ) else {
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
