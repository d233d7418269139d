//! `vault ls`, `find`, `diff` and `stats`, checked against the real files they describe: the
//! source tree walked with `std::fs`, the trees mutated between two snapshots, the pack files
//! in the repository and what `vault forget` + `vault prune` actually free.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

/// The mtime of `meta` as vault prints it (RFC 3339, UTC, nanoseconds).
fn mtime_text(meta: &fs::Metadata) -> String {
    jiff::Timestamp::new(meta.mtime(), meta.mtime_nsec() as i32)
        .unwrap()
        .to_string()
}

/// What `std::fs` says of every entry below `root` (not `root` itself), by absolute path:
/// type, mode, size (files), mtime, symlink target.
fn walk(root: &Path) -> BTreeMap<String, (String, u64, u64, String, Option<String>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let t = meta.file_type();
            let kind = if t.is_dir() {
                stack.push(path.clone());
                "dir"
            } else if t.is_symlink() {
                "symlink"
            } else if t.is_file() {
                "file"
            } else {
                "fifo"
            };
            let target = t
                .is_symlink()
                .then(|| fs::read_link(&path).unwrap().to_string_lossy().into_owned());
            let size = if t.is_file() { meta.len() } else { 0 };
            out.insert(
                path.to_string_lossy().into_owned(),
                (
                    kind.to_string(),
                    (meta.mode() & 0o7777) as u64,
                    size,
                    mtime_text(&meta),
                    target,
                ),
            );
        }
    }
    out
}

/// The same description taken from `vault ls --json` entries.
fn listed(entries: &Value) -> BTreeMap<String, (String, u64, u64, String, Option<String>)> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                (
                    e["type"].as_str().unwrap().to_string(),
                    e["mode"].as_u64().unwrap(),
                    e["size"].as_u64().unwrap(),
                    e["mtime"].as_str().unwrap().to_string(),
                    e["target"].as_str().map(String::from),
                ),
            )
        })
        .collect()
}

fn json_ok(env: &Env, args: &[&str]) -> Value {
    let out = env.run(args);
    out.ok().no_panic();
    out.json()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A source tree with nested directories, files of several sizes and modes, a symlink, a FIFO,
/// an empty file and an odd mtime.
fn make_source(src: &Path) {
    fs::create_dir_all(src.join("static/css/themes")).unwrap();
    fs::create_dir_all(src.join("data")).unwrap();
    fs::write(src.join("data/report.sql"), random_bytes(1, 70_000)).unwrap();
    fs::write(src.join("static/css/site.css"), b"body { margin: 0 }\n").unwrap();
    fs::write(
        src.join("static/css/themes/dark.css"),
        random_bytes(2, 3000),
    )
    .unwrap();
    fs::write(src.join("static/logo.png"), random_bytes(3, 250_000)).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("run.sh"), b"#!/bin/sh\n").unwrap();
    chmod(&src.join("run.sh"), 0o4755);
    chmod(&src.join("static/css/themes"), 0o1750);
    symlink("static/logo.png", src.join("logo")).unwrap();
    mkfifo(&src.join("pipe"), 0o640);
    set_mtime(&src.join("empty"), 1_234_567_890, 123_456_789);
}

