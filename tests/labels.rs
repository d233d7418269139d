//! `vault label` and `vault tag`: edits through the real binary, checked against `list --json`,
//! the filters, the repository's files (manifests and markers) and byte-exact restores, and
//! carried through `copy` (also into an encrypted repository with its own keys), `forget` +
//! `prune`, `index rebuild`, protection, and a crash between writing the new manifest and
//! forgetting the old one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::util::encrypted::Enc;
use crate::util::*;

/// A small source tree: a few files, a subdirectory, a symlink.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    write(&src.join("a.txt"), b"hello labels\n");
    write(&src.join("sub/b.bin"), &random_bytes(7, 300_000));
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    src
}

/// Names in a repository directory (`snapshots`, `forgotten`, `protected`), sorted.
fn objects(repo: &Path, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo.join(dir))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// `vault label|tag ARGS --json` on `env`, asserting exit 0; returns the report.
#[track_caller]
fn edit(env: &Env, args: &[&str]) -> Value {
    let mut cmd = env.cmd(args);
    cmd.arg("--json");
    let out = run_cmd(cmd);
    out.ok().no_panic();
    out.json()
}

#[track_caller]
fn restores_exact(env: &Env, id: &str, src: &Path, name: &str) {
    let target = env.path(name);
    env.restore(id, &target, Vec::<String>::new()).ok();
    assert_same_tree(src, &Env::restored(&target, src), Compare::default());
}

#[track_caller]
fn replaced_by(report: &Value) -> String {
    let id = report["replaced_by"]
        .as_str()
        .expect("an edit wrote a snapshot");
    assert!(is_full_id(id), "{report}");
    id.to_string()
}

#[test]
fn label_and_tag_edits_show_in_list_filters_and_restore_exact() {
    let env = Env::init();
    let src = source(&env);
    let s = id_of(&env.snapshot([
        src.to_str().unwrap(),
        "--label",
        "app=web",
        "--label",
        "owner=ops",
        "--tag",
        "daily",
    ]));
    let before = env.list(Vec::<String>::new()).remove(0);

    let report = edit(
        &env,
        &["label", &s[..8], "--add", "env=prod", "--remove", "owner"],
    );
    assert_eq!(report["snapshot"], s.as_str());
    assert_eq!(report["labels"], json!({"app": "web", "env": "prod"}));
    assert_eq!(report["tags"], json!(["daily"]));
    let n1 = replaced_by(&report);

    // One snapshot, the new one: the same snapshot but for its labels.
    let list = env.list(Vec::<String>::new());
    assert_eq!(ids(&list), vec![n1.clone()]);
    let now = &list[0];
    assert_eq!(now["labels"], json!({"app": "web", "env": "prod"}));
    assert_eq!(now["replaces"], s.as_str());
    assert!(now["edited"].is_string(), "{now}");
    for same in ["time", "host", "paths", "tree", "parent", "summary", "tags"] {
        assert_eq!(now[same], before[same], "{same} changed");
    }
    // The edited snapshot remembers where its content was taken.
    assert!(now["origin"].as_str().unwrap().ends_with(&format!("/{s}")));

    // Filters see the edited labels.
    assert_eq!(ids(&env.list(["--label", "env=prod"])), vec![n1.clone()]);
    assert!(env.list(["--label", "owner=ops"]).is_empty());

    // Tags, an edit of the edit: replaces names its immediate predecessor.
    let report = edit(
        &env,
        &["tag", "latest", "--add", "keep", "--remove", "daily"],
    );
    assert_eq!(report["snapshot"], n1.as_str());
    let n2 = replaced_by(&report);
    let list = env.list(Vec::<String>::new());
    assert_eq!(ids(&list), vec![n2.clone()]);
    assert_eq!(list[0]["tags"], json!(["keep"]));
    assert_eq!(list[0]["replaces"], n1.as_str());
    assert_eq!(list[0]["origin"], now["origin"]);
    assert_eq!(ids(&env.list(["--tag", "keep"])), vec![n2.clone()]);
    assert!(env.list(["--tag", "daily"]).is_empty());

    // The replaced ones are forgotten, and say by what.
    let forgotten = env.list(["--forgotten"]);
    assert_eq!(forgotten.len(), 2);
    for f in &forgotten {
        let by = if f["id"] == s.as_str() { &n1 } else { &n2 };
        assert_eq!(f["replaced_by"], by.as_str(), "{f}");
        assert_eq!(f["forgotten"], true);
    }
    assert_eq!(objects(&env.repo, "forgotten"), {
        let mut v = vec![s.clone(), n1.clone()];
        v.sort();
        v
    });
    let human = env.run(["list", "--forgotten"]);
    human.ok();
    assert!(
        human.stdout_str().contains("replaced"),
        "{}",
        human.stdout_str()
    );

    // Undelete of a replaced snapshot is refused, naming the replacement.
    env.run(["undelete", &s])
        .code(2)
        .stderr_has(&format!("replaced it with snapshot {}", &n1[..16]));

    // A no-op edit writes nothing, says so, and prints the unchanged id.
    let snapshots = objects(&env.repo, "snapshots");
    let out = env.run(["tag", &n2, "--add", "keep", "--remove", "daily"]);
    out.ok();
    assert_eq!(out.stdout_str().trim(), n2);
    assert!(out.stderr.contains("nothing to change"), "{}", out.stderr);
    let report = edit(&env, &["label", &n2, "--remove", "owner"]);
    assert_eq!(report["replaced_by"], Value::Null);
    assert_eq!(objects(&env.repo, "snapshots"), snapshots);

    // Human output: the new id on stdout, what happened on stderr.
    let out = env.run(["label", &n2, "--add", "app=shop"]);
    out.ok();
    let n3 = out.stdout_str().trim().to_string();
    assert!(is_full_id(&n3), "{}", out.stdout_str());
    assert!(out.stderr.contains("replaced by"), "{}", out.stderr);
    assert_eq!(
        env.list(Vec::<String>::new())[0]["labels"],
        json!({"app": "shop", "env": "prod"})
    );

    restores_exact(&env, "latest", &src, "restored");
    env.run(["verify"]).ok();
}

