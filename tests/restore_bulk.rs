//! `vault restore` of several snapshots at once (issue #10): `--latest-per GROUP`, several
//! SNAPSHOT arguments, target templates (`{id}`, `{host}`, `{label:KEY}`), and `--dry-run`
//! with and without `--verify`. Every restored target is compared entry by entry with the
//! source tree of its snapshot.
//!
//! ```text
//! cargo test --release -p vault-cli --test integration restore_bulk::
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;
use serde_json::Value;
use vault_engine::format::pack::{self, BlobEntry, BlobKind};

const MIB: u64 = 1 << 20;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// `report.<key>` as u64.
#[track_caller]
fn r(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("report.{key} missing or not a number in {report:#}"))
}

/// Total size of the regular files of a tree.
fn file_bytes(root: &Path) -> u64 {
    scan(root)
        .values()
        .filter(|n| n.kind == Kind::File)
        .map(|n| n.size)
        .sum()
}

/// `vault restore ARGS --json`, asserting the exit code.
#[track_caller]
fn restore_json(env: &Env, args: &[&str], code: i32) -> Value {
    let mut all = vec!["restore", "--json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    out.code(code).no_panic();
    out.json()
}

/// The `restores` of a bulk report: target -> (snapshot, report).
#[track_caller]
fn restores(v: &Value) -> BTreeMap<String, (String, Value)> {
    let list = v["restores"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"restores\" array in {v:#}"));
    let mut out = BTreeMap::new();
    for item in list {
        let target = item["target"].as_str().expect("target").to_string();
        let snapshot = item["snapshot"].as_str().expect("snapshot").to_string();
        assert!(is_full_id(&snapshot), "{snapshot:?} in {v:#}");
        assert!(item["report"].is_object(), "no report in {item:#}");
        let dup = out.insert(target.clone(), (snapshot, item["report"].clone()));
        assert!(dup.is_none(), "target {target} twice in {v:#}");
    }
    assert_eq!(out.len(), list.len());
    out
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Stderr's non-empty lines.
fn lines(out: &Out) -> Vec<String> {
    out.stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

// ------------------------------------------------------------------------------------------------
// 7. --latest-per
// ------------------------------------------------------------------------------------------------

/// A tree sharing `shared` 1 MiB files with its siblings, plus one unique 1 MiB file and a small
/// config of its own.
fn app_tree(root: &Path, app: &str, seed: u64, shared: u64) {
    for i in 0..shared {
        write_generated(
            &root.join(format!("lib/shared-{i}.bin")),
            10 + i,
            MIB,
            random_bytes,
        );
    }
    write_generated(&root.join("own.bin"), seed, MIB, random_bytes);
    write(
        &root.join("etc/config"),
        format!("app = {app}\nseed = {seed}\n").as_bytes(),
    );
    std::os::unix::fs::symlink("../own.bin", root.join("etc/own-link")).unwrap();
    let mut n = seed as i64 * 100;
    set_all_mtimes(root, &mut n);
}

#[test]
fn latest_per_label_restores_the_newest_of_each_group_into_its_template_target() {
    let env = Env::init();
    let mut sources = BTreeMap::new();
    let mut ids = BTreeMap::new();
    // An older snapshot for app=a with other content: it must not be the one restored.
    let old_a = env.path("apps/a-old");
    app_tree(&old_a, "a-old", 77, 0);
    write_generated(&old_a.join("old-only.bin"), 78, 2 * MIB, random_bytes);
    let old_id = id_of(&env.snapshot([
        old_a.as_os_str(),
        "--label".as_ref(),
        "app=a".as_ref(),
        "--tag".as_ref(),
        "web".as_ref(),
        "--time".as_ref(),
        "2026-01-01T00:00:00Z".as_ref(),
    ]));
    for (k, (app, tag)) in [("a", "web"), ("b", "web"), ("c", "db")].iter().enumerate() {
        let src = env.path(format!("apps/{app}"));
        app_tree(&src, app, 1 + k as u64, 9);
        let id = id_of(&env.snapshot([
            src.as_os_str(),
            "--label".as_ref(),
            format!("app={app}").as_ref(),
            "--tag".as_ref(),
            tag.as_ref(),
            "--time".as_ref(),
            format!("2026-02-0{}T00:00:00Z", k + 1).as_ref(),
        ]));
        sources.insert(app.to_string(), src);
        ids.insert(app.to_string(), id);
    }
    let dev = env.path("dev");
    let template = format!("{}/{{label:app}}", dev.display());
    let v = restore_json(
        &env,
        &["--latest-per", "label:app", "--target", &template],
        0,
    );
    let got = restores(&v);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        ["a", "b", "c"].iter().map(|a| s(&dev.join(a))).collect(),
        "{v:#}"
    );
    let mut fetched = 0;
    let mut reused = 0;
    let mut total = 0;
    for (app, src) in &sources {
        let target = dev.join(app);
        let (snapshot, report) = &got[&s(&target)];
        assert_eq!(
            snapshot, &ids[app],
            "app={app}: not the latest snapshot: {v:#}"
        );
        assert_ne!(snapshot, &old_id);
        assert_same_tree(src, &Env::restored(&target, src), Compare::default());
        let bytes = file_bytes(src);
        assert_eq!(r(report, "bytes_written"), bytes, "{app}: {report:#}");
        assert_eq!(r(report, "files"), 11, "{app}: {report:#}");
        fetched += r(report, "bytes_fetched");
        reused += r(report, "bytes_reused");
        total += bytes;
    }
    assert!(!Env::restored(&dev.join("a"), &old_a).exists());
    // Every distinct chunk is read once: 9 shared MiB, three unique MiB, three configs.
    let configs: u64 = sources
        .values()
        .map(|src| fs::metadata(src.join("etc/config")).unwrap().len())
        .sum();
    let distinct = 9 * MIB + 3 * MIB + configs;
    assert!(
        (distinct..=distinct + 64 * 1024).contains(&fetched),
        "sum of bytes_fetched {fetched}, distinct content {distinct}, total {total}: {v:#}"
    );
    assert!(
        reused >= total - distinct - 64 * 1024,
        "sum of bytes_reused {reused}, expected about {}: {v:#}",
        total - distinct
    );

    // The filters choose the snapshots the groups are made of.
    let web = env.path("web");
    let v = restore_json(
        &env,
        &[
            "--latest-per",
            "label:app",
            "--tag",
            "web",
            "--target",
            &format!("{}/{{label:app}}", web.display()),
        ],
        0,
    );
    let got = restores(&v);
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        ["a", "b"].iter().map(|a| s(&web.join(a))).collect(),
        "{v:#}"
    );
    assert_eq!(got[&s(&web.join("a"))].0, ids["a"]);
    assert!(!web.join("c").exists());

    // With a SNAPSHOT argument, --latest-per is a usage error.
    let out = env.run([
        "restore",
        &ids["a"],
        "--latest-per",
        "label:app",
        "--target",
        &format!("{}/{{label:app}}", env.path("both").display()),
    ]);
    out.code(2);
    assert!(!env.path("both").exists());
}

