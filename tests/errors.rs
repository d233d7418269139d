//! Failure modes and their exit codes: 1 error (nothing committed), 2 usage error, 3 completed
//! with problems.
//!
//! Unreadable sources need a process that permission bits apply to. Tests run as root in CI and
//! root ignores them, so when euid is 0 the snapshot runs as uid/gid 65534 through
//! `setpriv --reuid=65534 --regid=65534 --clear-groups` (see `Env::cmd_unprivileged`), with the
//! repository, cache and home handed to that user (`Env::share_with_nobody`).

use std::collections::BTreeSet;
use std::fs;

use crate::util::*;

#[test]
fn unreadable_file_and_directory_give_an_incomplete_snapshot() {
    let env = Env::init();
    env.share_with_nobody();
    let src = env.path("src");
    write(&src.join("ok/a.txt"), b"readable\n");
    write_generated(&src.join("ok/big.bin"), 1, 3 << 20, random_bytes);
    write(&src.join("secret.txt"), b"nobody may read this\n");
    write(&src.join("locked/inside.txt"), b"behind a locked door\n");
    write(&src.join("zz-after.txt"), b"listed after the problems\n");
    chmod(&src.join("secret.txt"), 0o000);
    chmod(&src.join("locked"), 0o000);

    let mut cmd = env.cmd_unprivileged(["snapshot", "--json"]);
    cmd.arg(&src);
    let out = run_cmd(cmd);
    out.code(3);
    let snap = out.json();
    check_snapshot_json(&snap);
    assert_eq!(snap["complete"], false);
    let problems: BTreeSet<String> = snap["summary"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(!e["reason"].as_str().unwrap().is_empty(), "{e}");
            e["path"].as_str().unwrap().to_string()
        })
        .collect();
    let expected: BTreeSet<String> = [src.join("secret.txt"), src.join("locked")]
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    assert_eq!(problems, expected, "{snap}");
    out.stderr_has("secret.txt").stderr_has("locked");

    // Committed, and listed as incomplete.
    let listed = env.list(Vec::<&str>::new());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], snap["id"]);
    assert_eq!(listed[0]["complete"], false);
    assert_eq!(listed[0]["summary"]["errors"], snap["summary"]["errors"]);
    let table = env.run(["list"]);
    table.ok();
    assert!(
        table.stdout_str().contains("incomplete"),
        "{}",
        table.stdout_str()
    );

    // Everything else restores exactly; the unreadable file is absent, the locked directory
    // is there, empty.
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    let restored = Env::restored(&target, &src);
    let diffs: BTreeSet<String> = compare_trees(&src, &restored, Compare::default())
        .into_iter()
        .collect();
    let expected_diffs: BTreeSet<String> = [
        "\"secret.txt\": missing in restore (File)",
        "\"locked/inside.txt\": missing in restore (File)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(diffs, expected_diffs);
    assert!(names(&restored.join("locked")).is_empty());
}

#[test]
fn missing_source_path_commits_nothing() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    let missing = env.path("does-not-exist");
    let mut cmd = env.cmd(["snapshot"]);
    cmd.arg(&missing);
    run_cmd(cmd).code(1).stderr_has(missing.to_str().unwrap());
    // Also when given next to a good path: all or nothing.
    let mut cmd = env.cmd(["snapshot"]);
    cmd.arg(&src).arg(&missing);
    run_cmd(cmd).code(1).stderr_has("does-not-exist");
    assert!(env.snapshot_ids().is_empty());
    assert!(names(&env.repo.join("snapshots")).is_empty());
}