#[test]
fn bad_edits_fail_with_one_line_and_exit_2_and_write_nothing() {
    let env = Env::init();
    let src = source(&env);
    let s = id_of(&env.snapshot([src.to_str().unwrap(), "--label", "app=web"]));
    let snapshots = objects(&env.repo, "snapshots");
    let one_line = |args: &[&str], needle: &str| {
        let out = env.run(args);
        out.code(2).stderr_has(needle);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    };
    one_line(&["label", "deadbeef", "--add", "a=b"], "deadbeef");
    one_line(&["tag", "zz", "--add", "x"], "not a snapshot id");
    // Labels are rejected as `vault snapshot --label` rejects them.
    env.run(["label", &s, "--add", "novalue"])
        .code(2)
        .stderr_has("labels are KEY=VALUE");
    env.run(["snapshot", src.to_str().unwrap(), "--label", "novalue"])
        .code(2)
        .stderr_has("labels are KEY=VALUE");
    env.run(["label", &s, "--add", "=x"])
        .code(2)
        .stderr_has("labels are KEY=VALUE");
    env.run(["label", &s, "--remove", "a=b"])
        .code(2)
        .stderr_has("cannot contain `=`");
    one_line(
        &["label", &s, "--add", "app=x", "--remove", "app"],
        "both added and removed",
    );
    one_line(
        &["tag", &s, "--add", "t", "--remove", "t"],
        "both added and removed",
    );
    env.run(["tag", &s]).code(2);
    // A forgotten snapshot is refused by name.
    env.run(["forget", &s]).ok();
    one_line(
        &["tag", &s, "--add", "x"],
        "forgotten; `vault undelete` it first",
    );
    assert_eq!(objects(&env.repo, "snapshots"), snapshots);
}

#[test]
fn protected_snapshot_stays_protected_after_an_edit() {
    let env = Env::init();
    let src = source(&env);
    let s = id_of(&env.snapshot([src.to_str().unwrap(), "--protect"]));
    let n = replaced_by(&edit(&env, &["tag", &s, "--add", "pre-upgrade"]));
    let list = env.list(Vec::<String>::new());
    assert_eq!(ids(&list), vec![n.clone()]);
    assert_eq!(list[0]["protected"], true);
    assert_eq!(objects(&env.repo, "protected"), vec![n.clone()]);
    env.run(["forget", &n]).code(2).stderr_has("protected");
    env.run(["forget", "--keep-last", "1"]).ok();
    env.run(["prune", "--max-unused", "0%", "--no-wait"]).ok();
    assert_eq!(objects(&env.repo, "snapshots"), vec![n.clone()]);
    assert_eq!(objects(&env.repo, "protected"), vec![n.clone()]);
    restores_exact(&env, &n, &src, "restored");
}