// ------------------------------------------------------------------------------------------------
// 8. Template errors
// ------------------------------------------------------------------------------------------------

#[test]
fn targets_that_collide_are_a_usage_error_and_nothing_is_written() {
    let env = Env::init();
    let mut ids = Vec::new();
    for app in ["a", "b"] {
        let src = env.path(format!("src-{app}"));
        write(&src.join("f"), app.as_bytes());
        ids.push(id_of(&env.snapshot([
            src.as_os_str(),
            "--label".as_ref(),
            format!("app={app}").as_ref(),
            "--host".as_ref(),
            "same-host".as_ref(),
        ])));
    }
    let out_dir = env.path("out");
    for template in [
        format!("{}/{{host}}", out_dir.display()),
        format!("{}/plain", out_dir.display()),
    ] {
        let out = env.run(["restore", &ids[0], &ids[1], "--target", &template]);
        out.code(2).no_panic();
        assert!(!out_dir.exists(), "{template}: something was written");
        let out = env.run([
            "restore",
            "--latest-per",
            "label:app",
            "--target",
            &template,
        ]);
        out.code(2).no_panic();
        assert!(!out_dir.exists(), "{template}: something was written");
    }
    // Control: the same two snapshots into targets that differ are accepted (the exit code 2
    // above is about the collision, not about the arguments).
    let ok_dir = env.path("ok");
    let template = format!("{}/{{label:app}}", ok_dir.display());
    env.run(["restore", &ids[0], &ids[1], "--target", &template])
        .ok();
    assert_eq!(names(&ok_dir).len(), 2);
    let ok_dir = env.path("ok2");
    let template = format!("{}/{{label:app}}", ok_dir.display());
    env.run([
        "restore",
        "--latest-per",
        "label:app",
        "--target",
        &template,
    ])
    .ok();
    assert_eq!(names(&ok_dir).len(), 2);
    // The same snapshot twice renders the same target too.
    let out = env.run([
        "restore",
        &ids[0],
        &ids[0],
        "--target",
        &format!("{}/{{id}}", out_dir.display()),
    ]);
    out.code(2).no_panic();
    assert!(!out_dir.exists());
}

