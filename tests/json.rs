//! `--json` output: every command's document parses, carries `schema_version: 1`, and has
//! exactly the fields the README's "JSON output" section documents (each documented field is
//! present when its parent is, and no field is undocumented).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use serde_json::Value;

use crate::util::encrypted::Enc;
use crate::util::{is_full_id, Env};

/// The README's "JSON output" section: table heading -> (field path -> type text).
fn documented() -> BTreeMap<String, BTreeMap<String, String>> {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## JSON output\n")
        .expect("README has a section \"JSON output\"");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut tables = BTreeMap::new();
    for part in section.split("\n### ").skip(1) {
        let (heading, body) = part.split_once('\n').unwrap();
        let mut fields = BTreeMap::new();
        for line in body.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let path = cells[0].trim_start_matches("| ").trim_matches('`');
            fields.insert(path.to_string(), cells[1].to_string());
        }
        assert!(!fields.is_empty(), "README: no fields under {heading:?}");
        tables.insert(heading.to_string(), fields);
    }
    tables
}

/// The documented fields of `tables`, each under its prefix (`""`, `"report."`, ...).
fn fields(
    docs: &BTreeMap<String, BTreeMap<String, String>>,
    tables: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (table, prefix) in tables {
        let table = docs
            .get(*table)
            .unwrap_or_else(|| panic!("README documents no {table:?}"));
        for (path, kind) in table {
            if prefix.is_empty() || path != "schema_version" {
                out.insert(format!("{prefix}{path}"), kind.clone());
            }
        }
    }
    out
}

/// Every field path of `value`: `a.b` for fields, `a[]` for array elements, `*` for keys that
/// are snapshot ids. Below a documented path without documented children, nothing is listed.
fn actual(value: &Value, path: &str, doc: &BTreeMap<String, String>, out: &mut BTreeSet<String>) {
    let opens = |p: &str| {
        p.is_empty()
            || doc
                .keys()
                .any(|d| d.starts_with(&format!("{p}.")) || d.starts_with(&format!("{p}[]")))
    };
    if !opens(path) {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let key = if is_full_id(key) { "*" } else { key.as_str() };
                let child_path = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(child_path.clone());
                actual(child, &child_path, doc, out);
            }
        }
        Value::Array(items) => {
            let item_path = format!("{path}[]");
            for item in items {
                out.insert(item_path.clone());
                actual(item, &item_path, doc, out);
            }
        }
        _ => {}
    }
}

/// The path a field belongs to: `a` for `a.b` and `a[]`, `a[]` for `a[].b`, `""` at the top.
fn parent(path: &str) -> &str {
    match (path.rfind('.'), path.strip_suffix("[]")) {
        (_, Some(array)) => array,
        (Some(dot), None) => &path[..dot],
        (None, None) => "",
    }
}

/// Checks one document against the README tables it is made of.
#[track_caller]
fn check(what: &str, value: &Value, tables: &[(&str, &str)]) {
    assert_eq!(
        value["schema_version"], 1,
        "{what}: schema_version in {value:#}"
    );
    check_fields(what, value, tables);
}

/// Every field of `value` is documented, and every documented field is there when its parent
/// is (unless documented as sometimes absent).
#[track_caller]
fn check_fields(what: &str, value: &Value, tables: &[(&str, &str)]) {
    let mut doc = fields(&documented(), tables);
    doc.entry("schema_version".into())
        .or_insert_with(|| "number".into());
    let mut found = BTreeSet::new();
    actual(value, "", &doc, &mut found);
    let undocumented: Vec<_> = found
        .iter()
        .filter(|p| !p.ends_with("[]") && !p.ends_with('*') && !doc.contains_key(*p))
        .collect();
    assert!(
        undocumented.is_empty(),
        "{what}: fields not in the README: {undocumented:?}\n{value:#}"
    );
    let missing: Vec<_> = doc
        .iter()
        .filter(|(path, kind)| !kind.contains("absent") && !found.contains(*path))
        .map(|(path, _)| path)
        .filter(|path| path.as_str() != "schema_version")
        .filter(|path| parent(path).is_empty() || found.contains(parent(path)))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: documented fields missing: {missing:?}\n{value:#}"
    );
}

fn json(env: &Env, args: &[&str]) -> Value {
    let out = env.run(args);
    assert!(
        matches!(out.code, 0 | 3),
        "vault {args:?} failed: {}",
        out.stderr
    );
    out.json()
}

const SNAPSHOT: &[(&str, &str)] = &[("vault snapshot", ""), ("Snapshot object", "")];