#[test]
fn edits_survive_forget_prune_and_index_rebuild() {
    let env = Env::init();
    let src = source(&env);
    let a = id_of(&env.snapshot([src.to_str().unwrap(), "--label", "app=a"]));
    let other = env.path("other");
    fs::create_dir_all(&other).unwrap();
    write(&other.join("c.txt"), b"another source\n");
    let b = id_of(&env.snapshot([other.to_str().unwrap(), "--label", "app=a"]));
    let a2 = replaced_by(&edit(&env, &["label", &a, "--add", "app=b"]));
    // Retention sees the edited snapshot as before: nothing to forget with keep-last 2.
    let forget = env
        .run(["forget", "--keep-last", "2", "--json"])
        .ok()
        .json();
    assert_eq!(forget["forgotten"], json!([]));
    env.run(["forget", &b]).ok();
    env.run(["prune", "--max-unused", "0%", "--no-wait"]).ok();
    // Only the edit is left; the replaced manifest and b are gone, with their markers.
    assert_eq!(objects(&env.repo, "snapshots"), vec![a2.clone()]);
    assert!(objects(&env.repo, "forgotten").is_empty());
    let list = env.list(Vec::<String>::new());
    assert_eq!(list[0]["labels"], json!({"app": "b"}));
    restores_exact(&env, &a2, &src, "restored");
    env.run(["index", "rebuild"]).ok();
    assert_eq!(ids(&env.list(["--label", "app=b"])), vec![a2.clone()]);
    restores_exact(&env, "latest", &src, "restored-after-rebuild");
    env.run(["verify", "--read-data"]).ok();
}

/// The state a crash after E2 leaves (the new manifest durable, the old one not yet forgotten),
/// built by copying the new manifest into a copy of the repository taken before the edit.
#[test]
fn crash_after_the_new_manifest_lists_exactly_one_snapshot() {
    let env = Env::init();
    let src = source(&env);
    let s = id_of(&env.snapshot([src.to_str().unwrap(), "--label", "app=web"]));
    let before = env.path("repo-before-edit");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&env.repo)
        .arg(&before)
        .status()
        .unwrap();
    assert!(status.success());
    let n = replaced_by(&edit(&env, &["label", &s, "--add", "app=shop"]));
    fs::copy(
        env.repo.join("snapshots").join(&n),
        before.join("snapshots").join(&n),
    )
    .unwrap();
    let crashed = Env {
        repo: before.clone(),
        ..Env::new()
    };
    assert!(objects(&before, "forgotten").is_empty());
    let list = crashed.list(Vec::<String>::new());
    assert_eq!(ids(&list), vec![n.clone()]);
    assert_eq!(list[0]["labels"], json!({"app": "shop"}));
    let forgotten = crashed.list(["--forgotten"]);
    assert_eq!(ids(&forgotten), vec![s.clone()]);
    assert_eq!(forgotten[0]["replaced_by"], n.as_str());
    // `latest` and the filters see only the edit; the old one cannot be edited again.
    assert!(crashed.list(["--label", "app=web"]).is_empty());
    crashed
        .run(["tag", &s, "--add", "x"])
        .code(2)
        .stderr_has("replaced it with snapshot");
    // Prune finishes the edit: the replaced manifest goes, the edit restores.
    crashed
        .run(["prune", "--max-unused", "0%", "--no-wait"])
        .ok();
    assert_eq!(objects(&before, "snapshots"), vec![n.clone()]);
    restores_exact(&crashed, "latest", &src, "restored");
}