#[test]
fn a_missing_label_or_a_value_that_is_not_one_plain_name_is_refused() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("f"), b"f\n");
    let unlabelled = id_of(&env.snapshot([&src]));
    let labelled = id_of(&env.snapshot([src.as_os_str(), "--label".as_ref(), "app=ok".as_ref()]));
    let sandbox = env.path("sandbox");
    fs::create_dir_all(sandbox.join("l1/l2")).unwrap();
    write(&sandbox.join("victim"), b"victim\n");
    let template = format!("{}/l1/l2/{{label:app}}", sandbox.display());
    let before = fingerprint(&sandbox);

    // A snapshot without the label, alone and in company.
    let short = &unlabelled[..16];
    for args in [
        vec!["restore", unlabelled.as_str(), "--target", &template],
        vec![
            "restore",
            labelled.as_str(),
            &unlabelled,
            "--target",
            &template,
        ],
    ] {
        let out = env.run(&args);
        out.code(2).no_panic();
        let l = lines(&out);
        assert_eq!(l.len(), 1, "not one line: {l:?}");
        assert!(
            l[0].contains("app") && l[0].contains(short),
            "the error does not name label app and snapshot {short}: {l:?}"
        );
        assert_eq!(fingerprint(&sandbox), before, "{args:?}");
    }

    // Values that are not one plain path component.
    for value in ["../../x", "a/b", "..", ".", "", "/abs", "x/"] {
        let id = id_of(&env.snapshot([
            src.as_os_str(),
            "--label".as_ref(),
            format!("app={value}").as_ref(),
        ]));
        let out = env.run(["restore", &id, "--target", &template]);
        out.code(2).no_panic();
        let l = lines(&out);
        assert_eq!(l.len(), 1, "{value:?}: not one line: {l:?}");
        assert!(
            l[0].contains("app") && l[0].contains(&id[..16]),
            "{value:?}: the error does not name label app and snapshot {}: {l:?}",
            &id[..16]
        );
        assert_eq!(fingerprint(&sandbox), before, "label value {value:?}");
        assert!(!env.path("x").exists() && !sandbox.join("x").exists());
        assert!(!Path::new("/abs").exists());
    }
    // The good one still works.
    let out = env.run(["restore", &labelled, "--target", &template]);
    out.ok();
    assert_same_tree(
        &src,
        &Env::restored(&sandbox.join("l1/l2/ok"), &src),
        Compare::default(),
    );
}

// ------------------------------------------------------------------------------------------------
// 9. {id} and {host} with several SNAPSHOT arguments
// ------------------------------------------------------------------------------------------------

