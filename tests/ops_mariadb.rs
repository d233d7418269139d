//! `kind = "mariadb"` databases against a real MariaDB server (a submodule of `ops`): `vault
//! run` dumps one with `mariadb-dump`, `vault restore-app --as NAME` loads it into a new
//! database on the same server (compared with the original by `mariadb-dump`, the original
//! untouched), an existing database is refused, a dump that fails half-way leaves no new
//! database, and `vault restore-test` queries a scratch copy and drops it.
//!
//! The server comes from Debian's `mariadb-server` and `mariadb-client` ([`MariaDbServer`]),
//! which `.ci/run` installs; under CI a missing one fails the test, elsewhere it is skipped.

use super::*;
use crate::util::servers::MariaDbServer;

/// A shop: a utf8mb4 database (the server's default is latin1, so a restore that lost the
/// database's character set shows), a table of 3000 rows with quotes, backslashes, non-ASCII
/// text, NULLs and binary blobs, a second table with a foreign key, a view, a trigger and a
/// procedure.
const SHOP: &str = r#"
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE shop;
SET SESSION max_recursive_iterations = 100000;
CREATE TABLE items (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(200) NOT NULL,
  note TEXT NULL,
  data BLOB NULL,
  price DECIMAL(10,2) NOT NULL DEFAULT 0
) ENGINE=InnoDB;
INSERT INTO items (name, note, data, price)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 3000)
SELECT CONCAT('it''s "item" ', n, ' \\ back;slash'),
       IF(n % 7 = 0, NULL, CONCAT(REPEAT('grüße ', n % 20), '\n-- not a comment\nUSE `x`;')),
       IF(n % 5 = 0, NULL, UNHEX(CONCAT(SHA2(n, 256), '000A0D275C'))),
       n / 100
FROM seq;
CREATE TABLE orders (
  id INT PRIMARY KEY AUTO_INCREMENT,
  item INT NOT NULL,
  qty INT NOT NULL,
  FOREIGN KEY (item) REFERENCES items (id)
) ENGINE=InnoDB;
INSERT INTO orders (item, qty) SELECT id, id % 9 FROM items WHERE id % 3 = 0;
CREATE VIEW big_orders AS SELECT item, qty FROM orders WHERE qty > 5;
CREATE TRIGGER items_name BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name);
CREATE PROCEDURE item_count() SELECT COUNT(*) FROM items;
"#;

fn mariadb_database(server: &MariaDbServer, app: &str, bin_dir: &Path) -> String {
    format!(
        "[[applications.{app}.databases]]\nkind = \"mariadb\"\nname = \"shop\"\noptions_file = {:?}\nbin_dir = {bin_dir:?}\n",
        server.options_file
    )
}

/// A dump of `restored` as if it were named `original` (the name appears in its comments,
/// `CREATE DATABASE` and `USE` lines).
fn renamed(dump: &[u8], restored: &str, original: &str) -> Vec<u8> {
    String::from_utf8_lossy(dump)
        .replace(&format!("`{restored}`"), &format!("`{original}`"))
        .replace(
            &format!("Database: {restored}\n"),
            &format!("Database: {original}\n"),
        )
        .replace(
            &format!("database '{restored}'"),
            &format!("database '{original}'"),
        )
        .into_bytes()
}

fn counts(server: &MariaDbServer, database: &str) -> String {
    server.sql(
        Some(database),
        "SELECT (SELECT COUNT(*) FROM items), (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM items WHERE note IS NULL), (SELECT COUNT(*) FROM items WHERE data IS NULL);",
    )
}