#[test]
fn ls_lists_the_source_tree_as_std_fs_sees_it() {
    let env = Env::init();
    let src = env.path("src");
    make_source(&src);
    let snap = env.snapshot([s(&src)]);
    let id = snap["id"].as_str().unwrap();

    let all = json_ok(&env, &["ls", &format!("{id}:{}", s(&src)), "-R", "--json"]);
    assert_eq!(all["snapshot"], id);
    assert_eq!(listed(&all["entries"]), walk(&src), "{all:#}");
    let dirs = walk(&src).values().filter(|v| v.0 == "dir").count() as u64;
    assert_eq!(all["trees_read"], dirs + 1, "one tree per directory listed");

    // Without --recursive: the direct entries only, in name order.
    let top = json_ok(&env, &["ls", &format!("latest:{}/", s(&src)), "--json"]);
    let names: Vec<&str> = top["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(names, expected);

    // A file: that entry alone; `--long` shows it like ls -l.
    let file = src.join("run.sh");
    let one = json_ok(&env, &["ls", &format!("latest:{}", s(&file)), "--json"]);
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    assert_eq!(one["entries"][0]["mode"], 0o4755);
    let out = env.run(["ls", "-l", &format!("latest:{}", s(&src))]);
    out.ok();
    let text = out.stdout_str();
    let line = text.lines().find(|l| l.ends_with("/run.sh")).unwrap();
    assert!(line.starts_with("-rwsr-xr-x "), "{text}");
    assert!(line.contains(" 10  "), "size column: {text}");
    let line = text.lines().find(|l| l.contains("/logo ->")).unwrap();
    assert!(
        line.starts_with('l') && line.ends_with("-> static/logo.png"),
        "{text}"
    );
    assert!(text
        .lines()
        .any(|l| l.starts_with("drwx") && l.ends_with("/static")));
    assert!(text.lines().any(|l| l.starts_with("prw-r-----")));
    let line = text.lines().find(|l| l.ends_with("/empty")).unwrap();
    assert!(line.contains("2009-02-13 23:31:30"), "{text}");
}

#[test]
fn find_reports_each_version_and_reads_unchanged_trees_once() {
    let env = Env::init();
    let src = env.path("src");
    make_source(&src);
    let sql = src.join("data/report.sql");
    let mut ids = Vec::new();
    let mut versions = Vec::new();
    for day in 0..3u64 {
        if day > 0 {
            // Rewritten in place: the directory `data` keeps its mtime, `static` is untouched.
            fs::write(&sql, random_bytes(10 + day, 70_000 + day as usize * 1000)).unwrap();
        }
        let meta = fs::metadata(&sql).unwrap();
        versions.push((meta.len(), mtime_text(&meta)));
        ids.push(env.snapshot([s(&src)])["id"].as_str().unwrap().to_string());
    }
    let found = json_ok(&env, &["find", "*.sql", "--json"]);
    let matches = found["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 3, "{found:#}");
    for (i, m) in matches.iter().enumerate() {
        assert_eq!(m["snapshot"], ids[i].as_str());
        assert_eq!(m["entry"]["path"], s(&sql));
        assert_eq!(m["entry"]["size"], versions[i].0);
        assert_eq!(m["entry"]["mtime"], versions[i].1.as_str());
    }
    let contents: Vec<&str> = matches
        .iter()
        .map(|m| m["entry"]["content"].as_str().unwrap())
        .collect();
    assert!(contents[0] != contents[1] && contents[1] != contents[2]);

    // Snapshot 1 reads every tree; 2 and 3 only the chain from the root to `data` (the
    // components of its path plus the root), and reuse what was found below `static`.
    let comps = sql.parent().unwrap().components().count() as u64 - 1;
    let dirs_in_src = walk(&src).values().filter(|v| v.0 == "dir").count() as u64;
    let src_chain = src.components().count() as u64; // root + components up to src
    let first = src_chain + dirs_in_src;
    assert_eq!(found["snapshots_searched"], 3);
    assert_eq!(found["trees_read"], first + 2 * (comps + 1), "{found:#}");
    assert_eq!(found["trees_reused"], 2, "{found:#}");

    // The same file unchanged in all three: one content id.
    let css = json_ok(&env, &["find", "site.css", "--json"]);
    let contents: Vec<&Value> = css["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["entry"]["content"])
        .collect();
    assert_eq!(contents.len(), 3);
    assert!(contents.iter().all(|c| *c == contents[0]));

    // Filters: size, path glob, one snapshot, mtime.
    let big = json_ok(
        &env,
        &[
            "find",
            "*",
            "--snapshot",
            &ids[0],
            "--size",
            "+100KiB",
            "--json",
        ],
    );
    let paths: Vec<&str> = big["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["entry"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, [s(&src.join("static/logo.png"))]);
    let css = json_ok(
        &env,
        &[
            "find",
            "*.css",
            "--path",
            &format!("{}/static/css/themes/*", s(&src)),
            "--all",
            "--json",
        ],
    );
    assert_eq!(css["matches"].as_array().unwrap().len(), 3);
    assert!(css["matches"][0]["entry"]["path"]
        .as_str()
        .unwrap()
        .ends_with("/themes/dark.css"));
    let old = json_ok(&env, &["find", "*", "--older", "2010-01-01", "--json"]);
    let old_paths: Vec<&str> = old["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["entry"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(old_paths, vec![s(&src.join("empty")); 3]);

    let out = env.run(["find", "report.sql"]);
    out.ok();
    let text = out.stdout_str();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  ")).count(),
        3,
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .contains(&format!("{} trees read, 2 reused", first + 2 * (comps + 1))),
        "{text}"
    );
}

/// Puts the mtime of each directory back to what it was, so that only the changes a test
/// makes on purpose show up.
fn keep_dir_mtimes(dirs: &[(PathBuf, fs::Metadata)]) {
    for (dir, meta) in dirs {
        set_mtime(dir, meta.mtime(), meta.mtime_nsec());
    }
}

#[test]
fn diff_reports_exactly_what_changed() {
    let env = Env::init();
    let src = env.path("src");
    make_source(&src);
    fs::write(src.join("gone.txt"), random_bytes(4, 5000)).unwrap();
    fs::write(src.join("grows.txt"), random_bytes(5, 4000)).unwrap();
    fs::write(src.join("chmod.txt"), b"mode").unwrap();
    fs::write(src.join("touch.txt"), b"time").unwrap();
    fs::write(src.join("becomes-dir"), b"file").unwrap();
    fs::write(src.join("becomes-link"), b"file").unwrap();
    fs::write(src.join("keep.txt"), b"kept").unwrap();
    symlink("a", src.join("retarget")).unwrap();
    let a = env.snapshot([s(&src)])["id"].as_str().unwrap().to_string();

    let dirs: Vec<(PathBuf, fs::Metadata)> = [src.clone(), src.join("static")]
        .into_iter()
        .map(|d| {
            let m = fs::metadata(&d).unwrap();
            (d, m)
        })
        .collect();
    fs::remove_file(src.join("gone.txt")).unwrap();
    let mut grown = fs::read(src.join("grows.txt")).unwrap();
    grown.extend(random_bytes(6, 1000));
    fs::write(src.join("grows.txt"), &grown).unwrap();
    chmod(&src.join("chmod.txt"), 0o600);
    set_mtime(&src.join("touch.txt"), 1_500_000_000, 0);
    fs::remove_file(src.join("becomes-dir")).unwrap();
    fs::create_dir(src.join("becomes-dir")).unwrap();
    fs::write(src.join("becomes-dir/inner"), random_bytes(7, 700)).unwrap();
    fs::remove_file(src.join("becomes-link")).unwrap();
    symlink("keep.txt", src.join("becomes-link")).unwrap();
    fs::hard_link(src.join("keep.txt"), src.join("hardlink")).unwrap();
    fs::remove_file(src.join("retarget")).unwrap();
    symlink("b", src.join("retarget")).unwrap();
    fs::create_dir(src.join("new")).unwrap();
    fs::write(src.join("new/one"), random_bytes(8, 1234)).unwrap();
    chmod(&src.join("static"), 0o700);
    keep_dir_mtimes(&dirs);
    let b = env.snapshot([s(&src)])["id"].as_str().unwrap().to_string();

    let d = json_ok(&env, &["diff", &a, &b, s(&src), "--json"]);
    let got: BTreeMap<String, (String, u64)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"]
                    .as_str()
                    .unwrap()
                    .strip_prefix(s(&src))
                    .unwrap()
                    .to_string(),
                (
                    c["change"].as_str().unwrap().to_string(),
                    c["bytes"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, u64)> = [
        ("/gone.txt", "removed", 5000),
        ("/grows.txt", "modified", 5000),
        ("/chmod.txt", "metadata", 0),
        ("/touch.txt", "metadata", 0),
        ("/becomes-dir", "type_changed", 4),
        ("/becomes-dir/inner", "added", 700),
        ("/becomes-link", "type_changed", 4),
        ("/hardlink", "added", 4),
        ("/retarget", "modified", 0),
        ("/new", "added", 0),
        ("/new/one", "added", 1234),
        ("/static", "metadata", 0),
    ]
    .into_iter()
    .map(|(p, c, n)| (p.to_string(), (c.to_string(), n)))
    .collect();
    assert_eq!(got, expected, "{d:#}");
    let sum = &d["summary"];
    assert_eq!(
        (
            sum["added"].as_u64(),
            sum["removed"].as_u64(),
            sum["modified"].as_u64()
        ),
        (Some(4), Some(1), Some(2))
    );
    assert_eq!(
        (sum["metadata"].as_u64(), sum["type_changed"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(sum["bytes_added"], 700 + 4 + 1234, "{d:#}");
    assert_eq!(sum["bytes_removed"], 5000 + 4 + 4, "{d:#}");
    assert_eq!(sum["bytes_modified"], 5000);
    // `static` changed its mode only: its tree is the same object, never read.
    let type_change = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"].as_str().unwrap().ends_with("/becomes-link"))
        .unwrap();
    assert_eq!(
        (&type_change["type_before"], &type_change["type_after"]),
        (&Value::from("file"), &Value::from("symlink"))
    );

    // --stat: per directory, adding up to the summary.
    let st = json_ok(&env, &["diff", &a, &b, s(&src), "--stat", "--json"]);
    let dirs = st["directories"].as_array().unwrap();
    let total: u64 = dirs.iter().map(|x| x["changes"].as_u64().unwrap()).sum();
    assert_eq!(total as usize, got.len());
    let top = dirs.iter().find(|x| x["path"] == s(&src)).unwrap();
    assert_eq!(top["changes"], 10, "{st:#}");
    let out = env.run(["diff", &a, &b, s(&src)]);
    out.ok();
    let text = out.stdout_str();
    assert!(
        text.contains(&format!("-    {}/gone.txt", s(&src))),
        "{text}"
    );
    assert!(
        text.contains(&format!("T    {}/becomes-dir  (file -> dir)", s(&src))),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("4 added, 1 removed, 2 modified, 3 metadata only, 2 type changed;"),
        "{text}"
    );

    // A snapshot against itself: nothing, and not one tree read.
    let same = json_ok(&env, &["diff", &a, &a, "--json"]);
    assert_eq!(same["changes"].as_array().unwrap().len(), 0);
    assert_eq!(same["trees_read"], 0);
}

#[test]
fn stats_match_the_pack_files_and_what_prune_frees() {
    let env = Env::init();
    let src = env.path("src");
    make_source(&src);
    let first = env.snapshot([s(&src)]);
    fs::create_dir(src.join("uploads")).unwrap();
    fs::write(src.join("uploads/video.bin"), random_bytes(9, 3 << 20)).unwrap();
    let second = env.snapshot([s(&src)]);
    let ids = [
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    ];

    let st = json_ok(&env, &["stats", "--json"]);
    let repo = &st["repository"];
    let pack_bytes: u64 = pack_files(&env.repo)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(repo["bytes_stored"], pack_bytes, "{st:#}");
    assert_eq!(repo["packs"], pack_files(&env.repo).len());
    assert_eq!(repo["snapshots"], 2);
    let files: u64 = walk(&src)
        .values()
        .filter(|v| v.0 == "file")
        .map(|v| v.2)
        .sum();
    // Every file's content is distinct: the distinct chunk bytes are the tree's file bytes.
    assert_eq!(repo["bytes_unique"], files, "{st:#}");
    let logical = first["summary"]["bytes_total"].as_u64().unwrap()
        + second["summary"]["bytes_total"].as_u64().unwrap();
    assert_eq!(repo["bytes_logical"], logical);
    let ratio = repo["dedup_ratio"].as_f64().unwrap();
    assert!(
        (ratio - logical as f64 / files as f64).abs() < 1e-9,
        "{st:#}"
    );
    let added: u64 = [&first, &second]
        .iter()
        .map(|s| s["summary"]["bytes_added"].as_u64().unwrap())
        .sum();
    let today = repo["growth"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["snapshots"], 2, "{st:#}");
    assert_eq!(today["bytes_added"], added);
    assert_eq!(repo["growth"].as_array().unwrap().len(), 30);

    let per: Vec<&Value> = st["snapshots"].as_array().unwrap().iter().collect();
    assert_eq!(per.len(), 2);
    for (p, snap) in per.iter().zip([&first, &second]) {
        assert_eq!(p["id"], snap["id"]);
        assert_eq!(p["files"], snap["summary"]["files"]);
        assert_eq!(p["bytes_total"], snap["summary"]["bytes_total"]);
        assert_eq!(p["bytes_added"], snap["summary"]["bytes_added"]);
    }
    // The second snapshot wrote its own packs, and nothing in them is reached by the first.
    assert_eq!(per[1]["bytes_exclusive"], per[1]["bytes_added"], "{st:#}");
    assert!(per[1]["bytes_exclusive"].as_u64().unwrap() > 3 << 20);
    // One snapshot asked for by prefix.
    let one = json_ok(&env, &["stats", &ids[1][..8], "--json"]);
    assert_eq!(one["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(
        one["snapshots"][0]["bytes_exclusive"],
        per[1]["bytes_exclusive"]
    );

    // What forgetting it frees, by prune's own account.
    env.run(["forget", ids[1]]).ok();
    let prune = json_ok(&env, &["prune", "--max-unused", "0", "--json"]);
    assert_eq!(prune["bytes_freed"], per[1]["bytes_exclusive"], "{prune:#}");
    let after: u64 = pack_files(&env.repo)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(
        pack_bytes - after,
        per[1]["bytes_exclusive"].as_u64().unwrap()
    );

    let out = env.run(["stats"]);
    out.ok();
    let text = out.stdout_str();
    assert!(
        text.contains(&first["short_id"].as_str().unwrap().to_string()),
        "{text}"
    );
    assert!(text.contains("repository: 1 snapshots"), "{text}");
}

#[test]
fn bad_input_is_one_line_and_a_usage_error() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    let id = env.snapshot([s(&src)])["id"].as_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["ls".into(), "feedbeef".into()], "feedbeef"),
        (
            vec!["ls".into(), "latest:/no/such/path".into()],
            "/no/such/path",
        ),
        (
            vec!["diff".into(), id.clone(), "cafe0000".into()],
            "cafe0000",
        ),
        (
            vec!["diff".into(), id.clone(), id.clone(), "/not/here".into()],
            "/not/here",
        ),
        (vec!["find".into(), "[abc".into()], "pattern \"[abc\""),
        (
            vec!["find".into(), "*".into(), "--path".into(), "{a".into()],
            "--path",
        ),
        (
            vec![
                "find".into(),
                "*".into(),
                "--snapshot".into(),
                "deadbeef".into(),
            ],
            "deadbeef",
        ),
        (
            vec!["find".into(), "*".into(), "--size".into(), "+lots".into()],
            "--size",
        ),
        (
            vec![
                "find".into(),
                "*".into(),
                "--newer".into(),
                "yesterday".into(),
            ],
            "--newer",
        ),
        (vec!["stats".into(), "abcd1234".into()], "abcd1234"),
    ];
    for (args, needle) in cases {
        let out = env.run(&args);
        out.code(2).no_panic().stderr_has(needle);
        if !matches!(args[..], [_, _, ref flag, _] if flag.starts_with("--size") || flag.starts_with("--newer"))
        {
            assert_eq!(
                out.stderr.trim_end().lines().count(),
                1,
                "{args:?}: {}",
                out.stderr
            );
        }
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
