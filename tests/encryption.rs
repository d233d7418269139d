//! Encrypted repositories (`vault init --encryption repokey`, the default), end to end through
//! the real binary: round trips, password sources, wrong and missing passwords (nothing written),
//! key management and rotation, tamper detection in every kind of repository file (packs,
//! manifests, key files, config), blobs moved inside a pack, per-repository keys (identical
//! plaintext stored differently), no plaintext in the repository, and downgrade attempts.
//!
//! Every command runs with the cheap KDF (64 KiB, one pass) and without a controlling terminal
//! (see `util::encrypted`); all data is small, so the whole file takes a few seconds.

use super::roundtrip::check_sparse;
use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::encrypted::*;
use crate::util::*;

const KIB: usize = 1 << 10;
const MIB: u64 = 1 << 20;

/// The message of a run without any password source, and the options it must name.
const NO_PASSWORD: &str = "the repository is encrypted and no password was given";
const NO_PASSWORD_OPTIONS: [&str; 4] = [
    "--password-file",
    "--password-command",
    "VAULT_PASSWORD_COMMAND",
    "VAULT_PASSWORD",
];

/// Asserts the wrong-password refusal: exit 1, no panic, the documented message.
#[track_caller]
fn assert_wrong_password(out: &Out, keys: usize) {
    out.no_panic()
        .code(1)
        .stderr_has("wrong password")
        .stderr_has(&format!("none of its {keys} key files opens with it"))
        .stderr_has("nothing was written");
}

#[track_caller]
fn assert_no_password(out: &Out) {
    out.no_panic().code(1).stderr_has(NO_PASSWORD);
    for option in NO_PASSWORD_OPTIONS {
        out.stderr_has(option);
    }
}

/// Id of the only key whose `current` is true in a `key list --json`.
#[track_caller]
fn current_key(keys: &[Value]) -> String {
    let current: Vec<&Value> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1, "not exactly one current key: {keys:?}");
    current[0]["id"].as_str().unwrap().to_string()
}

fn key_ids(keys: &[Value]) -> BTreeSet<String> {
    keys.iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect()
}

fn key_files(env: &Env) -> BTreeSet<String> {
    names(&env.repo.join("keys"))
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

/// Every file of `src` (a small tree of regular files), relative path -> content.
fn write_files(src: &Path, files: &[(&str, Vec<u8>)]) {
    for (rel, content) in files {
        write(&src.join(rel), content);
    }
}

// ------------------------------------------------------------------------------------------------
// Round trip
// ------------------------------------------------------------------------------------------------

const SPARSE_SIZE: u64 = 16 * MIB;
const ISLANDS: [(u64, usize); 3] = [
    (0, 5000),
    (7 * MIB + 123, 70_000),
    (SPARSE_SIZE - 1000, 1000),
];

/// A tree with every kind of entry vault records (a smaller cousin of `roundtrip.rs`'s), with
/// distinct nanosecond mtimes everywhere. Returns (files, bytes) as the summary counts them.
fn build_everything(src: &Path) -> (u64, u64) {
    fs::create_dir(src).unwrap();
    let files = src.join("files");
    fs::create_dir(&files).unwrap();
    fs::File::create(files.join("empty")).unwrap();
    fs::File::create(files.join("empty-too")).unwrap();
    write(&files.join("one"), b"x");
    write(&files.join("random-4095"), &random_bytes(1, 4095));
    write(&files.join("copy-of-random-4095"), &random_bytes(1, 4095));
    write(&files.join("text-100k"), &compressible_bytes(2, 100_000));
    // ~130 chunks at 16 KiB: more than a file entry holds inline, so through a chunk list.
    write_generated(&files.join("random-2MiB+1"), 3, 2 * MIB + 1, random_bytes);
    write_generated(&files.join("text-1MiB"), 4, MIB, compressible_bytes);

    let mut deep = src.join("deep");
    for level in 0..20 {
        deep = deep.join(format!("level-{level:02}"));
    }
    fs::create_dir_all(&deep).unwrap();
    write(&deep.join("bottom.txt"), b"the bottom\n");

    let links = src.join("links");
    fs::create_dir(&links).unwrap();
    symlink("../files/one", links.join("relative")).unwrap();
    symlink(files.join("one"), links.join("absolute")).unwrap();
    symlink("no/such/file", links.join("dangling")).unwrap();
    symlink("../deep", links.join("to-dir")).unwrap();
    symlink("y".repeat(1000), links.join("long-target")).unwrap();

    let hard = src.join("hard");
    fs::create_dir_all(hard.join("a")).unwrap();
    fs::create_dir_all(hard.join("b")).unwrap();
    write(&hard.join("a/pair-1"), b"two names, one directory\n");
    fs::hard_link(hard.join("a/pair-1"), hard.join("a/pair-2")).unwrap();
    write_generated(&hard.join("a/big"), 8, MIB + 17, random_bytes);
    fs::hard_link(hard.join("a/big"), hard.join("b/big-2")).unwrap();
    fs::hard_link(hard.join("a/big"), hard.join("b/big-3")).unwrap();
    fs::File::create(hard.join("b/empty-linked")).unwrap();
    fs::hard_link(hard.join("b/empty-linked"), hard.join("a/empty-linked-2")).unwrap();

    let sparse = src.join("sparse");
    fs::create_dir(&sparse).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(sparse.join("islands")).unwrap();
        f.set_len(SPARSE_SIZE).unwrap();
        for (i, (off, len)) in ISLANDS.iter().enumerate() {
            f.write_all_at(&random_bytes(100 + i as u64, *len), *off)
                .unwrap();
        }
        let g = fs::File::create(sparse.join("trailing-hole")).unwrap();
        g.write_all_at(b"data at the start", 0).unwrap();
        g.set_len(8 * MIB).unwrap();
    }

    let odd = src.join("names");
    fs::create_dir(&odd).unwrap();
    write(&bytes_path(&odd, b"latin1-caf\xe9"), b"cafe\n");
    write(&odd.join("spaces and\ttab\nnewline"), b"ws\n");
    write(&odd.join("\u{1F600} emoji"), b"utf8\n");
    let odd_dir = bytes_path(&odd, b"dir-\x80\xff");
    fs::create_dir(&odd_dir).unwrap();
    write(&odd_dir.join("inside"), b"inside a non-UTF-8 directory\n");
    fs::hard_link(odd_dir.join("inside"), odd_dir.join("inside-linked")).unwrap();
    symlink(
        std::ffi::OsStr::from_bytes(b"\xff\xfe"),
        bytes_path(&odd, b"link-\xfe"),
    )
    .unwrap();

    let special = src.join("special");
    fs::create_dir(&special).unwrap();
    mkfifo(&special.join("fifo"), 0o640);

    let many = src.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..200u64 {
        let mut content = format!("small file {i}\n").into_bytes();
        content.extend_from_slice(&random_bytes(i, (i % 100) as usize));
        fs::write(many.join(format!("f{i:03}.txt")), content).unwrap();
    }

    let modes = src.join("modes");
    fs::create_dir(&modes).unwrap();
    for (name, mode) in [
        ("0600", 0o600),
        ("0755", 0o755),
        ("0444", 0o444),
        ("0000", 0o000),
        ("4755-setuid", 0o4755),
        ("2755-setgid", 0o2755),
    ] {
        let p = modes.join(name);
        write(&p, name.as_bytes());
        chmod(&p, mode);
    }
    let sticky = modes.join("sticky-dir");
    fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    let private = modes.join("private-dir");
    fs::create_dir(&private).unwrap();
    write(&private.join("secret"), b"secret\n");
    chmod(&private, 0o700);
    let readonly = modes.join("readonly-dir");
    fs::create_dir(&readonly).unwrap();
    write(&readonly.join("kept"), b"in a read-only directory\n");
    chmod(&readonly, 0o555);
    if is_root() {
        lchown(&modes.join("0600"), 1234, 5678);
        lchown(&links.join("relative"), 4321, 8765);
        lchown(&hard.join("a/pair-1"), 3333, 4444);
    }

    let mut n = 0i64;
    set_all_mtimes(src, &mut n);
    set_mtime(&files.join("one"), -14_182_940, 123_456_789); // 1969
    set_mtime(&files.join("empty"), 4_102_444_800, 999_999_999); // 2100
    set_mtime(&special.join("fifo"), 1_234_567_890, 987_654_321);

    let mut count = (0, 0);
    for (_, node) in scan(src) {
        if node.kind == Kind::File {
            count.0 += 1;
            count.1 += node.size;
        }
    }
    count
}