#[test]
fn id_and_host_templates_with_several_snapshot_arguments() {
    let env = Env::init();
    let mut srcs: Vec<PathBuf> = Vec::new();
    let mut ids = Vec::new();
    for (k, host) in ["h1", "h2", "h3"].iter().enumerate() {
        let src = env.path(format!("src-{host}"));
        write_generated(&src.join("data.bin"), 300 + k as u64, 200_000, random_bytes);
        write(&src.join("sub/name"), host.as_bytes());
        let mut n = 10 * k as i64;
        set_all_mtimes(&src, &mut n);
        ids.push(id_of(&env.snapshot([
            src.as_os_str(),
            "--host".as_ref(),
            host.as_ref(),
        ])));
        srcs.push(src);
    }
    let short = |id: &str| id[..16].to_string();

    // {host}
    let by_host = env.path("by-host");
    let v = restore_json(
        &env,
        &[
            &ids[0],
            &ids[1],
            "--target",
            &format!("{}/{{host}}", by_host.display()),
        ],
        0,
    );
    let got = restores(&v);
    assert_eq!(got.len(), 2, "{v:#}");
    for k in 0..2 {
        let t = by_host.join(format!("h{}", k + 1));
        assert_eq!(got[&s(&t)].0, ids[k], "{v:#}");
        assert_same_tree(&srcs[k], &Env::restored(&t, &srcs[k]), Compare::default());
    }
    assert!(!by_host.join("h3").exists());

    // Human output: one summary line per target, on stderr.
    let human = env.path("human");
    let out = env.run([
        "restore",
        &ids[0],
        &ids[1],
        "--target",
        &format!("{}/{{host}}", human.display()),
    ]);
    out.ok().no_panic();
    let l = lines(&out);
    assert_eq!(l.len(), 2, "not one line per target: {l:?}");
    for k in 0..2 {
        let t = s(&human.join(format!("h{}", k + 1)));
        assert_eq!(
            l.iter().filter(|line| line.contains(&t)).count(),
            1,
            "{t} not named by exactly one line: {l:?}"
        );
    }

    // {id}, three snapshots, one given as `latest` (the newest: h3).
    let by_id = env.path("by-id");
    let v = restore_json(
        &env,
        &[
            &ids[0],
            &ids[1][..12],
            "latest",
            "--target",
            &format!("{}/{{id}}", by_id.display()),
        ],
        0,
    );
    let got = restores(&v);
    assert_eq!(got.len(), 3, "{v:#}");
    for k in 0..3 {
        let t = by_id.join(short(&ids[k]));
        assert_eq!(got[&s(&t)].0, ids[k], "{v:#}");
        assert_same_tree(&srcs[k], &Env::restored(&t, &srcs[k]), Compare::default());
    }
    assert_eq!(names(&by_id).len(), 3);

    // Both, in one component, with :SUBPATH (contents land directly in the target).
    let mixed = env.path("mixed");
    let specs: Vec<String> = (0..3)
        .map(|k| format!("{}:{}", ids[k], srcs[k].display()))
        .collect();
    let template = format!("{}/{{host}}-{{id}}", mixed.display());
    let mut args: Vec<&str> = specs.iter().map(String::as_str).collect();
    args.extend(["--target", &template]);
    let v = restore_json(&env, &args, 0);
    let got = restores(&v);
    assert_eq!(got.len(), 3, "{v:#}");
    for k in 0..3 {
        let t = mixed.join(format!("h{}-{}", k + 1, short(&ids[k])));
        assert_eq!(got[&s(&t)].0, ids[k], "{v:#}");
        assert_same_tree(&srcs[k], &t, Compare::default());
    }

    // One snapshot with a template: the single-restore JSON, with the rendered target.
    let single = env.path("single");
    let v = restore_json(
        &env,
        &[
            &ids[2],
            "--target",
            &format!("{}/{{host}}/{{id}}", single.display()),
        ],
        0,
    );
    assert!(
        v.get("restores").is_none(),
        "one snapshot, bulk JSON: {v:#}"
    );
    let t = single.join("h3").join(short(&ids[2]));
    assert_eq!(v["snapshot"], ids[2].as_str(), "{v:#}");
    assert_eq!(v["target"], s(&t).as_str(), "{v:#}");
    assert_same_tree(&srcs[2], &Env::restored(&t, &srcs[2]), Compare::default());
}