#[test]
fn restore_refuses_non_empty_target_without_overwrite() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("file.txt"), b"from the snapshot\n");
    write(&src.join("dir/nested.txt"), b"nested\n");
    env.snapshot([&src]);

    let target = env.path("t");
    write(&target.join("existing.txt"), b"already here\n");
    let before = fingerprint(&target);
    env.restore("latest", &target, Vec::<&str>::new())
        .code(2)
        .stderr_has("--overwrite");
    assert_eq!(
        fingerprint(&target),
        before,
        "restore wrote into the target"
    );

    // With --overwrite it restores, keeping unrelated files; a conflicting entry is replaced.
    let restored = Env::restored(&target, &src);
    write(&restored.join("file.txt"), b"stale\n");
    fs::create_dir_all(restored.join("dir/nested.txt")).unwrap(); // a dir where a file goes
    env.restore("latest", &target, ["--overwrite"]).ok();
    assert_eq!(
        fs::read(target.join("existing.txt")).unwrap(),
        b"already here\n"
    );
    assert_same_tree(&src, &restored, Compare::default());
}

#[test]
fn unknown_snapshots_are_usage_errors() {
    let env = Env::init();
    let target = env.path("t");
    // Empty repository: even latest is unknown.
    env.restore("latest", &target, Vec::<&str>::new()).code(2);
    let src = env.path("src");
    write(&src.join("a"), b"a");
    let snap = env.snapshot([src.as_os_str(), "--tag".as_ref(), "x".as_ref()]);
    let id = id_of(&snap);
    let other = if id.starts_with('0') { "1" } else { "0" }.repeat(64);
    for wanted in [
        other.as_str(),
        "deadbeef",
        "zzzz",
        "abc",
        &id[..3],
        "latest:/nope",
    ] {
        let out = env.restore(wanted, &target, Vec::<&str>::new());
        out.code(2);
        assert!(
            !target.exists() || names(&target).is_empty(),
            "{wanted}: target written"
        );
        env.run(["dump", wanted, "/a"]).code(2);
    }
    env.restore("latest", &target, ["--tag", "nope"]).code(2);
    env.run([
        "dump",
        "latest",
        src.join("a").to_str().unwrap(),
        "--host",
        "nope",
    ])
    .code(2);
    // The real one works, by full id and by 4-character prefix.
    env.run(["dump", &id, src.join("a").to_str().unwrap()]).ok();
    let unique = env.run(["dump", &id[..4], src.join("a").to_str().unwrap()]);
    unique.ok();
    assert_eq!(unique.stdout, b"a");
}

#[test]
fn missing_repository() {
    let env = Env::new();
    let out = env.run(["list"]);
    out.code(1).stderr_has(env.repo.to_str().unwrap());
    // With an explicit repository, snapshot does not create one.
    let src = env.path("src");
    write(&src.join("a"), b"a");
    let mut cmd = env.cmd(["snapshot"]);
    cmd.arg(&src);
    run_cmd(cmd).code(1).stderr_has(env.repo.to_str().unwrap());
    assert!(!env.repo.exists(), "snapshot created the repository");
    env.run(["dump", "latest", "/a"]).code(1);
    env.restore("latest", &env.path("t"), Vec::<&str>::new())
        .code(1);
    assert!(!env.path("t").exists());
    // A second init is refused.
    env.run(["init", "--encryption", "none"]).ok();
    env.run(["init", "--encryption", "none"])
        .fails()
        .stderr_has("already exists");
}

#[test]
fn dump_of_non_files() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("dir/file"), b"content");
    std::os::unix::fs::symlink("dir/file", src.join("link")).unwrap();
    env.snapshot([&src]);
    let dir = src.join("dir");
    let out = env.run(["dump", "latest", dir.to_str().unwrap()]);
    out.fails().stderr_has("not a regular file");
    assert!(out.stdout.is_empty());
    env.run(["dump", "latest", src.join("link").to_str().unwrap()])
        .fails()
        .stderr_has("not a regular file");
    env.run(["dump", "latest", "/"]).fails();
    env.run(["dump", "latest", src.join("nope").to_str().unwrap()])
        .code(2)
        .stderr_has("does not exist");
    let ok = env.run(["dump", "latest", src.join("dir/file").to_str().unwrap()]);
    ok.ok();
    assert_eq!(ok.stdout, b"content");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    env.run(["snapshot"]).code(2); // nothing to back up
    env.run(["snapshot", "--label", "novalue", src.to_str().unwrap()])
        .code(2);
    env.run(["snapshot", "--time", "yesterday", src.to_str().unwrap()])
        .code(2);
    env.run(["snapshot", "--stdin-name", "x", src.to_str().unwrap()])
        .code(2); // needs --stdin
    env.run(["snapshot", "--exclude", "[", src.to_str().unwrap()])
        .code(2);
    env.run(["restore", "latest"]).code(2); // no --target
    env.run(["frobnicate"]).code(2);
    let fresh = Env::new();
    fresh.run(["init", "--compression", "gzip"]).code(2);
    fresh.run(["init", "--chunk-avg", "1"]).code(2);
    assert!(!fresh.repo.join("config").exists());
    assert!(env.snapshot_ids().is_empty());
}