#[test]
fn mariadb_dumps_restore_into_new_databases_on_a_real_server() {
    let ops = Ops::new();
    let Some(server) = MariaDbServer::start(&ops.env) else {
        return;
    };
    server.sql(None, SHOP);
    let original = server.dump("shop");
    assert_eq!(counts(&server, "shop").trim(), "3000\t1000\t428\t600");
    let scratch = ops.env.path("scratch");
    ops.write_config(&format!(
        "[applications.shop]\nrepository = \"main\"\n\n[applications.shop.restore_test]\nscratch_dir = {scratch:?}\nchecks = [{{ query = \"SELECT id FROM items WHERE name LIKE 'it''s %' AND data IS NULL LIMIT 3\", database = \"shop\" }}]\n\n{}",
        mariadb_database(&server, "shop", &server.client_bin)
    ));
    ops.ops(&["config", "check"], &[]).ok();
    let run = ops.ops(&["run"], &["--json"]);
    run.ok();

    // Into a new database, while the original keeps existing.
    let out = ops.ops(&["restore-app"], &["shop", "--as", "shop_copy", "--json"]);
    out.ok();
    let report = out.json();
    let database = &report["databases"][0];
    assert_eq!(database["status"], "loaded", "{report:#}");
    assert_eq!(database["kind"], "mysql", "{report:#}");
    assert_eq!(database["restored_as"], "shop_copy", "{report:#}");
    assert!(database["bytes"].as_u64().unwrap() > 300_000, "{report:#}");
    assert_same_text(
        "shop restored as shop_copy (mariadb-dump, the name normalised)",
        &original,
        &renamed(&server.dump("shop_copy"), "shop_copy", "shop"),
    );
    assert_eq!(counts(&server, "shop_copy"), counts(&server, "shop"));
    assert_same_text("shop after the restore", &original, &server.dump("shop"));

    // An existing database is refused, named with the fix, and left as it was.
    server.sql(
        Some("shop_copy"),
        "INSERT INTO items (name) VALUES ('mine');",
    );
    let before = server.dump("shop_copy");
    let out = ops.ops(&["restore-app"], &["shop", "--as", "shop_copy"]);
    out.code(1).no_panic();
    out.stderr_has("\"shop_copy\" exists already");
    out.stderr_has("DROP DATABASE shop_copy");
    assert_same_text(
        "shop_copy after the refusal",
        &before,
        &server.dump("shop_copy"),
    );

    // A restore test: a query in a scratch copy, which is dropped afterwards.
    let databases = server.databases();
    let out = ops.ops(&["restore-test"], &["shop", "--json"]);
    out.ok();
    let report = out.json();
    assert_eq!(report["apps"][0]["ok"], true, "{report:#}");
    assert_eq!(
        report["apps"][0]["checks"][0]["message"], "3 row(s)",
        "{report:#}"
    );
    assert_eq!(
        server.databases(),
        databases,
        "the scratch database is dropped"
    );
}

/// A dump that is valid SQL up to half-way (a `mariadb-dump` that appends a line that is not
/// SQL, then more rows): the client stops at the error, the new database is dropped, and the
/// original is untouched although the dump names it.
#[test]
fn a_mariadb_dump_failing_half_way_leaves_no_new_database() {
    let ops = Ops::new();
    let Some(server) = MariaDbServer::start(&ops.env) else {
        return;
    };
    server.sql(None, SHOP);
    let original = server.dump("shop");
    let bin = ops.env.path("half-bin");
    fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("mariadb-dump");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{} \"$@\" || exit 1\necho 'THIS IS NOT SQL;'\necho \"INSERT INTO items (name) VALUES ('after');\"\n",
            server.client_bin.join("mariadb-dump").display()
        ),
    )
    .unwrap();
    chmod(&wrapper, 0o755);
    std::os::unix::fs::symlink(server.client_bin.join("mariadb"), bin.join("mariadb")).unwrap();
    ops.write_config(&format!(
        "[applications.half]\nrepository = \"main\"\n\n{}",
        mariadb_database(&server, "half", &bin)
    ));
    ops.ops(&["run"], &[]).ok();
    let databases = server.databases();

    let out = ops.ops(&["restore-app"], &["half", "--as", "half_copy"]);
    out.code(1).no_panic();
    // The server's error, not the client's echo of the statement.
    out.stderr_has("ERROR 1064");
    out.stderr_has("THIS IS NOT SQL");
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(server.databases(), databases, "no half_copy is left");
    assert_same_text(
        "shop after the failed restore",
        &original,
        &server.dump("shop"),
    );
}