#[test]
fn round_trip_of_every_kind_of_entry_and_a_stream() {
    let (enc, _) = Enc::init_with(&[
        "--chunk-min",
        "4KiB",
        "--chunk-avg",
        "16KiB",
        "--chunk-max",
        "64KiB",
    ]);
    let src = enc.path("src");
    let (files, bytes) = build_everything(&src);

    let snap = enc.snapshot([&src]);
    assert_eq!(summary(&snap, "files"), files, "{snap}");
    assert_eq!(summary(&snap, "bytes_total"), bytes, "{snap}");
    assert_eq!(snap["summary"]["errors"], serde_json::json!([]), "{snap}");
    assert!(summary(&snap, "chunks_total") > 150, "{snap}");

    let stream = {
        use std::io::Read;
        let mut v = Vec::new();
        SqlDump::new(5).bytes(3 * MIB).read_to_end(&mut v).unwrap();
        v
    };
    let ssnap = enc.snapshot_stdin("db/dump.sql", &stream, &["--tag", "db"]);
    assert_eq!(summary(&ssnap, "bytes_total"), stream.len() as u64);
    assert!(summary(&ssnap, "chunks_total") > 50, "{ssnap}");

    let target = enc.path("restore-1");
    enc.restore(&id_of(&snap), &target, Vec::<&str>::new())
        .ok()
        .no_panic();
    let restored = Env::restored(&target, &src);
    assert_same_tree(&src, &restored, Compare::default());
    check_sparse(&src, &restored);

    // The stream: dumped byte for byte, and restored as a file under the target.
    let out = enc.dump("latest", "/db/dump.sql");
    out.ok();
    assert!(
        out.stdout == stream,
        "dumped stream differs from what was fed"
    );
    let starget = enc.path("restore-stream");
    enc.restore(&id_of(&ssnap), &starget, Vec::<&str>::new())
        .ok();
    assert!(fs::read(starget.join("db/dump.sql")).unwrap() == stream);
    // A file through dump as well.
    let big = src.join("files/random-2MiB+1");
    let out = enc.dump(&id_of(&snap), big.to_str().unwrap());
    out.ok();
    assert!(out.stdout == fs::read(&big).unwrap(), "dump of {big:?}");

    // The unchanged tree again: every file reused through the (encrypted) parent snapshot,
    // nothing stored again; the restore is the same tree.
    let snap2 = enc.snapshot([&src]);
    assert_eq!(summary(&snap2, "files_unchanged"), files, "{snap2}");
    assert_eq!(summary(&snap2, "chunks_new"), 0, "{snap2}");
    let target2 = enc.path("restore-2");
    enc.restore(&id_of(&snap2), &target2, Vec::<&str>::new())
        .ok();
    assert_same_tree(&src, &Env::restored(&target2, &src), Compare::default());

    let v = enc.verify(&["--read-data"], 0);
    assert_eq!(v["report"]["snapshots"], 3, "{v:#}");
}

// ------------------------------------------------------------------------------------------------
// Init, passwords
// ------------------------------------------------------------------------------------------------

#[test]
fn init_encrypts_by_default() {
    // Without a password: refused at once, nothing created.
    let enc = Enc::new();
    assert_no_password(&enc.run_bare(["init", "--json"]));
    assert!(
        fs::symlink_metadata(&enc.repo).is_err(),
        "init without a password created the repository"
    );
    // An empty password protects nothing.
    enc.run_with("", ["init"]).code(1).stderr_has("empty");
    assert!(fs::symlink_metadata(&enc.repo).is_err());

    let out = enc.run(["init", "--json"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["encrypted"], true, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let config = fs::read(enc.repo.join("config")).unwrap();
    let payload: Value = serde_json::from_slice(sealed_payload(&config)).unwrap();
    assert_eq!(payload["encryption"]["scheme"], "repokey", "{payload}");
    assert_eq!(
        payload["encryption"]["aead"], "aes-256-gcm-blake3-subkey",
        "{payload}"
    );
    assert_eq!(
        payload["encryption"]["mac"].as_str().map(str::len),
        Some(64)
    );
    // One key file, named by its BLAKE3, and the marker in the cache.
    let key = only_file(&enc.repo.join("keys"));
    assert_eq!(
        blake3::hash(&fs::read(&key).unwrap()).to_hex().as_str(),
        key.file_name().unwrap().to_str().unwrap()
    );
    assert!(enc.cache.join(&id).join("encrypted").is_file());
    let keys = enc.keys_with(PASSWORD);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["current"], true);
    assert_eq!(keys[0]["kdf"]["algorithm"], "argon2id");
    assert_eq!(
        keys[0]["kdf"]["memory_kib"], 64,
        "VAULT_KDF_MEMORY ignored: {keys:?}"
    );
    assert_eq!(
        keys[0]["kdf"]["passes"], 1,
        "VAULT_KDF_PASSES ignored: {keys:?}"
    );
    // A second init is refused before any password is asked for.
    enc.run_bare(["init"]).code(2).stderr_has("already exists");

    // --encryption none is the explicit way out.
    let plain = Enc::new();
    let out = plain.run_bare(["init", "--json", "--encryption", "none"]);
    out.ok();
    assert_eq!(out.json()["encrypted"], false);
    assert!(!plain.repo.join("keys").exists() || names(&plain.repo.join("keys")).is_empty());
}

#[test]
fn without_any_password_source_every_command_fails_at_once_and_writes_nothing() {
    let enc = Enc::init();
    let src = enc.path("src");
    write(&src.join("a.txt"), b"a\n");
    let snap = id_of(&enc.snapshot([&src]));
    let before = state(&enc);
    let target = enc.path("target");
    let target_arg = target.to_str().unwrap().to_string();
    let src_arg = src.to_str().unwrap().to_string();
    let file_arg = src.join("a.txt").to_str().unwrap().to_string();
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["snapshot", &src_arg],
        vec!["restore", "latest", "--target", &target_arg],
        vec!["dump", "latest", &file_arg],
        vec!["verify", "--read-data"],
        vec!["key", "list"],
        vec!["forget", &snap],
        vec!["prune"],
    ] {
        assert_no_password(&enc.run_bare(&args));
    }
    let fed = Fed::spawn(
        enc.cmd_bare(["snapshot", "--stdin"]),
        std::io::Cursor::new(b"streamed".to_vec()),
    )
    .wait();
    assert_no_password(&fed.out);
    assert_state_unchanged(&enc, &before, "a command without a password");
    assert!(!target.exists(), "restore target created");

    // On a machine that never opened the repository, not even the cache directory appears.
    fs::remove_dir_all(&enc.cache).unwrap();
    assert_no_password(&enc.run_bare(["list"]));
    assert!(fs::symlink_metadata(&enc.cache).is_err(), "cache created");
    assert_eq!(enc.list().len(), 1);
}

