//! What a snapshot takes: several sources, nested sources, single files, symlinks, excludes,
//! standard input together with paths; and dump into a pipe closed early.

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::process::Stdio;

use crate::util::*;

#[test]
fn several_sources_in_one_snapshot() {
    let env = Env::init();
    let a = env.path("a");
    let b = env.path("b/inner");
    let file = env.path("single.txt");
    let link = env.path("link-source");
    write(&a.join("x.txt"), b"x\n");
    write(&a.join("sub/y.bin"), &random_bytes(1, 10_000));
    write(&b.join("z.txt"), b"z\n");
    write(&file, b"a single file source\n");
    set_mtime(&file, 1_555_555_555, 555);
    symlink("single.txt", &link).unwrap();
    set_mtime(&link, 1_444_444_444, 444);

    // a/sub is inside a: it is dropped as a separate source; a given twice counts once.
    let snap = env.snapshot([
        a.as_os_str(),
        b.as_os_str(),
        file.as_os_str(),
        link.as_os_str(),
        a.join("sub").as_os_str(),
        a.as_os_str(),
    ]);
    let mut want: Vec<String> = [&a, &b, &file, &link]
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    want.sort();
    let mut paths: Vec<String> = snap["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, want, "{snap}");
    assert_eq!(summary(&snap, "files"), 4);

    let t = env.path("t");
    env.restore("latest", &t, Vec::<&str>::new()).ok();
    assert_same_tree(&a, &Env::restored(&t, &a), Compare::default());
    assert_same_tree(&b, &Env::restored(&t, &b), Compare::default());
    // The single file and the symlink (not its target) with their metadata.
    assert_same_tree(&file, &Env::restored(&t, &file), Compare::default());
    assert_same_tree(&link, &Env::restored(&t, &link), Compare::default());
    // b's parent exists only as an ancestor, with b's parent's metadata.
    assert!(Env::restored(&t, &env.path("b")).is_dir());
    assert_eq!(names(&Env::restored(&t, &env.path("b"))), ["inner"]);

    // The order of sources does not matter for finding the parent.
    let again = env.snapshot([
        link.as_os_str(),
        file.as_os_str(),
        b.as_os_str(),
        a.as_os_str(),
    ]);
    assert_eq!(again["parent"], snap["id"]);
    assert_eq!(summary(&again, "files_unchanged"), 4, "{again}");
}

#[test]
fn excludes_by_name_and_by_path() {
    let env = Env::init();
    let src = env.path("src");
    for rel in [
        "keep.txt",
        "drop.tmp",
        "sub/keep.bin",
        "sub/also.tmp",
        "sub/deep/x.tmp",
        "cache/big.bin",
        "cache/keep-but-excluded.txt",
        "other/cache/kept-only-by-name-rule.txt",
    ] {
        write(&src.join(rel), rel.as_bytes());
    }
    let cache = src.join("cache");
    let snap = env.snapshot([
        src.as_os_str(),
        "--exclude".as_ref(),
        "*.tmp".as_ref(),
        "--exclude".as_ref(),
        cache.as_os_str(),
    ]);
    assert_eq!(summary(&snap, "files"), 3, "{snap}");
    let t = env.path("t");
    env.restore("latest", &t, Vec::<&str>::new()).ok();
    let got: Vec<String> = scan(&Env::restored(&t, &src))
        .into_iter()
        .filter(|(_, n)| n.kind == Kind::File)
        .map(|(r, _)| show(&r))
        .collect();
    assert_eq!(
        got,
        [
            "\"keep.txt\"",
            "\"other/cache/kept-only-by-name-rule.txt\"",
            "\"sub/keep.bin\"",
        ]
    );
}

#[test]
fn stdin_and_paths_in_one_snapshot() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("app.conf"), b"conf\n");
    let mut cmd = env.cmd([
        "snapshot",
        "--json",
        "--stdin",
        "--stdin-name",
        "db/dump.sql",
    ]);
    cmd.arg(&src);
    let fed = Fed::spawn(cmd, SqlDump::new(3).bytes(2 << 20)).wait();
    fed.out.ok();
    let snap = fed.out.json();
    assert_eq!(summary(&snap, "files"), 2);
    let t = env.path("t");
    env.restore("latest", &t, Vec::<&str>::new()).ok();
    assert_eq!(
        file_digest(&t.join("db/dump.sql")),
        (fed.fed_digest, 2 << 20)
    );
    assert_same_tree(&src, &Env::restored(&t, &src), Compare::default());
}