/// Source and destination with different keys (unencrypted -> encrypted): the old copy is
/// replaced there, a later copy changes nothing, a later edit in the destination is kept, and
/// copying only the edit into an empty repository works.
#[test]
fn copy_carries_edits_into_a_destination_holding_the_old_copy() {
    let env = Env::init();
    let src = source(&env);
    let s = id_of(&env.snapshot([src.to_str().unwrap(), "--label", "app=web", "--protect"]));
    let dest = Enc::init();
    let copy = |to: &Path| {
        let mut cmd = env.cmd(["copy", "--json", "--to"]);
        cmd.arg(to).env("VAULT_TO_PASSWORD", &dest.password);
        let out = run_cmd(cmd);
        out.ok().no_panic();
        out.json()
    };
    let first = copy(&dest.repo);
    let s_copy = first["copied"][0]["destination"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first["copied"][0]["replaced"], Value::Null);

    let n = replaced_by(&edit(&env, &["label", &s, "--add", "env=prod"]));
    let second = copy(&dest.repo);
    assert_eq!(second["copied"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["copied"][0]["source"], n.as_str());
    assert_eq!(second["copied"][0]["replaced"], s_copy.as_str());
    let n_copy = second["copied"][0]["destination"]
        .as_str()
        .unwrap()
        .to_string();
    let there = list_enc(&dest, &[]);
    assert_eq!(ids(&there), vec![n_copy.clone()]);
    assert_eq!(there[0]["labels"], json!({"app": "web", "env": "prod"}));
    assert_eq!(there[0]["replaces"], s_copy.as_str());
    assert_eq!(there[0]["protected"], true);
    assert_eq!(objects(&dest.repo, "protected"), vec![n_copy.clone()]);
    assert_eq!(objects(&dest.repo, "forgotten"), vec![s_copy.clone()]);
    // Sealed like every manifest: the new label is not readable in the file.
    let file = fs::read(dest.repo.join("snapshots").join(&n_copy)).unwrap();
    assert!(!file.windows(4).any(|w| w == b"prod"));

    // Nothing new: nothing copied.
    let third = copy(&dest.repo);
    assert_eq!(third["copied"], json!([]), "{third}");
    // An edit made in the destination later than the source's is not undone by a copy.
    dest.run(["tag", &n_copy, "--add", "offsite"]).ok();
    let fourth = copy(&dest.repo);
    assert_eq!(fourth["copied"], json!([]), "{fourth}");
    assert_eq!(list_enc(&dest, &[])[0]["tags"], json!(["offsite"]));

    let target = dest.path("restored");
    let out = run_cmd({
        let mut cmd = dest.cmd(["restore", "latest", "--target"]);
        cmd.arg(&target);
        cmd
    });
    out.ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
    // Prune deletes both replaced versions (their protection moved to the newest).
    dest.run(["prune", "--max-unused", "0%", "--no-wait"]).ok();
    assert!(list_enc(&dest, &["--forgotten"]).is_empty());
    assert_eq!(objects(&dest.repo, "snapshots").len(), 1);
    assert_eq!(list_enc(&dest, &[])[0]["protected"], true);

    // Only the edit, into an empty repository: one snapshot, nothing to replace.
    let empty = Env::init();
    let out = copy(&empty.repo);
    assert_eq!(out["copied"].as_array().unwrap().len(), 1);
    let list = empty.list(Vec::<String>::new());
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["replaces"], Value::Null);
    assert_eq!(list[0]["labels"], json!({"app": "web", "env": "prod"}));
    assert!(list[0]["origin"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/{s}")));
}

fn list_enc(dest: &Enc, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(extra);
    let out = dest.run(&args);
    out.ok();
    out.json()["snapshots"].as_array().unwrap().clone()
}

#[test]
fn edits_in_an_encrypted_repository() {
    let enc = Enc::init();
    let src = source(&enc);
    let s = id_of(&enc.snapshot([src.to_str().unwrap(), "--label", "app=web"]));
    let out = enc.run(["label", &s, "--add", "secret=website", "--json"]);
    out.ok();
    let n = replaced_by(&out.json());
    let file = fs::read(enc.repo.join("snapshots").join(&n)).unwrap();
    assert!(!file.windows(7).any(|w| w == b"website"));
    let list = list_enc(&enc, &["--label", "secret=website"]);
    assert_eq!(ids(&list), vec![n.clone()]);
    enc.run(["prune", "--max-unused", "0%", "--no-wait"]).ok();
    assert_eq!(objects(&enc.repo, "snapshots"), vec![n.clone()]);
    enc.run(["index", "rebuild"]).ok();
    let target = enc.path("restored");
    let out = run_cmd({
        let mut cmd = enc.cmd(["restore", &n, "--target"]);
        cmd.arg(&target);
        cmd
    });
    out.ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
    enc.run(["verify", "--read-data"]).ok();
}