#[test]
fn wrong_password_is_refused_and_nothing_is_written() {
    let enc = Enc::init();
    let src = enc.path("src");
    write(&src.join("a.txt"), b"a\n");
    let first = id_of(&enc.snapshot([&src]));
    write(&src.join("b.txt"), b"b\n");
    enc.snapshot([&src]);
    let key = current_key(&enc.keys_with(PASSWORD));
    let before = state(&enc);

    let target = enc.path("target");
    let target_arg = target.to_str().unwrap().to_string();
    let src_arg = src.to_str().unwrap().to_string();
    let file_arg = src.join("a.txt").to_str().unwrap().to_string();
    let new_password_file = enc.path("new-password");
    write(&new_password_file, b"another password\n");
    let npf = new_password_file.to_str().unwrap().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["list"],
        vec!["snapshot", &src_arg],
        vec!["restore", "latest", "--target", &target_arg],
        vec!["dump", "latest", &file_arg],
        vec!["verify", "--read-data"],
        vec!["forget", "--keep-last", "1"],
        vec!["forget", &first],
        vec!["prune"],
        vec!["protect", &first],
        vec!["index", "rebuild"],
        vec!["unlock"],
        vec!["key", "list"],
        vec!["key", "add", "--new-password-file", &npf],
        vec!["key", "passwd", "--new-password-file", &npf],
        vec!["key", "remove", &key],
    ];
    for wrong in [
        "wrong",
        "Correct horse battery staple",
        &format!("{PASSWORD} "),
        // VAULT_PASSWORD is taken as it is: no newline is stripped from it.
        &format!("{PASSWORD}\n"),
        &PASSWORD[..PASSWORD.len() - 1],
        "",
    ] {
        assert_wrong_password(&enc.run_with(wrong, ["list"]), 1);
    }
    for args in &commands {
        assert_wrong_password(&enc.run_with("wrong", args), 1);
    }
    let fed = Fed::spawn(
        enc.cmd_with("wrong", ["snapshot", "--stdin", "--stdin-name", "x"]),
        std::io::Cursor::new(b"streamed".to_vec()),
    )
    .wait();
    assert_wrong_password(&fed.out, 1);
    assert_state_unchanged(&enc, &before, "a command with a wrong password");
    assert!(!target.exists(), "restore target created");

    // A machine without a cache: none is created.
    fs::remove_dir_all(&enc.cache).unwrap();
    assert_wrong_password(&enc.run_with("wrong", ["snapshot", &src_arg]), 1);
    assert!(fs::symlink_metadata(&enc.cache).is_err(), "cache created");
    // The right password still opens everything.
    assert_eq!(enc.list().len(), 2);
}