#[test]
fn every_json_document_matches_the_readme() {
    let env = Env::new();
    check(
        "init",
        &json(&env, &["init", "--encryption", "none", "--json"]),
        &[("vault init", "")],
    );
    fs::create_dir_all(env.path("src/dir")).unwrap();
    fs::write(env.path("src/dir/a"), b"hello").unwrap();
    let src = env.path("src");
    let src = src.to_str().unwrap();
    let first = json(&env, &["snapshot", src, "--label", "app=web", "--json"]);
    check("snapshot", &first, SNAPSHOT);
    fs::write(env.path("src/b"), b"world").unwrap();
    let second = json(&env, &["snapshot", src, "--tag", "t", "--json"]);
    let (first, second) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );

    let src_path = format!("latest:{src}");
    check(
        "ls",
        &json(&env, &["ls", &src_path, "--recursive", "--json"]),
        &[("vault ls", ""), ("Entry object", "entries[].")],
    );
    let found = json(&env, &["find", "*", "--json"]);
    assert!(
        !found["matches"].as_array().unwrap().is_empty(),
        "{found:#}"
    );
    check(
        "find",
        &found,
        &[("vault find", ""), ("Entry object", "matches[].entry.")],
    );
    for extra in [None, Some("--stat")] {
        let mut args = vec!["diff", first, second, "--json"];
        args.extend(extra);
        let diff = json(&env, &args);
        assert!(!diff["changes"].as_array().unwrap().is_empty(), "{diff:#}");
        check("diff", &diff, &[("vault diff", "")]);
    }
    check(
        "stats",
        &json(&env, &["stats", "--json"]),
        &[("vault stats", "")],
    );

    let list = json(&env, &["list", "--json"]);
    check("list", &list, &[("vault list", "")]);
    for snapshot in list["snapshots"].as_array().unwrap() {
        check_fields("list: snapshot", snapshot, &[("Snapshot object", "")]);
    }

    let target = env.path("t1");
    check(
        "restore",
        &json(
            &env,
            &[
                "restore",
                first,
                "--target",
                target.to_str().unwrap(),
                "--json",
            ],
        ),
        &[("vault restore", ""), ("Restore report object", "report.")],
    );
    let target = env.path("t2/{id}");
    check(
        "restore, several",
        &json(
            &env,
            &[
                "restore",
                first,
                second,
                "--target",
                target.to_str().unwrap(),
                "--json",
            ],
        ),
        &[
            ("vault restore, several snapshots", ""),
            ("vault restore", "restores[]."),
            ("Restore report object", "restores[].report."),
        ],
    );

    check(
        "verify",
        &json(&env, &["verify", "--read-data", "--json"]),
        &[("vault verify", "")],
    );
    check(
        "index rebuild",
        &json(&env, &["index", "rebuild", "--json"]),
        &[("vault index rebuild", "")],
    );
    for (verb, field) in [("protect", "protected"), ("unprotect", "unprotected")] {
        let v = json(&env, &[verb, first, "--json"]);
        check(verb, &v, &[("vault protect, unprotect, undelete", "")]);
        assert_eq!(v[field][0], first, "{v:#}");
    }
    check(
        "unlock",
        &json(&env, &["unlock", "--json"]),
        &[("vault unlock", "")],
    );

    let dest = env.path("dest");
    env.run([
        "--repo",
        dest.to_str().unwrap(),
        "init",
        "--encryption",
        "none",
    ])
    .ok();
    let copy = json(&env, &["copy", "--to", dest.to_str().unwrap(), "--json"]);
    check("copy", &copy, &[("vault copy", "")]);
    assert_eq!(copy["copied"].as_array().unwrap().len(), 2, "{copy:#}");

    let forget = json(&env, &["forget", "--keep-last", "1", "--json"]);
    check("forget", &forget, &[("vault forget", "")]);
    assert_eq!(forget["forgotten"][0], first, "{forget:#}");
    let undelete = json(&env, &["undelete", first, "--json"]);
    check(
        "undelete",
        &undelete,
        &[("vault protect, unprotect, undelete", "")],
    );
    assert_eq!(undelete["undeleted"][0], first, "{undelete:#}");
    json(&env, &["forget", first, "--json"]);
    check(
        "prune",
        &json(&env, &["prune", "--json"]),
        &[("vault prune", "")],
    );

    for args in [
        &["label", "latest", "--add", "env=prod", "--json"][..],
        &["tag", "latest", "--add", "keep", "--json"],
        &["tag", "latest", "--add", "keep", "--json"],
    ] {
        let edit = json(&env, args);
        check("label/tag", &edit, &[("vault label, vault tag", "")]);
    }
    let forgotten = json(&env, &["list", "--forgotten", "--json"]);
    for snapshot in forgotten["snapshots"].as_array().unwrap() {
        check_fields("list: replaced", snapshot, &[("Snapshot object", "")]);
    }
    let copy = json(&env, &["copy", "--to", dest.to_str().unwrap(), "--json"]);
    check("copy, replacing", &copy, &[("vault copy", "")]);
    assert!(copy["copied"][0]["replaced"].is_string(), "{copy:#}");
}

#[test]
fn key_commands_match_the_readme() {
    let enc = Enc::init();
    let out = enc.run(["key", "list", "--json"]);
    out.ok();
    let keys = out.json();
    check("key list", &keys, &[("vault key list", "")]);
    assert_eq!(keys["keys"][0]["current"], true, "{keys:#}");
    let mut cmd = enc.cmd(["key", "add", "--json"]);
    cmd.env("VAULT_NEW_PASSWORD", "another password");
    let out = crate::util::run_cmd(cmd);
    out.ok();
    check(
        "key add",
        &out.json(),
        &[("vault key add, remove, passwd", "")],
    );
}