/// `vault dump ... | head` : the reader goes away early; vault stops without a panic or a
/// signal death and without an error message.
#[test]
fn dump_into_closed_pipe() {
    let env = Env::init();
    let fed = Fed::spawn(
        env.cmd(["snapshot", "--stdin", "--stdin-name", "big.sql"]),
        SqlDump::new(4).bytes(64 << 20),
    )
    .wait();
    fed.out.ok();
    let mut cmd = env.cmd(["dump", "latest", "/big.sql"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut head = [0u8; 100];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "dump died from a signal: {:?}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "message on a closed pipe: {stderr}"
    );
    let mut expected = Vec::new();
    SqlDump::new(4)
        .bytes(100)
        .read_to_end(&mut expected)
        .unwrap();
    assert_eq!(&head[..], &expected[..]);
}

/// FIFOs are recorded, never opened: nobody writes to these, so reading one would hang.
#[test]
fn snapshot_of_fifo_does_not_block() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    mkfifo(&src.join("pipe"), 0o600);
    write(&src.join("after.txt"), b"after\n");
    let snap = env.snapshot([&src]);
    assert_eq!(snap["complete"], true);
    // As a source of its own, too.
    let alone = env.snapshot([src.join("pipe")]);
    assert_eq!(alone["complete"], true);
    let t = env.path("t");
    env.restore(&id_of(&snap), &t, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&t, &src), Compare::default());
}

/// A repository and a cache that lie inside a source are not backed up (the repository would
/// otherwise store itself again on every run): each is left out, said once on stderr and listed
/// under `excluded` in the --json output. A source inside the repository is refused.
#[test]
fn repository_and_cache_inside_a_source_are_left_out() {
    let env = Env::new();
    let src = env.path("src");
    let repo = src.join("backup/repo");
    let cache = src.join("cache");
    let env = env.with_envs([("VAULT_REPO", &repo), ("VAULT_CACHE_DIR", &cache)]);
    write(&src.join("data.txt"), b"data\n");
    env.run(["init", "--encryption", "none"]).ok();

    let mut first = None;
    for run in 0..2 {
        let mut cmd = env.cmd(["snapshot", "--json"]);
        cmd.arg(&src);
        let out = run_cmd(cmd);
        out.ok();
        for (what, dir) in [("repository", &repo), ("cache", &cache)] {
            let line = format!(
                "vault: excluding the {what} {} from the snapshot (vault never backs up its own data)",
                dir.display()
            );
            assert_eq!(out.stderr.matches(&line).count(), 1, "{}", out.stderr);
        }
        let snap = out.json();
        check_snapshot_json(&snap);
        let mut excluded: Vec<(&str, &str)> = snap["excluded"]
            .as_array()
            .unwrap_or_else(|| panic!("no excluded list in {snap}"))
            .iter()
            .map(|d| (d["what"].as_str().unwrap(), d["path"].as_str().unwrap()))
            .collect();
        excluded.sort();
        assert_eq!(
            excluded,
            [
                ("cache", cache.to_str().unwrap()),
                ("repository", repo.to_str().unwrap())
            ]
        );
        assert_eq!(summary(&snap, "files"), 1, "run {run}: {snap}");
        first.get_or_insert(id_of(&snap));
    }

    let t = env.path("t");
    env.restore(first.as_ref().unwrap(), &t, Vec::<&str>::new())
        .ok();
    let restored = Env::restored(&t, &src);
    assert_eq!(names(&restored), ["backup", "data.txt"]);
    assert!(names(&restored.join("backup")).is_empty());

    let mut cmd = env.cmd(["snapshot"]);
    cmd.arg(repo.join("packs"));
    let out = run_cmd(cmd);
    out.code(2);
    out.stderr_has(&format!(
        "vault: source {}: it lies inside the repository {}, which vault never backs up",
        repo.join("packs").display(),
        repo.display()
    ));
}