#[test]
fn password_sources_and_their_precedence() {
    let enc = Enc::init();
    let src = enc.path("src");
    write(&src.join("a.txt"), b"a\n");
    enc.snapshot([&src]);
    let file = |name: &str, content: String| {
        let p = enc.path(name);
        write(&p, content.as_bytes());
        p.to_str().unwrap().to_string()
    };
    let right = file("right", format!("{PASSWORD}\n"));
    let right_bare = file("right-bare", PASSWORD.to_string());
    let right_crlf = file("right-crlf", format!("{PASSWORD}\r\n"));
    let two_newlines = file("two-newlines", format!("{PASSWORD}\n\n"));
    let wrong = file("wrong", "not it\n".to_string());
    let right_cmd = format!("cat '{right}'");
    let wrong_cmd = format!("cat '{wrong}'");
    let noisy_cmd = format!("echo noise >&2; {right_cmd}");
    let printf_cmd = format!("printf %s '{PASSWORD}'");
    let missing = enc.path("no-such-file").to_str().unwrap().to_string();

    enum Expect {
        Opens,
        Wrong,
        Fails(&'static str),
    }
    use Expect::*;
    // (description, flags, environment, expected)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, Expect);
    let cases: Vec<Case> = vec![
        (
            "--password-file",
            vec!["--password-file", &right],
            vec![],
            Opens,
        ),
        (
            "file without newline",
            vec!["--password-file", &right_bare],
            vec![],
            Opens,
        ),
        (
            "file with CRLF",
            vec!["--password-file", &right_crlf],
            vec![],
            Opens,
        ),
        (
            "only one newline is stripped",
            vec!["--password-file", &two_newlines],
            vec![],
            Wrong,
        ),
        (
            "VAULT_PASSWORD_FILE",
            vec![],
            vec![("VAULT_PASSWORD_FILE", &right)],
            Opens,
        ),
        (
            "--password-command",
            vec!["--password-command", &right_cmd],
            vec![],
            Opens,
        ),
        (
            "command output without newline",
            vec!["--password-command", &printf_cmd],
            vec![],
            Opens,
        ),
        (
            "command's stderr is not the password",
            vec!["--password-command", &noisy_cmd],
            vec![],
            Opens,
        ),
        (
            "VAULT_PASSWORD_COMMAND",
            vec![],
            vec![("VAULT_PASSWORD_COMMAND", &right_cmd)],
            Opens,
        ),
        (
            "VAULT_PASSWORD",
            vec![],
            vec![("VAULT_PASSWORD", PASSWORD)],
            Opens,
        ),
        (
            "file beats command and env",
            vec!["--password-file", &right, "--password-command", &wrong_cmd],
            vec![("VAULT_PASSWORD", "not it")],
            Opens,
        ),
        (
            "a wrong file is not overridden by a right command or env",
            vec!["--password-file", &wrong, "--password-command", &right_cmd],
            vec![("VAULT_PASSWORD", PASSWORD)],
            Wrong,
        ),
        (
            "command beats env",
            vec!["--password-command", &right_cmd],
            vec![("VAULT_PASSWORD", "not it")],
            Opens,
        ),
        (
            "a wrong command is not overridden by a right env",
            vec!["--password-command", &wrong_cmd],
            vec![("VAULT_PASSWORD", PASSWORD)],
            Wrong,
        ),
        (
            "VAULT_PASSWORD_COMMAND beats VAULT_PASSWORD",
            vec![],
            vec![
                ("VAULT_PASSWORD_COMMAND", &wrong_cmd),
                ("VAULT_PASSWORD", PASSWORD),
            ],
            Wrong,
        ),
        (
            "--password-file beats VAULT_PASSWORD_FILE",
            vec!["--password-file", &right],
            vec![("VAULT_PASSWORD_FILE", &wrong)],
            Opens,
        ),
        (
            "VAULT_PASSWORD_FILE beats --password-command",
            vec!["--password-command", &right_cmd],
            vec![("VAULT_PASSWORD_FILE", &wrong)],
            Wrong,
        ),
        (
            "an unreadable file fails, no fallback",
            vec!["--password-file", &missing],
            vec![("VAULT_PASSWORD", PASSWORD)],
            Fails("no-such-file"),
        ),
        (
            "a failing command fails, no fallback",
            vec!["--password-command", "echo nope; exit 7"],
            vec![("VAULT_PASSWORD", PASSWORD)],
            Fails("password command"),
        ),
    ];
    for (what, flags, vars, expect) in cases {
        let mut cmd = enc.cmd_bare(&flags);
        cmd.args(["key", "list", "--json"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = run_cmd(cmd);
        out.no_panic();
        match expect {
            Opens => {
                assert_eq!(out.code, 0, "{what}: {}", out.stderr);
                assert_eq!(
                    out.json()["keys"].as_array().map(Vec::len),
                    Some(1),
                    "{what}"
                );
            }
            Wrong => {
                assert_eq!(out.code, 1, "{what}: {}", out.stderr);
                assert!(
                    out.stderr.contains("wrong password"),
                    "{what}: {}",
                    out.stderr
                );
            }
            Fails(needle) => {
                assert_eq!(out.code, 1, "{what}: {}", out.stderr);
                assert!(out.stderr.contains(needle), "{what}: {}", out.stderr);
                assert!(
                    !out.stderr.contains("wrong password"),
                    "{what}: {}",
                    out.stderr
                );
            }
        }
    }

    // The same sources work for init.
    for (flag, value) in [
        ("--password-file", &right),
        ("--password-command", &right_cmd),
    ] {
        let other = Enc::new();
        let mut cmd = other.cmd_bare(["init", "--json", flag, value]);
        cmd.current_dir(enc.dir.path());
        let out = run_cmd(cmd);
        out.ok();
        assert_eq!(out.json()["encrypted"], true);
        other.run(["list"]).ok();
        assert_wrong_password(&other.run_with("not it", ["list"]), 1);
    }
}

// ------------------------------------------------------------------------------------------------
// Keys
// ------------------------------------------------------------------------------------------------

#[test]
fn a_removed_key_no_longer_opens_the_repository() {
    let enc = Enc::init();
    let src = enc.path("src");
    write(&src.join("a.txt"), b"a\n");
    let snap = id_of(&enc.snapshot([&src]));
    let first = current_key(&enc.keys_with(PASSWORD));

    let second = enc.add_key("second password");
    assert_ne!(first, second);
    assert_eq!(key_files(&enc), [first.clone(), second.clone()].into());
    let keys = enc.keys_with(PASSWORD);
    assert_eq!(key_ids(&keys), [first.clone(), second.clone()].into());
    assert_eq!(current_key(&keys), first);
    assert_eq!(current_key(&enc.keys_with("second password")), second);

    // Remove the first key (by a prefix), unlocked with the second.
    let out = enc.run_with("second password", ["key", "remove", "--json", &first[..12]]);
    out.ok();
    assert_eq!(out.json()["id"], first.as_str());
    assert_eq!(key_files(&enc), [second.clone()].into());
    assert_wrong_password(&enc.run_with(PASSWORD, ["list"]), 1);
    assert_wrong_password(
        &enc.run_with(PASSWORD, ["snapshot", src.to_str().unwrap()]),
        1,
    );
    let mut cmd = enc.cmd_with("second password", ["restore", &snap, "--target"]);
    cmd.arg(enc.path("t"));
    run_cmd(cmd).ok();
    assert_same_tree(
        &src,
        &Env::restored(&enc.path("t"), &src),
        Compare::default(),
    );
}

#[test]
fn key_rotation_keeps_every_snapshot_restorable() {
    let enc = Enc::init();
    let src1 = enc.path("src1");
    let src2 = enc.path("src2");
    write_files(
        &src1,
        &[
            ("a.txt", compressible_bytes(1, 50 * KIB)),
            ("r.bin", random_bytes(2, 300 * KIB)),
        ],
    );
    write_files(
        &src2,
        &[
            ("a.txt", compressible_bytes(3, 70 * KIB)),
            ("r.bin", random_bytes(2, 300 * KIB)),
            ("new.bin", random_bytes(4, 100 * KIB)),
        ],
    );
    let s1 = id_of(&enc.snapshot([&src1]));
    let s2 = id_of(&enc.snapshot([&src2]));
    let stream = random_bytes(5, 200 * KIB);
    let s3 = id_of(&enc.snapshot_stdin("stream.bin", &stream, &[]));
    let old = current_key(&enc.keys_with(PASSWORD));

    // Add a new key, remove the old one with it.
    let new_file = enc.path("new-password");
    write(&new_file, b"rotated password\n");
    let mut cmd = enc.cmd(["key", "add", "--json", "--new-password-file"]);
    cmd.arg(&new_file);
    let out = run_cmd(cmd);
    out.ok();
    let new = out.json()["id"].as_str().unwrap().to_string();
    enc.run_with("rotated password", ["key", "remove", &old])
        .ok();
    assert_eq!(key_files(&enc), [new.clone()].into());
    assert_wrong_password(&enc.run_with(PASSWORD, ["list"]), 1);

    let check_all = |password: &str, tag: &str| {
        for (snap, src) in [(&s1, &src1), (&s2, &src2)] {
            let target = enc.path(format!("{tag}-{}", &snap[..8]));
            let mut cmd = enc.cmd_with(password, ["restore", snap.as_str(), "--target"]);
            cmd.arg(&target);
            run_cmd(cmd).ok();
            assert_same_tree(src, &Env::restored(&target, src), Compare::default());
        }
        let out = enc.run_with(password, ["dump", &s3, "/stream.bin"]);
        out.ok();
        assert!(out.stdout == stream, "stream differs after rotation");
    };
    check_all("rotated password", "after-add");

    // `key passwd`: the current key is replaced, with the KDF cost given by flags.
    let mut cmd = enc.cmd_with(
        "rotated password",
        [
            "key",
            "passwd",
            "--json",
            "--kdf-memory",
            "128KiB",
            "--kdf-passes",
            "2",
        ],
    );
    cmd.env("VAULT_NEW_PASSWORD", "third password");
    let out = run_cmd(cmd);
    out.ok();
    let third = out.json()["id"].as_str().unwrap().to_string();
    assert_eq!(key_files(&enc), [third.clone()].into());
    assert_wrong_password(&enc.run_with("rotated password", ["list"]), 1);
    assert_wrong_password(&enc.run_with(PASSWORD, ["list"]), 1);
    let keys = enc.keys_with("third password");
    assert_eq!(current_key(&keys), third);
    assert_eq!(keys[0]["kdf"]["memory_kib"], 128, "{keys:?}");
    assert_eq!(keys[0]["kdf"]["passes"], 2, "{keys:?}");
    check_all("third password", "after-passwd");

    // Same repository keys behind the new password: a new snapshot deduplicates against the
    // old ones, and everything verifies.
    let mut cmd = enc.cmd_with("third password", ["snapshot", "--json", "--force-read"]);
    cmd.arg(&src1);
    let out = run_cmd(cmd);
    out.ok();
    assert_eq!(
        summary(&out.json(), "chunks_new"),
        0,
        "{}",
        out.stdout_str()
    );
    let out = enc.run_with("third password", ["verify", "--read-data", "--json"]);
    out.ok();
    assert_eq!(out.json()["clean"], true);
}

#[test]
fn key_remove_refuses_the_last_key_and_the_current_key() {
    let enc = Enc::init();
    let first = current_key(&enc.keys_with(PASSWORD));
    let before = fingerprint(&enc.repo);
    enc.run(["key", "remove", &first])
        .code(2)
        .stderr_has("last key");
    enc.run(["key", "remove", &first[..8]])
        .code(2)
        .stderr_has("last key");
    // (The index cache is refreshed by every unlock; the repository itself is what counts.)
    assert_eq!(
        fingerprint(&enc.repo),
        before,
        "a refused key remove changed the repository"
    );

    let second = enc.add_key("second password");
    let before = fingerprint(&enc.repo);
    enc.run(["key", "remove", &first])
        .code(2)
        .stderr_has("unlocked with");
    enc.run(["key", "remove", "0000000000"])
        .code(2)
        .stderr_has("no such key");
    enc.run(["key", "remove", "zz"]).code(2);
    // (The index cache is refreshed by every unlock; the repository itself is what counts.)
    assert_eq!(
        fingerprint(&enc.repo),
        before,
        "a refused key remove changed the repository"
    );
    assert_eq!(key_files(&enc), [first.clone(), second.clone()].into());

    // The other key may remove it; then the survivor is the last one.
    enc.run_with("second password", ["key", "remove", &first])
        .ok();
    enc.run_with("second password", ["key", "remove", &second])
        .code(2);
    assert_eq!(key_files(&enc), [second].into());
    // Key commands on an unencrypted repository are refused cleanly.
    let plain = Env::init();
    let out = run_cmd(bare_cmd(&plain, ["key", "remove", &first]));
    out.no_panic().code(2).stderr_has("not encrypted");
}

#[test]
fn a_key_file_of_another_repository_does_not_open_this_one() {
    let a = Enc::init();
    let b = Enc::init();
    let a_key = only_file(&a.repo.join("keys"));
    let b_key = only_file(&b.repo.join("keys"));
    fs::copy(&a_key, b.repo.join("keys").join(a_key.file_name().unwrap())).unwrap();
    // Same password: b still opens, with its own key.
    let b_id = b_key.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(current_key(&b.keys_with(PASSWORD)), b_id);
    chmod(&b_key, 0o644);
    fs::remove_file(&b_key).unwrap();
    let before = state(&b);
    let out = b.run(["list"]);
    out.no_panic().code(1);
    assert!(
        out.stderr.contains("wrong password") || out.stderr.contains("damaged"),
        "{}",
        out.stderr
    );
    assert_state_unchanged(&b, &before, "opening with a foreign key file");
}

// ------------------------------------------------------------------------------------------------
// Tampering with repository files
// ------------------------------------------------------------------------------------------------

/// Chunk size of the [`Fixed`] repository: min = avg = max, so every chunk is exactly this long
/// and every sealed blob of the data pack has the same length.
const FIXED_CHUNK: usize = 4096;
const FIXED_CHUNKS: usize = 16;

/// Bytes that sealing `len` plaintext bytes gives: nonce, plaintext padded to a multiple of 64
/// (at least one byte of padding), tag.
fn sealed_len(len: usize) -> usize {
    24 + (len / 64 + 1) * 64 + 16
}

/// An encrypted repository with no compression and fixed 4 KiB chunks holding one snapshot of one
/// 64 KiB random file: its data pack is `header | 16 sealed blobs of equal length | sealed trailer
/// | footer`, so blob boundaries are known without the key.
struct Fixed {
    enc: Enc,
    file: PathBuf,
    data: Vec<u8>,
    snap: String,
    pack: PathBuf,
    others: Vec<PathBuf>,
}

impl Fixed {
    fn new() -> Fixed {
        let chunk = FIXED_CHUNK.to_string();
        let (enc, _) = Enc::init_with(&[
            "--compression",
            "none",
            "--chunk-min",
            &chunk,
            "--chunk-avg",
            &chunk,
            "--chunk-max",
            &chunk,
        ]);
        let src = enc.path("src");
        let file = src.join("data.bin");
        let data = random_bytes(77, FIXED_CHUNK * FIXED_CHUNKS);
        write(&file, &data);
        let snap = enc.snapshot([&src]);
        assert_eq!(
            summary(&snap, "chunks_total"),
            FIXED_CHUNKS as u64,
            "{snap}"
        );
        let trailer = 4 + 52 * FIXED_CHUNKS + 32;
        let expected =
            (12 + FIXED_CHUNKS * sealed_len(FIXED_CHUNK) + sealed_len(trailer) + 12) as u64;
        let (data_packs, others): (Vec<PathBuf>, Vec<PathBuf>) = pack_files(&enc.repo)
            .into_iter()
            .partition(|p| fs::metadata(p).unwrap().len() == expected);
        assert_eq!(
            data_packs.len(),
            1,
            "no pack of {expected} bytes: the layout assumed here is wrong; packs: {:?}",
            pack_files(&enc.repo)
                .iter()
                .map(|p| fs::metadata(p).unwrap().len())
                .collect::<Vec<_>>()
        );
        assert!(!others.is_empty(), "no metadata pack");
        // Undamaged, it verifies clean: whatever the tests below find, their damage caused it.
        enc.verify(&["--read-data"], 0);
        Fixed {
            enc,
            file,
            data,
            snap: id_of(&snap),
            pack: data_packs.into_iter().next().unwrap(),
            others,
        }
    }

    /// A copy of the repository and its cache in a new environment, to damage.
    fn copy(&self) -> Fixed {
        let enc = self.enc.copy();
        let moved = |p: &PathBuf| enc.repo.join(p.strip_prefix(&self.enc.repo).unwrap());
        Fixed {
            file: self.file.clone(),
            data: self.data.clone(),
            snap: self.snap.clone(),
            pack: moved(&self.pack),
            others: self.others.iter().map(moved).collect(),
            enc,
        }
    }

    fn blob_offset(i: usize) -> usize {
        12 + i * sealed_len(FIXED_CHUNK)
    }

    fn pack_id(path: &Path) -> String {
        path.file_name().unwrap().to_str().unwrap().to_string()
    }

    /// `vault dump` of the file never yields wrong bytes: it fails, or what it wrote so far is a
    /// prefix of the original (all of it on success).
    #[track_caller]
    fn dump_is_never_wrong(&self, what: &str) {
        let out = self.enc.dump(&self.snap, self.file.to_str().unwrap());
        out.no_panic();
        assert!(
            self.data.starts_with(&out.stdout),
            "{what}: dump wrote bytes that are not the file's (exit {})",
            out.code
        );
        if out.code == 0 {
            assert_eq!(
                out.stdout.len(),
                self.data.len(),
                "{what}: dump short but exit 0"
            );
        }
    }

    /// `verify --read-data` finds the damage in `pack`: exit 3, not clean, a problem naming the
    /// pack, the human report says so too. Returns the JSON.
    #[track_caller]
    fn verify_finds(&self, pack: &Path, what: &str) -> Value {
        let v = self.enc.verify(&["--read-data"], 3);
        let problems = problem_list(&v);
        let id = Self::pack_id(pack);
        assert!(
            problems.iter().any(|(_, p, _, _)| *p == id),
            "{what}: no problem names pack {id}: {v:#}"
        );
        let out = self.enc.run(["verify", "--read-data"]);
        out.no_panic().code(3);
        let text = out.stdout_str();
        assert!(
            text.contains("PROBLEMS FOUND") && !text.contains("clean"),
            "{what}: {text}"
        );
        v
    }
}

/// A prune that repacks seals every surviving blob again: no ciphertext of the old pack is in
/// the new one, so comparing packs before and after does not show where each blob lies.
#[test]
fn repacked_blobs_are_sealed_again() {
    let chunk = FIXED_CHUNK.to_string();
    let (enc, _) = Enc::init_with(&[
        "--compression",
        "none",
        "--chunk-min",
        &chunk,
        "--chunk-avg",
        &chunk,
        "--chunk-max",
        &chunk,
    ]);
    let src = enc.path("src");
    let keep = random_bytes(61, FIXED_CHUNK * 12);
    write(&src.join("keep.bin"), &keep);
    write(&src.join("drop.bin"), &random_bytes(62, FIXED_CHUNK * 12));
    let first = id_of(&enc.snapshot([&src]));
    let old_packs: Vec<(PathBuf, Vec<u8>)> = pack_files(&enc.repo)
        .into_iter()
        .map(|p| {
            let d = fs::read(&p).unwrap();
            (p, d)
        })
        .collect();
    fs::remove_file(src.join("drop.bin")).unwrap();
    let second = id_of(&enc.snapshot([&src]));
    enc.run(["forget", &first]).ok();
    let out = enc.run(["prune", "--max-unused", "0%"]);
    out.ok().no_panic();
    let new_packs: Vec<PathBuf> = pack_files(&enc.repo)
        .into_iter()
        .filter(|p| !old_packs.iter().any(|(o, _)| o == p))
        .collect();
    assert!(
        old_packs.iter().any(|(p, _)| !p.exists()) && !new_packs.is_empty(),
        "prune repacked nothing: {}",
        out.stdout_str()
    );
    let new_windows = windows(&new_packs, 32);
    for (path, data) in &old_packs {
        // The blob area: after the 12-byte header, before the sealed trailer and footer.
        let shared = data[12..data.len() - 12 - 100]
            .windows(32)
            .filter(|w| new_windows.contains(*w))
            .count();
        assert_eq!(
            shared,
            0,
            "{shared} 32-byte runs of {} are in the repacked packs",
            path.display()
        );
    }
    let t = enc.path("t");
    enc.restore(&second, &t, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&t, &src), Compare::default());
    enc.verify(&["--read-data"], 0);
}

#[test]
fn a_flipped_byte_anywhere_in_a_pack_is_found_by_read_data() {
    let sealed = sealed_len(FIXED_CHUNK) as i64;
    let trailer = sealed_len(4 + 52 * FIXED_CHUNKS + 32) as i64;
    // (what, in the data pack?, offset; negative from the end)
    let cases: Vec<(&str, bool, i64)> = vec![
        ("blob nonce", true, Fixed::blob_offset(0) as i64),
        ("blob ciphertext", true, Fixed::blob_offset(7) as i64 + 2000),
        ("blob tag", true, Fixed::blob_offset(16) as i64 - 1),
        (
            "blob padding",
            true,
            Fixed::blob_offset(3) as i64 + sealed - 16 - 10,
        ),
        ("header magic", true, 0),
        ("header version", true, 8),
        ("trailer nonce", true, -12 - trailer),
        ("trailer ciphertext", true, -12 - trailer / 2),
        ("trailer tag", true, -13),
        ("footer trailer_len", true, -12),
        ("footer magic", true, -1),
        ("metadata pack blob", false, 12 + 30),
        ("metadata pack header", false, 3),
        ("metadata pack trailer", false, -20),
    ];
    let pristine = Fixed::new();
    for (what, data_pack, offset) in cases {
        let fx = pristine.copy();
        let pack = if data_pack {
            fx.pack.clone()
        } else {
            fx.others[0].clone()
        };
        flip_byte(&pack, offset);
        fx.dump_is_never_wrong(what);
        let v = fx.verify_finds(&pack, what);
        if data_pack && what.starts_with("blob") {
            let problems = problem_list(&v);
            assert!(
                problems
                    .iter()
                    .any(|(kind, _, _, _)| kind == "blob_damaged"),
                "{what}: {v:#}"
            );
            assert_eq!(
                v["damaged_snapshots"],
                serde_json::json!([fx.snap]),
                "{what}: {v:#}"
            );
        }
        // A restore does not pass damaged data off as good either.
        let target = fx.enc.path("t");
        let out = fx.enc.restore(&fx.snap, &target, Vec::<&str>::new());
        out.no_panic();
        if out.code == 0 {
            let restored = Env::restored(&target, &fx.file);
            assert!(
                fs::read(&restored).unwrap() == fx.data,
                "{what}: restore exited 0 with wrong content"
            );
        }
    }
}

#[test]
fn blobs_moved_or_swapped_inside_a_pack_are_detected() {
    let size = sealed_len(FIXED_CHUNK);
    let region = |i: usize| Fixed::blob_offset(i)..Fixed::blob_offset(i) + size;
    // (what, slot -> the slot whose bytes it gets), number of blobs out of place
    type Case<'a> = (&'a str, Vec<(usize, usize)>, usize);
    let cases: Vec<Case> = vec![
        ("swap 0 and 1", vec![(0, 1), (1, 0)], 2),
        ("swap 3 and 15", vec![(3, 15), (15, 3)], 2),
        ("rotate 4, 5, 6", vec![(4, 6), (5, 4), (6, 5)], 3),
        ("copy 8 over 9", vec![(9, 8)], 1),
    ];
    let pristine = Fixed::new();
    for (what, moves, moved) in cases {
        let fx = pristine.copy();
        let original = fs::read(&fx.pack).unwrap();
        let mut data = original.clone();
        for (to, from) in &moves {
            data[region(*to)].copy_from_slice(&original[region(*from)]);
        }
        rewrite(&fx.pack, &data);
        fx.dump_is_never_wrong(what);
        let v = fx.verify_finds(&fx.pack, what);
        let id = Fixed::pack_id(&fx.pack);
        let problems = problem_list(&v);
        let damaged: BTreeSet<&String> = problems
            .iter()
            .filter(|(kind, pack, _, _)| kind == "blob_damaged" && *pack == id)
            .map(|(_, _, blob, _)| blob)
            .collect();
        assert_eq!(damaged.len(), moved, "{what}: {v:#}");
        assert!(
            problems.iter().all(|(_, pack, _, _)| *pack == id),
            "{what}: a problem outside the pack: {v:#}"
        );
        assert_eq!(
            v["damaged_snapshots"],
            serde_json::json!([fx.snap]),
            "{what}: {v:#}"
        );
    }
}

#[test]
fn damaged_or_forged_snapshot_manifests_are_reported() {
    let setup = || {
        let enc = Enc::init();
        write(&enc.path("a/x.txt"), b"first\n");
        write(&enc.path("b/y.txt"), b"second\n");
        let s1 = id_of(&enc.snapshot([enc.path("a")]));
        let s2 = id_of(&enc.snapshot([enc.path("b")]));
        (enc, s1, s2)
    };
    let check = |enc: &Enc, bad: &str, good: &str, what: &str, detail: Option<&str>| {
        let v = enc.verify(&[], 3);
        assert_eq!(
            v["damaged_snapshots"],
            serde_json::json!([bad]),
            "{what}: {v:#}"
        );
        let problems = problem_list(&v);
        assert!(
            problems
                .iter()
                .any(|(kind, _, _, d)| kind == "snapshot_damaged"
                    && d.contains(bad)
                    && detail.is_none_or(|want| d.contains(want))),
            "{what}: {v:#}"
        );
        let out = enc.run(["list", "--json"]);
        out.no_panic().code(3).stderr_has(bad);
        let listed: Vec<String> = out.json()["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect();
        assert_eq!(listed, vec![good.to_string()], "{what}");
        let t = enc.path(format!("t-{}", &bad[..8]));
        let out = enc.restore(bad, &t, Vec::<&str>::new());
        out.no_panic().fails();
        let t = enc.path("t-good");
        enc.restore(good, &t, Vec::<&str>::new()).ok();
    };

    // A flipped byte: the name (its BLAKE3) no longer matches.
    for offset in [3i64, 9, 13, 100, -40, -1] {
        let (enc, s1, s2) = setup();
        flip_byte(&enc.repo.join("snapshots").join(&s1), offset);
        check(&enc, &s1, &s2, &format!("flip at {offset}"), None);
    }

    // Someone without the key changes the sealed payload and makes the envelope checksum and
    // the name right again: the AEAD still refuses it.
    for offset in [0usize, 30, 200] {
        let (enc, s1, s2) = setup();
        let path = enc.repo.join("snapshots").join(&s1);
        let file = fs::read(&path).unwrap();
        let mut payload = sealed_payload(&file).to_vec();
        let at = offset.min(payload.len() - 1);
        payload[at] ^= 0x01;
        let forged = replace_named(&path, &reseal(&file, &payload));
        check(
            &enc,
            &forged,
            &s2,
            &format!("forged at {offset}"),
            Some("authentic"),
        );
    }

    // A manifest of another repository with the same password: sealed with other keys.
    let (enc, s1, s2) = setup();
    let other = Enc::init();
    write(&other.path("c/z.txt"), b"elsewhere\n");
    let foreign = id_of(&other.snapshot([other.path("c")]));
    fs::copy(
        other.repo.join("snapshots").join(&foreign),
        enc.repo.join("snapshots").join(&foreign),
    )
    .unwrap();
    let out = enc.run(["list", "--json"]);
    out.no_panic().code(3).stderr_has(&foreign);
    let listed: BTreeSet<String> = out.json()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed, [s1, s2].into(), "a foreign manifest is listed");
    let v = enc.verify(&[], 3);
    assert_eq!(
        v["damaged_snapshots"],
        serde_json::json!([foreign]),
        "{v:#}"
    );
}

#[test]
fn damaged_or_forged_key_file_cannot_unlock_and_says_so() {
    // A flipped byte anywhere: refused with a clear error, nothing written.
    for offset in [0i64, 9, 13, 100, -40, -1] {
        let enc = Enc::init();
        let key = only_file(&enc.repo.join("keys"));
        flip_byte(&key, offset);
        let before = state(&enc);
        for args in [vec!["list"], vec!["verify"], vec!["key", "list"]] {
            let out = enc.run(&args);
            out.no_panic()
                .code(1)
                .stderr_has("key file")
                .stderr_has("damaged");
        }
        assert_state_unchanged(&enc, &before, "a damaged key file");
    }

    // Forged with a correct checksum and name: changed wrapped keys, salt or KDF parameters do
    // not open (the password no longer unwraps the keys), hostile KDF parameters are refused
    // without deriving anything.
    type Edit<'a> = (&'a str, Box<dyn Fn(&mut Value)>);
    let edits: Vec<Edit> = vec![
        (
            "wrapped keys",
            Box::new(|v: &mut Value| {
                let k = v["keys"].as_str().unwrap();
                let flipped = if k.as_bytes()[70] == b'0' { "1" } else { "0" };
                v["keys"] = Value::String(format!("{}{flipped}{}", &k[..70], &k[71..]));
            }),
        ),
        (
            "salt",
            Box::new(|v: &mut Value| {
                let s = v["kdf"]["salt"].as_str().unwrap();
                let flipped = if s.starts_with('0') { "1" } else { "0" };
                v["kdf"]["salt"] = Value::String(format!("{flipped}{}", &s[1..]));
            }),
        ),
        (
            "memory",
            Box::new(|v: &mut Value| v["kdf"]["memory_kib"] = 128.into()),
        ),
        (
            "passes",
            Box::new(|v: &mut Value| v["kdf"]["passes"] = 2.into()),
        ),
        (
            "hostile memory",
            Box::new(|v: &mut Value| v["kdf"]["memory_kib"] = u32::MAX.into()),
        ),
        (
            "hostile passes",
            Box::new(|v: &mut Value| v["kdf"]["passes"] = 1_000_000_000u32.into()),
        ),
        (
            "hostile parallelism",
            Box::new(|v: &mut Value| v["kdf"]["parallelism"] = 1_000_000u32.into()),
        ),
    ];
    for (what, edit) in edits {
        let enc = Enc::init();
        let key = only_file(&enc.repo.join("keys"));
        let file = fs::read(&key).unwrap();
        let mut json: Value = serde_json::from_slice(sealed_payload(&file)).unwrap();
        assert!(
            json["keys"].is_string() && json["kdf"]["salt"].is_string(),
            "{json}"
        );
        edit(&mut json);
        let payload = serde_json::to_vec_pretty(&json).unwrap();
        replace_named(&key, &reseal(&file, &payload));
        let before = state(&enc);
        let started = std::time::Instant::now();
        let out = enc.run(["list"]);
        out.no_panic().code(1);
        assert!(
            out.stderr.contains("wrong password") || out.stderr.contains("damaged"),
            "{what}: {}",
            out.stderr
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert_state_unchanged(&enc, &before, what);
    }
}

/// With two keys, the damaged one is neither silently ignored nor blamed on the password.
#[test]
fn a_damaged_second_key_file_is_reported() {
    let enc = Enc::init();
    let second = enc.add_key("second password");
    flip_byte(&enc.repo.join("keys").join(&second), 100);
    // The intact key still opens the repository.
    enc.run(["list"]).ok();
    // The damaged key's password: refused (exit 1), and the error says that a key file is
    // damaged rather than only claiming a wrong password.
    let out = enc.run_with("second password", ["list"]);
    out.no_panic().code(1);
    assert!(
        out.stderr.contains("damaged"),
        "the error does not mention the damaged key file {second}:\n{}",
        out.stderr
    );
    // `vault verify` (unlocked with the intact key) reports it, by id.
    let v = enc.verify(&[], 3);
    let problems = problem_list(&v);
    assert!(
        problems
            .iter()
            .any(|(kind, _, _, detail)| kind.contains("key") && detail.contains(&second)),
        "verify does not report the damaged key file {second}: {v:#}"
    );
}

#[test]
fn damaged_or_forged_config_is_refused_and_nothing_is_written() {
    let setup = || {
        let enc = Enc::init();
        write(&enc.path("src/a.txt"), b"a\n");
        enc.snapshot([enc.path("src")]);
        enc
    };
    let refused = |enc: &Enc, what: &str, needle: &str| {
        let before = state(enc);
        let src = enc.path("src");
        for args in [
            vec!["list"],
            vec!["snapshot", src.to_str().unwrap()],
            vec!["key", "list"],
        ] {
            let out = enc.run(&args);
            out.no_panic().code(1);
            assert!(out.stderr.contains("config"), "{what}: {}", out.stderr);
            assert!(
                out.stderr.contains(needle),
                "{what}: wanted {needle:?}: {}",
                out.stderr
            );
        }
        assert_state_unchanged(enc, &before, what);
    };
    for (offset, needle) in [
        (0i64, "damaged"),
        (9, "version"),
        (13, "damaged"),
        (100, "damaged"),
        (-1, "damaged"),
    ] {
        let enc = setup();
        flip_byte(&enc.repo.join("config"), offset);
        refused(&enc, &format!("flip at {offset}"), needle);
    }

    // Settings changed by someone without the key, with a correct envelope checksum: the MAC
    // refuses them.
    type Edit<'a> = (&'a str, Box<dyn Fn(&mut Value)>, &'a str);
    let edits: Vec<Edit> = vec![
        (
            "compression",
            Box::new(|v: &mut Value| v["compression"] = serde_json::json!({"algorithm": "none"})),
            "authentication failed",
        ),
        (
            "chunker",
            Box::new(|v: &mut Value| v["chunker"]["file"]["avg"] = 2_097_152.into()),
            "authentication failed",
        ),
        (
            "pack size",
            Box::new(|v: &mut Value| v["pack_target_size"] = (2u64 << 20).into()),
            "authentication failed",
        ),
        (
            "mac",
            Box::new(|v: &mut Value| v["encryption"]["mac"] = "ab".repeat(32).into()),
            "authentication failed",
        ),
        (
            "aead",
            Box::new(|v: &mut Value| v["encryption"]["aead"] = "rot13".into()),
            "damaged",
        ),
    ];
    for (what, edit, needle) in edits {
        let enc = setup();
        let path = enc.repo.join("config");
        let file = fs::read(&path).unwrap();
        let mut json: Value = serde_json::from_slice(sealed_payload(&file)).unwrap();
        edit(&mut json);
        rewrite(
            &path,
            &reseal(&file, &serde_json::to_vec_pretty(&json).unwrap()),
        );
        refused(&enc, what, needle);
    }
}

// ------------------------------------------------------------------------------------------------
// What the repository reveals
// ------------------------------------------------------------------------------------------------

/// Every `len`-byte window of the files.
fn windows(files: &[PathBuf], len: usize) -> HashSet<Vec<u8>> {
    let mut set = HashSet::new();
    for f in files {
        let data = fs::read(f).unwrap();
        for w in data.windows(len) {
            set.insert(w.to_vec());
        }
    }
    set
}

#[test]
fn identical_plaintext_is_stored_differently_in_each_repository() {
    let data = random_bytes(9, 200 * KIB);
    // (tree id, pack names, snapshot time to the second) of the stream snapshotted into `env`.
    let stream = |env: &Enc| -> (String, BTreeSet<String>, String) {
        let snap = env.snapshot_stdin("same/name.bin", &data, &[]);
        let listed = env.list();
        assert_eq!(listed[0]["id"], snap["id"]);
        let tree = listed[0]["tree"].as_str().unwrap().to_string();
        let packs = pack_files(&env.repo)
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        // The stream's entry (and its directory) get the time of the snapshot, to the second.
        let second = snap["time"].as_str().unwrap()[..19].to_string();
        (tree, packs, second)
    };
    let plain_repo = || {
        let e = Enc::new();
        e.run_bare(["init", "--encryption", "none"]).ok();
        e
    };
    // Two unencrypted repositories (the control) and two encrypted ones (even with the same
    // password), all four snapshots within one second so that their trees hold the same times.
    let mut attempts = 0;
    let (plain0, a, b, p0, p1, ra, rb) = loop {
        attempts += 1;
        let (plain0, plain1, a, b) = (plain_repo(), plain_repo(), Enc::init(), Enc::init());
        let (p0, p1, ra, rb) = (stream(&plain0), stream(&plain1), stream(&a), stream(&b));
        if [&p1.2, &ra.2, &rb.2].iter().all(|s| **s == p0.2) {
            break (plain0, a, b, p0, p1, ra, rb);
        }
        assert!(attempts < 10, "never four snapshots within one second");
    };
    let ((pt0, pp0, _), (pt1, pp1, _)) = (p0, p1);
    let ((at, ap, _), (bt, bp, _)) = (ra, rb);
    assert_eq!(
        pt0, pt1,
        "unencrypted repositories: trees differ (the comparison is broken)"
    );
    // (The data pack at least: the order of blobs in a metadata pack may vary.)
    assert!(
        !pp0.is_disjoint(&pp1),
        "unencrypted repositories share no pack: {pp0:?} {pp1:?}"
    );
    assert_ne!(at, bt, "the same tree id in two encrypted repositories");
    assert_ne!(at, pt0, "an encrypted repository uses unkeyed tree ids");
    assert_ne!(bt, pt0, "an encrypted repository uses unkeyed tree ids");
    assert!(ap.is_disjoint(&bp), "the same pack in two repositories");
    assert!(ap.is_disjoint(&pp0) && bp.is_disjoint(&pp0));

    // No 32-byte run of one repository's packs is in the other's, and no run of the data in
    // either (the headers and footers are 12 constant bytes each).
    let a_packs = pack_files(&a.repo);
    let b_windows = windows(&pack_files(&b.repo), 32);
    for p in &a_packs {
        let bytes = fs::read(p).unwrap();
        let shared = bytes.windows(32).filter(|w| b_windows.contains(*w)).count();
        assert_eq!(
            shared,
            0,
            "{} shares {shared} 32-byte runs with the other repository",
            p.display()
        );
    }
    let mut all = a_packs.clone();
    all.extend(pack_files(&b.repo));
    let pack_windows = windows(&all, 32);
    let found = data
        .windows(32)
        .step_by(8)
        .filter(|w| pack_windows.contains(*w))
        .count();
    assert_eq!(
        found, 0,
        "{found} runs of the plaintext are in the encrypted packs"
    );
    // ... while the unencrypted packs do hold it (the search works).
    let plain_windows = windows(&pack_files(&plain0.repo), 32);
    assert!(data
        .windows(32)
        .step_by(8)
        .any(|w| plain_windows.contains(w)));
}

const MARKER: &str = "vlt-leak-marker-Q7x9Z";

/// Snapshots made of MARKER everywhere a user puts text: names, contents, link targets, tags,
/// labels, host, stream and command names and contents; then forget and prune (plans, repacks).
fn fill_with_marker(enc: &Enc, cmd: impl Fn(&[&str]) -> std::process::Command) {
    let src = enc.path(format!("src-{MARKER}"));
    let dir = src.join(format!("dir-{MARKER}"));
    write(&dir.join(format!("{MARKER}.txt")), MARKER.as_bytes());
    let mut text = compressible_bytes(1, 30 * KIB);
    for i in 0..20 {
        text.extend_from_slice(format!(" {MARKER}-{i} ").as_bytes());
    }
    write(&dir.join("text.txt"), &text);
    let mut random = MARKER.as_bytes().to_vec();
    random.extend_from_slice(&random_bytes(3, 100 * KIB));
    random.extend_from_slice(MARKER.as_bytes());
    write(&dir.join("random.bin"), &random);
    symlink(format!("../{MARKER}-target"), dir.join("link")).unwrap();
    let run = |args: &[&str]| {
        let out = run_cmd(cmd(args));
        out.ok();
        out
    };
    let label = format!("app={MARKER}");
    let host = format!("host-{MARKER}");
    let tag = format!("tag-{MARKER}");
    let src_arg = src.to_str().unwrap();
    run(&[
        "snapshot", "--tag", &tag, "--label", &label, "--host", &host, src_arg,
    ]);
    let command = format!("{MARKER}/cmd.out=echo {MARKER}; echo {MARKER}");
    run(&["snapshot", "--command", &command, "--tag", &tag]);
    let mut stream = cmd(&[
        "snapshot",
        "--stdin",
        "--stdin-name",
        &format!("db/{MARKER}.sql"),
        "--label",
        &label,
    ]);
    stream.arg("--tag").arg(&tag);
    let mut content = Vec::new();
    for i in 0..500 {
        content.extend_from_slice(format!("INSERT INTO t VALUES ({i}, '{MARKER}');\n").as_bytes());
    }
    let fed = Fed::spawn(stream, std::io::Cursor::new(content)).wait();
    fed.out.ok();
    // Change a file, snapshot again, forget the first and prune: repacked packs and plans.
    write(
        &dir.join(format!("{MARKER}.txt")),
        format!("{MARKER} v2").as_bytes(),
    );
    run(&["snapshot", "--tag", &tag, "--host", &host, src_arg]);
    run(&["forget", "--keep-last", "1", "--group-by", ""]);
    run(&["prune", "--max-unused", "0%"]);
    // Everything is still there to read.
    let out = run(&["dump", "latest", &format!("{}/{MARKER}.txt", dir.display())]);
    assert_eq!(out.stdout, format!("{MARKER} v2").as_bytes());
}

#[test]
fn no_plaintext_reaches_the_repository_or_the_cache() {
    let enc = Enc::init();
    fill_with_marker(&enc, |args| enc.cmd(args));
    let tmp_name = enc.dir.path().file_name().unwrap().as_bytes().to_vec();
    for (what, needle) in [
        ("the marker", MARKER.as_bytes().to_vec()),
        ("the source directory's name", tmp_name.clone()),
    ] {
        for root in [&enc.repo, &enc.cache] {
            let leaks = files_containing(root, &needle);
            assert!(leaks.is_empty(), "{what} is in plaintext in {leaks:?}");
        }
    }
    for f in all_files(&enc.repo)
        .iter()
        .chain(all_files(&enc.cache).iter())
    {
        assert!(
            !f.as_os_str()
                .as_bytes()
                .windows(MARKER.len())
                .any(|w| w == MARKER.as_bytes()),
            "the marker is in a file name: {}",
            f.display()
        );
    }
    // Control: the same in an unencrypted repository leaves the marker in the clear, so the
    // search above can find it.
    let plain = Enc::new();
    plain.run_bare(["init", "--encryption", "none"]).ok();
    fill_with_marker(&plain, |args| plain.cmd_bare(args));
    assert!(!files_containing(&plain.repo, MARKER.as_bytes()).is_empty());
}

// ------------------------------------------------------------------------------------------------
// Downgrade
// ------------------------------------------------------------------------------------------------

/// An encrypted repository with one snapshot of `src/` holding `secret`, and an unencrypted one.
fn downgrade_setup(secret: &[u8]) -> (Enc, Enc, PathBuf) {
    let enc = Enc::init();
    let src = enc.path("src");
    write(&src.join("secret.txt"), secret);
    enc.snapshot([&src]);
    let plain = Enc::new();
    plain.run_bare(["init", "--encryption", "none"]).ok();
    (enc, plain, src)
}

/// Every way of using the repository is refused with exit 1, and nothing is written.
#[track_caller]
fn downgrade_refused(enc: &Enc, src: &Path, what: &str, needle: &str) {
    let before = state(enc);
    let src_arg = src.to_str().unwrap();
    for out in [
        enc.run(["snapshot", src_arg]),
        run_cmd(enc.cmd_bare(["snapshot", src_arg])),
        enc.run(["list"]),
        run_cmd(enc.cmd_bare(["list"])),
        enc.run(["verify"]),
        Fed::spawn(
            enc.cmd_bare(["snapshot", "--stdin"]),
            std::io::Cursor::new(b"streamed secret".to_vec()),
        )
        .wait()
        .out,
    ] {
        out.no_panic();
        assert_eq!(
            out.code, 1,
            "{what}: {} exited {}: {}",
            out.cmdline, out.code, out.stderr
        );
        assert!(
            out.stderr.contains(needle),
            "{what}: wanted {needle:?}: {}",
            out.stderr
        );
    }
    assert_state_unchanged(enc, &before, what);
}

#[test]
fn an_unencrypted_config_put_in_place_is_refused() {
    let secret = b"downgrade secret 1\n";
    let (enc, plain, src) = downgrade_setup(secret);
    let config = enc.repo.join("config");
    let original = fs::read(&config).unwrap();
    rewrite(&config, &fs::read(plain.repo.join("config")).unwrap());
    downgrade_refused(
        &enc,
        &src,
        "config of an unencrypted repository",
        "not encrypted",
    );
    assert!(files_containing(&enc.repo, secret).is_empty());
    // Putting the original back makes everything work again.
    rewrite(&config, &original);
    assert_eq!(enc.list().len(), 1);
    enc.verify(&["--read-data"], 0);

    // The repository's own config, edited to say "not encrypted", with the key files deleted
    // too: this machine remembers that the repository is encrypted.
    let file = fs::read(&config).unwrap();
    let mut json: Value = serde_json::from_slice(sealed_payload(&file)).unwrap();
    json["encryption"] = serde_json::json!({"scheme": "none"});
    rewrite(
        &config,
        &reseal(&file, &serde_json::to_vec_pretty(&json).unwrap()),
    );
    let keys = enc.repo.join("keys");
    let saved: Vec<(PathBuf, Vec<u8>)> = all_files(&keys)
        .into_iter()
        .map(|p| {
            let d = fs::read(&p).unwrap();
            (p, d)
        })
        .collect();
    for (p, _) in &saved {
        fs::remove_file(p).unwrap();
    }
    downgrade_refused(
        &enc,
        &src,
        "own config edited, keys deleted",
        "encrypted before",
    );
    assert!(files_containing(&enc.repo, secret).is_empty());
}

/// The attacker replaces the config by another unencrypted repository's (another repository
/// id, so this machine's "encrypted" marker, kept per id, does not apply) and deletes `keys/`:
/// the next snapshot must not store plaintext next to the encrypted snapshots.
#[test]
fn a_foreign_unencrypted_config_with_the_keys_deleted_is_refused() {
    let secret = b"downgrade secret 2\n";
    let (enc, plain, src) = downgrade_setup(secret);
    rewrite(
        &enc.repo.join("config"),
        &fs::read(plain.repo.join("config")).unwrap(),
    );
    for p in all_files(&enc.repo.join("keys")) {
        fs::remove_file(p).unwrap();
    }
    let out = enc.run(["snapshot", src.to_str().unwrap()]);
    out.no_panic();
    let leaks = files_containing(&enc.repo, secret);
    assert!(
        out.code == 1 && leaks.is_empty(),
        "snapshot into a repository whose config was swapped for an unencrypted one (keys/ \
         deleted) exited {} and stored the source in plaintext in {leaks:?}\nstderr: {}",
        out.code,
        out.stderr
    );
}