/// A damaged pack is detected when read: the chunk digest check fails the restore and dump.
#[test]
fn damaged_pack_is_detected() {
    let env = Env::init();
    let src = env.path("src");
    write_generated(&src.join("data.bin"), 9, 2 << 20, random_bytes);
    env.snapshot([&src]);
    // Flip one byte in the middle of the (only, 2 MiB) data pack's blob area.
    let mut packs = Vec::new();
    for p in pack_files(&env.repo) {
        packs.push((fs::metadata(&p).unwrap().len(), p));
    }
    packs.sort();
    let (len, biggest) = packs.last().unwrap().clone();
    assert!(len > 1 << 20);
    let mut bytes = fs::read(&biggest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    chmod(&biggest, 0o644);
    fs::write(&biggest, &bytes).unwrap();

    let path = src.join("data.bin");
    let (code, _, _, stderr) = env.dump_digest("latest", path.to_str().unwrap(), &[]);
    assert_eq!(code, 1, "dump of damaged data succeeded: {stderr}");
    assert!(stderr.contains("damaged"), "{stderr}");
    let out = env.restore("latest", &env.path("t"), Vec::<&str>::new());
    out.code(1).stderr_has("damaged");
}

/// An I/O error is rendered as `vault: <path>: <cause>`. The engine's `Error::Io` already puts
/// its source in its own message and also returns it from `source()`, and the CLI prints the
/// chain with `{:#}`, so every I/O error names its cause twice.
#[test]
fn io_error_messages_state_their_cause_once() {
    let env = Env::init();
    let missing = env.path("does-not-exist");
    let mut cmd = env.cmd(["snapshot"]);
    cmd.arg(&missing);
    let out = run_cmd(cmd);
    out.code(1);
    let cause = "No such file or directory";
    assert_eq!(out.stderr.matches(cause).count(), 1, "{}", out.stderr);
}

/// A file that grows while vault reads it is recorded as a problem: the snapshot is committed
/// but incomplete (exit 3), naming the file.
#[test]
fn file_changing_during_snapshot_is_reported() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let env = Env::init();
    let src = env.path("src");
    let log = src.join("growing.log");
    write_generated(&log, 3, 96 << 20, compressible_bytes);
    write(&src.join("calm.txt"), b"unchanging\n");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&[b'x'; 4096]).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let mut cmd = env.cmd(["snapshot", "--json"]);
    cmd.arg(&src);
    let out = run_cmd(cmd);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    out.code(3);
    let snap = out.json();
    assert_eq!(snap["complete"], false);
    let errors = snap["summary"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{snap}");
    assert_eq!(errors[0]["path"], log.to_str().unwrap());
    assert!(
        errors[0]["reason"].as_str().unwrap().contains("changed"),
        "{snap}"
    );
    // The calm file is in the snapshot.
    let ok = env.run(["dump", "latest", src.join("calm.txt").to_str().unwrap()]);
    ok.ok();
    assert_eq!(ok.stdout, b"unchanging\n");
}