#[test]
fn verify_problems_match_the_readme() {
    let env = Env::init();
    fs::create_dir_all(env.path("src")).unwrap();
    fs::write(env.path("src/a"), vec![7u8; 100_000]).unwrap();
    let src = env.path("src");
    let snapshot = json(&env, &["snapshot", src.to_str().unwrap(), "--json"]);
    for pack in crate::util::pack_files(&env.repo) {
        fs::remove_file(pack).unwrap();
    }
    let out = env.run(["verify", "--json"]);
    out.code(3);
    let v = out.json();
    check("verify, damaged", &v, &[("vault verify", "")]);
    assert_eq!(v["clean"], false);
    assert_eq!(v["damaged_snapshots"][0], snapshot["id"], "{v:#}");
    let problem = &v["report"]["problems"][0];
    assert!(problem["kind"].is_string(), "{v:#}");
    assert!(problem["affected"][snapshot["id"].as_str().unwrap()]["paths"].is_array());
}

#[test]
fn mount_report_matches_the_readme() {
    let Some(()) = crate::util::mount::fuse_available() else {
        return;
    };
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.snapshot([src.to_str().unwrap()]);
    let mount = crate::util::mount::Mount::start(&env, "mnt", &[]);
    check("vault mount", &mount.report, &[("vault mount", "")]);
    assert_eq!(mount.report["snapshots"], 1);
    assert_eq!(
        mount.report["mountpoint"].as_str().unwrap(),
        mount.mountpoint.canonicalize().unwrap().to_str().unwrap()
    );
}

#[test]
fn ops_commands_match_the_readme() {
    let env = Env::init();
    let offsite = env.path("offsite");
    env.run([
        "init",
        "--encryption",
        "none",
        "--repo",
        offsite.to_str().unwrap(),
    ])
    .ok();
    fs::create_dir_all(env.path("site")).unwrap();
    fs::write(env.path("site/index.html"), "<h1>hello</h1>").unwrap();
    let config = env.path("vault.toml");
    let state = env.path("state");
    let text = format!(
        r#"[repositories.main]
location = {:?}
encryption = "none"

[repositories.offsite]
location = {offsite:?}
encryption = "none"

[applications.site]
repository = "main"
paths = [{:?}]
schedule = "0 3 * * *"
retention = {{ keep_last = 1 }}
prune = {{ every = "1d" }}
verify = {{ read_data_subset = "1/2" }}
copy_to = [{{ repository = "offsite" }}]

[[applications.site.databases]]
kind = "command"
name = "db"
dump_command = "echo 'CREATE TABLE t (a int);'"
restore_command = "cat > '{}'.$VAULT_RESTORE_AS"

[applications.site.restore_test]
checks = [{{ file = "{}/index.html" }}, {{ command = "test -n \"$VAULT_RESTORE_DB_DB\"" }}]
"#,
        env.repo,
        env.path("site"),
        env.path("loaded").display(),
        env.path("site").display(),
    );
    fs::write(&config, &text).unwrap();
    let ops = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .arg("--json");
        crate::util::run_cmd(cmd)
    };
    let out = ops(&["config", "check"]);
    out.ok();
    check("config check", &out.json(), &[("vault config check", "")]);
    let out = ops(&["run"]);
    out.ok();
    let run = out.json();
    check(
        "run",
        &run,
        &[("vault run", ""), ("Run step object", "apps[].steps[].")],
    );
    assert_eq!(
        run["apps"][0]["steps"][0]["snapshot"]["files"], 2,
        "{run:#}"
    );
    let out = ops(&["restore-test"]);
    out.ok();
    let tested = out.json();
    check("restore-test", &tested, &[("vault restore-test", "")]);
    assert_eq!(tested["apps"][0]["checks"][1]["ok"], true, "{tested:#}");
    let out = ops(&["status"]);
    out.ok();
    let status = out.json();
    check("status", &status, &[("vault status", "")]);
    assert_eq!(status["apps"][0]["verify"]["slices_done"], 1, "{status:#}");
    let target = env.path("copy");
    let out = ops(&[
        "restore-app",
        "site",
        "--as",
        "copy",
        "--target",
        target.to_str().unwrap(),
    ]);
    out.ok();
    let restored = out.json();
    check(
        "restore-app",
        &restored,
        &[
            ("vault restore-app", ""),
            ("Restore report object", "files."),
        ],
    );
    assert_eq!(
        fs::read_to_string(env.path("loaded.copy")).unwrap(),
        "CREATE TABLE t (a int);\n"
    );
    fs::write(&config, text.replace("keep_last = 1", "keep_lats = 1")).unwrap();
    let out = ops(&["config", "check"]);
    out.code(2);
    let invalid = out.json();
    check(
        "config check, invalid",
        &invalid,
        &[("vault config check", "")],
    );
    assert_eq!(invalid["error"]["line"], 13, "{invalid:#}");
}