// ------------------------------------------------------------------------------------------------
// 10. --dry-run and --dry-run --verify
// ------------------------------------------------------------------------------------------------

/// Makes a repository file writable again (objects are written read-only).
fn writable(path: &Path) {
    chmod(path, 0o644);
}

/// Raw bytes of a chunk blob of a pack file.
fn raw_blob(pack_data: &[u8], e: &BlobEntry) -> Vec<u8> {
    let stored = &pack_data[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
    pack::open_blob(
        &vault_engine::keys::Encryption::none(),
        e.id,
        e.kind,
        e.encoding,
        e.raw_len,
        stored,
    )
    .unwrap_or_else(|err| panic!("blob {} does not open: {err}", e.id.to_hex()))
}

/// Flips one bit of `e`'s stored bytes in the pack file so that the blob no longer opens.
fn damage_blob(path: &Path, e: &BlobEntry) {
    writable(path);
    let mut data = fs::read(path).unwrap();
    let len = e.stored_len as u64;
    for attempt in 0..64u64 {
        let at = (e.offset + len / 2 + attempt * 7 % len.max(1)) as usize;
        let bit = (attempt % 8) as u8;
        data[at] ^= 1 << bit;
        let stored = &data[e.offset as usize..(e.offset + len) as usize];
        if pack::open_blob(
            &vault_engine::keys::Encryption::none(),
            e.id,
            e.kind,
            e.encoding,
            e.raw_len,
            stored,
        )
        .is_err()
        {
            fs::write(path, &data).unwrap();
            return;
        }
        data[at] ^= 1 << bit;
    }
    panic!("no bit flip damages blob {}", e.id.to_hex());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn dry_run_writes_nothing_and_verify_reads_every_chunk_and_names_damaged_files() {
    let env = Env::new();
    env.run([
        "init",
        "--encryption",
        "none",
        "--chunk-min",
        "16KiB",
        "--chunk-avg",
        "64KiB",
        "--chunk-max",
        "256KiB",
    ])
    .ok();
    let src = env.path("src");
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, len) in [3 * MIB as usize, 700_000, 100_000, 5000, 1]
        .iter()
        .enumerate()
    {
        let name = format!("data-{k:02}.bin");
        let content = random_bytes(500 + k as u64, *len);
        write(&src.join(&name), &content);
        contents.insert(name, content);
    }
    let text = compressible_bytes(600, 1_500_000);
    write(&src.join("sub/text-05.txt"), &text);
    contents.insert("sub/text-05.txt".into(), text);
    std::os::unix::fs::symlink("data-00.bin", src.join("link")).unwrap();
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let total = file_bytes(&src);
    env.snapshot([&src]);

    // --dry-run into a missing target: nothing created.
    let t = env.path("t");
    let v = restore_json(&env, &["latest", "--target", &s(&t), "--dry-run"], 0);
    let report = &v["report"];
    assert!(
        fs::symlink_metadata(&t).is_err(),
        "--dry-run created the target"
    );
    assert_eq!(report["dry_run"], true, "{v:#}");
    assert_eq!(r(report, "bytes_written"), 0, "{v:#}");
    assert_eq!(r(report, "files"), 6, "{v:#}");
    assert_eq!(r(report, "symlinks"), 1, "{v:#}");

    // --dry-run --delta over an existing, changed target: unchanged, and reported.
    let existing = env.path("existing");
    restore_json(&env, &["latest", "--target", &s(&existing)], 0);
    let restored = Env::restored(&existing, &src);
    fs::write(restored.join("data-02.bin"), b"changed").unwrap();
    write(&restored.join("extra"), b"extra\n");
    let before = fingerprint(&existing);
    for args in [&["--delta"][..], &["--delta", "--delete"][..]] {
        let mut all = vec![
            "latest",
            "--target",
            restored.to_str().unwrap(),
            "--dry-run",
        ];
        all.extend_from_slice(args);
        // `latest:<src>` so that the target holds the tree itself.
        let spec = format!("latest:{}", src.display());
        all[0] = &spec;
        let v = restore_json(&env, &all, 0);
        let report = &v["report"];
        assert_eq!(
            fingerprint(&existing),
            before,
            "{args:?}: the dry run wrote"
        );
        assert_eq!(report["dry_run"], true, "{v:#}");
        assert_eq!(r(report, "bytes_written"), 0, "{v:#}");
        assert_eq!(r(report, "files_unchanged"), 5, "{args:?}: {v:#}");
        assert_eq!(
            r(report, "files_patched") + r(report, "files_written"),
            1,
            "{args:?}: {v:#}"
        );
        if args.contains(&"--delete") {
            assert_eq!(r(report, "deleted"), 1, "{args:?}: {v:#}");
        } else {
            assert_eq!(r(report, "deleted"), 0, "{args:?}: {v:#}");
        }
    }

    // --dry-run --verify on a good repository: every byte read and checked.
    let v = restore_json(
        &env,
        &["latest", "--target", &s(&t), "--dry-run", "--verify"],
        0,
    );
    let report = &v["report"];
    assert!(fs::symlink_metadata(&t).is_err());
    assert_eq!(r(report, "bytes_verified"), total, "{v:#}");
    assert_eq!(report["problems"], serde_json::json!([]), "{v:#}");
    assert_eq!(report["dry_run"], true, "{v:#}");

    // --verify needs --dry-run.
    env.run(["restore", "latest", "--target", &s(&t), "--verify"])
        .code(2)
        .no_panic();
    assert!(fs::symlink_metadata(&t).is_err());

    // Damage one chunk of data-00.bin (the 3 MiB file, several chunks).
    let target_file = &contents["data-00.bin"];
    let mut damaged_one = None;
    'packs: for path in pack_files(&env.repo) {
        let data = fs::read(&path).unwrap();
        let entries = pack::decode_pack(&vault_engine::keys::Encryption::none(), &data).unwrap();
        for e in entries.iter().filter(|e| e.kind == BlobKind::Chunk) {
            let raw = raw_blob(&data, e);
            if raw.len() > 1000 && contains(target_file, &raw) {
                damaged_one = Some((path.clone(), *e, raw));
                break 'packs;
            }
        }
    }
    let (pack_path, entry, raw) = damaged_one.expect("a chunk of data-00.bin");
    damage_blob(&pack_path, &entry);
    let damaged: BTreeSet<&String> = contents
        .iter()
        .filter(|(_, c)| contains(c, &raw))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(damaged.len(), 1);

    let out = env.run([
        "restore",
        "--json",
        "latest",
        "--target",
        &s(&t),
        "--dry-run",
        "--verify",
    ]);
    out.code(3).no_panic();
    let v = out.json();
    let report = &v["report"];
    assert!(
        fs::symlink_metadata(&t).is_err(),
        "--dry-run --verify created the target"
    );
    let problems: Vec<String> = report["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems list: {v:#}"))
        .iter()
        .map(|p| p.as_str().expect("one-line strings").to_string())
        .collect();
    assert!(!problems.is_empty(), "{v:#}");
    for p in &problems {
        assert!(!p.contains('\n'), "not one line: {p:?}");
    }
    for name in contents.keys() {
        let named = problems.iter().any(|p| p.contains(name.as_str()));
        if damaged.contains(name) {
            assert!(named, "the damaged file {name} is not named: {problems:#?}");
        } else {
            assert!(!named, "the intact file {name} is named: {problems:#?}");
        }
    }
    // The rest was still read: all but the damaged file at least (whether the intact chunks
    // of a damaged file count is not specified).
    let damaged_bytes: u64 = damaged.iter().map(|n| contents[*n].len() as u64).sum();
    assert!(
        r(report, "bytes_verified") >= total - damaged_bytes,
        "problems stop nothing: {v:#}"
    );
}