/// A reader that closed the pipe (`vault list | head -1`) ends every command quietly with
/// status 141, as SIGPIPE ends other Unix tools: no panic (`println!` used to panic, exit 101),
/// no message, and not the silent exit 1 of a failure. Deterministic: the reader is closed
/// before vault starts, so its first write to stdout fails.
#[test]
fn a_closed_stdout_ends_every_command_quietly_with_141() {
    let env = Env::init();
    let src = env.path("src");
    write_generated(&src.join("data.bin"), 3, 1 << 20, random_bytes);
    env.snapshot([&src]);
    let data = src.join("data.bin");
    let data = data.to_str().unwrap();
    let commands: [&[&str]; 9] = [
        &["list"],
        &["list", "--json"],
        &["forget", "--keep-last", "1", "--dry-run"],
        &["verify"],
        &["prune", "--dry-run"],
        &["export", "latest"],
        &["export", "latest", "--format", "tar.zst"],
        &["dump", "latest", data],
        &["snapshot", src.to_str().unwrap()],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = env.cmd(args);
        cmd.stdout(writer);
        let out = run_cmd(cmd);
        out.no_panic().code(141);
        assert_eq!(out.stderr, "", "{}: wanted no message", out.cmdline);
    }
}

/// The notice that the default repository is created unencrypted is printed even with
/// `--quiet`: with a misspelt VAULT_REPO the backups would otherwise go there unnoticed.
#[test]
fn creating_the_default_repository_is_announced_even_with_quiet() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    let mut cmd = env.cmd(["-q", "snapshot"]);
    cmd.arg(&src)
        .env_remove("VAULT_REPO")
        .env("VAULT_REPOSITORY", &env.repo);
    let out = run_cmd(cmd);
    out.ok()
        .stderr_has("creating the default repository")
        .stderr_has("NOT ENCRYPTED")
        .stderr_has("neither --repo nor VAULT_REPO is set");
    assert!(env.home.join("data/vault/repo/config").is_file());
    assert!(!env.repo.exists());
    // Only when it is created.
    let mut cmd = env.cmd(["snapshot"]);
    cmd.arg(&src).env_remove("VAULT_REPO");
    let again = run_cmd(cmd);
    again.ok();
    assert!(
        !again.stderr.contains("default repository"),
        "{}",
        again.stderr
    );
}

/// Every usage error exits 2, also those found after parsing: a bad `--keep-within` or
/// `--group-by`, and `export` to a terminal (run under `script`, which gives it one).
#[test]
fn usage_errors_found_after_parsing_exit_2() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    env.snapshot([&src]);
    env.run(["forget", "--keep-within", "3x"])
        .code(2)
        .stderr_has("--keep-within");
    env.run(["forget", "--keep-last", "1", "--group-by", "foo"])
        .code(2)
        .stderr_has("--group-by");
    let found = find_in_path("script").ok_or_else(|| "script is not in PATH".to_string());
    let Some(script) = required("script", "apt-get install util-linux", found) else {
        return;
    };
    let vault = env.cmd(["export", "latest"]);
    let mut cmd = std::process::Command::new(script);
    for (key, value) in vault.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.current_dir(env.dir.path())
        .args(["-qec", &format!("{VAULT} export latest"), "/dev/null"]);
    // The terminal is script's: vault's stderr arrives on script's stdout.
    let out = run_cmd(cmd);
    out.code(2);
    assert!(
        out.stdout_str().contains("is a terminal"),
        "{}",
        out.stdout_str()
    );
}

/// A repository path that names a file says that it is not a repository (it said
/// "config: Not a directory").
#[test]
fn a_file_is_not_a_repository() {
    let env = Env::new();
    let file = env.path("file");
    write(&file, b"not a repository");
    let src = env.path("src");
    write(&src.join("a"), b"a");
    for args in [
        vec!["list"],
        vec!["snapshot", src.to_str().unwrap()],
        vec!["init"],
    ] {
        let mut cmd = env.cmd(&args);
        cmd.env("VAULT_REPO", &file);
        run_cmd(cmd).code(1).stderr_has(&format!(
            "{}: not a vault repository: it is a file",
            file.display()
        ));
    }
    assert_eq!(fs::read(&file).unwrap(), b"not a repository");
}

/// A damaged index segment is named as a segment, once, and says that nothing is lost (it
/// was reported as "pack <segment id> could not be indexed").
#[test]
fn a_damaged_index_segment_is_named_as_a_segment() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    env.snapshot([&src]);
    let segments = names(&env.repo.join("index"));
    assert_eq!(segments.len(), 1, "{segments:?}");
    let name = segments[0].to_str().unwrap();
    let segment = env.repo.join("index").join(name);
    chmod(&segment, 0o644);
    let mut bytes = fs::read(&segment).unwrap();
    bytes[20] ^= 0x01;
    fs::write(&segment, bytes).unwrap();
    fs::remove_dir_all(&env.cache).unwrap();
    let out = env.run(["list"]);
    out.ok()
        .stderr_has(&format!("index segment {name}: damaged"))
        .stderr_has("nothing is lost");
    assert_eq!(out.stderr.matches(name).count(), 1, "{}", out.stderr);
    assert!(
        !out.stderr.contains(&format!("pack {name}")),
        "{}",
        out.stderr
    );
}

/// When a key file is damaged, a password that opens none of the intact ones may be right for
/// the damaged one: it is not called wrong, and the message says what to do.
#[test]
fn a_damaged_key_file_is_not_called_a_wrong_password() {
    use crate::util::encrypted::*;
    let enc = Enc::init();
    let second = enc.add_key("second password");
    flip_byte(&enc.repo.join("keys").join(&second), 100);
    let out = enc.run_with("second password", ["list"]);
    out.no_panic()
        .code(1)
        .stderr_has("opens none of the 1 intact key files")
        .stderr_has(&format!("keys/{second}: damaged"))
        .stderr_has("vault key add");
    assert!(!out.stderr.contains("wrong password"), "{}", out.stderr);
}

/// A damaged snapshot is reported without repeating itself: `verify` printed
/// "snapshot_damaged : snapshot ID: damaged: ..." and `list` named the id twice.
#[test]
fn a_damaged_snapshot_is_reported_once_per_line() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a"), b"a");
    let id = id_of(&env.snapshot([&src]));
    let manifest = env.repo.join("snapshots").join(&id);
    chmod(&manifest, 0o644);
    let mut bytes = fs::read(&manifest).unwrap();
    bytes[30] ^= 0x01;
    fs::write(&manifest, bytes).unwrap();
    let out = env.run(["verify"]);
    out.code(3);
    let stdout = out.stdout_str();
    for line in stdout.lines() {
        assert!(
            line.to_lowercase().matches("damaged").count() <= 1,
            "{line:?} repeats itself:\n{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("  snapshot {id}: damaged")),
        "{stdout}"
    );
    let list = env.run(["list"]);
    list.code(3).stderr_has(&format!("snapshot {id}: damaged"));
    assert_eq!(list.stderr.matches(&id).count(), 1, "{}", list.stderr);
}

/// A damaged config says what to do about it: it never changes, so a copy puts it right.
#[test]
fn a_damaged_config_says_what_to_do() {
    let env = Env::init();
    let config = env.repo.join("config");
    chmod(&config, 0o644);
    let mut bytes = fs::read(&config).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 0x01;
    fs::write(&config, bytes).unwrap();
    env.run(["list"])
        .code(1)
        .stderr_has("config: damaged")
        .stderr_has("put back `config` from a file-level copy of this repository");
}

/// An S3 repository without credentials names the variables to set (it said "failed to load
/// signing credential"). Credentials are looked for before any connection, so no server is
/// needed: nothing listens on port 9.
#[test]
fn s3_without_credentials_names_the_variables_to_set() {
    let env = Env::new();
    let mut cmd = env.cmd(["--retries", "0", "list"]);
    cmd.env("VAULT_REPO", "s3:http://127.0.0.1:9/bucket");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        cmd.env_remove(var);
    }
    run_cmd(cmd)
        .no_panic()
        .code(1)
        .stderr_has("AWS_ACCESS_KEY_ID")
        .stderr_has("AWS_SECRET_ACCESS_KEY");
}
