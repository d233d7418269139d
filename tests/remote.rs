//! Remote repositories through the real binary: the same scenarios against an S3 server
//! (`s3:http://127.0.0.1:PORT/BUCKET/PREFIX`, served by `s3s-fs`), an SFTP server
//! (`sftp:USER@127.0.0.1:PORT/PATH`, a private `sshd` reached through the system `ssh` with
//! strict host-key checking) and, opt-in, a single-node Garage (a real distributed S3 store,
//! same kind of location, region `garage`), each started per test by `util::servers`:
//!
//! - a repository's life (init, snapshot of a tree and a stream, restore, verify, a second
//!   snapshot, forget, prune, restore again), unencrypted and encrypted;
//! - `vault copy` local -> remote -> local, and a second copy that copies nothing;
//! - the server killed in the middle of a snapshot: exit 1 with a one-line error, nothing
//!   committed, no partial object on the server, and after a restart the next snapshot works.
//!
//! Every object the servers hold is checked after each step: a pack or manifest is named by the
//! BLAKE3 of its bytes, so a partial upload shows as a name that does not match its content.
//! (s3s-fs and sshd keep objects as files, which are read from the disk; Garage keeps them in
//! its own chunked format, so there they are listed and read through its S3 API, with curl.)
//!
//! The servers come from `s3s-fs` (`VAULT_S3S_FS` or `PATH`) and Debian's `openssh-server`,
//! which `.ci/run` installs; a missing one fails the test under CI and skips it elsewhere. Run
//! with `cargo test --release -p vault-cli --test integration remote::`.
//!
//! Garage is opt-in: the `garage::*` tests run only when `VAULT_GARAGE` names a Garage binary
//! (`cargo install garage@2.5.0 --locked`), and otherwise print `SKIPPED (opt-in: ...)` and
//! pass, under CI too. Run them with
//! `VAULT_GARAGE=/path/to/garage cargo test --release -p vault-cli --test integration remote::garage`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::history::{digests, verify_clean};
use crate::util::servers::{GarageServer, S3Server, Server, SftpServer};
use crate::util::*;

const MIB: u64 = 1 << 20;

/// The password of the encrypted repositories.
const PASSWORD: &str = "remote repositories need passwords too";

/// Starts a server of type `S`; `None` when its programs are missing outside CI.
trait Start: Server + Sized {
    fn start() -> Option<Self>;
}

impl Start for S3Server {
    fn start() -> Option<Self> {
        S3Server::start()
    }
}

impl Start for SftpServer {
    fn start() -> Option<Self> {
        SftpServer::start()
    }
}

impl Start for GarageServer {
    fn start() -> Option<Self> {
        GarageServer::start()
    }
}

/// Every scenario, once per server type: `remote::s3::NAME`, `remote::sftp::NAME` and
/// `remote::garage::NAME` (opt-in: skipped without `VAULT_GARAGE`).
macro_rules! for_each_server {
    ($($name:ident),* $(,)?) => {
        mod s3 {
            $(#[test] fn $name() { super::$name::<crate::util::servers::S3Server>() })*
        }
        mod sftp {
            $(#[test] fn $name() { super::$name::<crate::util::servers::SftpServer>() })*
        }
        mod garage {
            $(#[test] fn $name() { super::$name::<crate::util::servers::GarageServer>() })*
        }
    };
}

for_each_server!(
    servers_start_and_stop,
    life_of_an_unencrypted_repository,
    life_of_an_encrypted_repository,
    copy_local_to_remote_and_back,
    server_killed_mid_snapshot_commits_nothing_and_the_next_snapshot_works,
);

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// An environment whose repository (`VAULT_REPO`) is `path` on `server`.
fn remote_env<S: Server>(server: &S, path: &str) -> Env {
    Env::new()
        .with_envs(server.envs())
        .with_envs([("VAULT_REPO", server.location(path))])
}

/// Makes the commands of `env` use an encrypted repository's password (and the cheap KDF);
/// returns the password file, for `--password-file` and `--to-password-file`.
fn use_password(env: &mut Env) -> PathBuf {
    let file = env.path("password");
    write(&file, PASSWORD.as_bytes());
    env.envs.extend(
        [
            ("VAULT_PASSWORD_FILE", file.to_str().unwrap()),
            ("VAULT_KDF_MEMORY", "64KiB"),
            ("VAULT_KDF_PASSES", "1"),
        ]
        .map(|(k, v)| (k.into(), v.into())),
    );
    file
}

fn is_hex_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An object on a server: its path (as in [`Server::location`]) and size.
type Object = (String, u64);

/// Content-addressed objects (packs, manifests, key files) below `dir` on `server`: objects
/// named by 64 hex digits below a `packs`, `snapshots` or `keys` directory, with their
/// namespace. Names with a component starting with `.` (temporary files) are not objects.
fn addressed_objects<S: Server>(server: &S, dir: &str) -> Vec<(Object, &'static str)> {
    let mut out = Vec::new();
    for (name, len) in server.list_objects(dir) {
        let parts: Vec<&str> = name.split('/').collect();
        if parts.iter().any(|p| p.starts_with('.')) {
            continue;
        }
        let (file, dirs) = parts.split_last().unwrap();
        let ns = dirs.iter().find_map(|d| match *d {
            "packs" => Some("pack"),
            "snapshots" => Some("snapshot"),
            "keys" => Some("key"),
            _ => None,
        });
        if let (Some(ns), true) = (ns, is_hex_id(file)) {
            out.push(((format!("{dir}/{name}"), len), ns));
        }
    }
    out.sort();
    out
}

fn packs<S: Server>(server: &S, dir: &str) -> Vec<Object> {
    addressed_objects(server, dir)
        .into_iter()
        .filter(|(_, ns)| *ns == "pack")
        .map(|(o, _)| o)
        .collect()
}

fn bytes_of(objects: &[Object]) -> u64 {
    objects.iter().map(|(_, len)| len).sum()
}

/// No object below `dir` on `server` is partial or damaged: each one's BLAKE3 is its name (its
/// bytes read from the server's disk, or through its protocol when it has none). Returns how
/// many there are.
#[track_caller]
fn assert_objects_whole<S: Server>(server: &S, dir: &str) -> usize {
    let objects = addressed_objects(server, dir);
    let bad: Vec<String> = objects
        .iter()
        .filter_map(|((path, _), ns)| {
            let Some(data) = server.read_object(path) else {
                return Some(format!("{ns} {path}: listed but cannot be read"));
            };
            let digest = blake3::hash(&data);
            let name = path.rsplit('/').next().unwrap();
            (digest.to_hex().as_str() != name).then(|| {
                format!(
                    "{ns} {path} ({} bytes): content hashes to {digest}",
                    data.len()
                )
            })
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} objects under {dir} on the {} server are partial or damaged:\n  {}",
        bad.len(),
        objects.len(),
        server.kind(),
        bad.join("\n  ")
    );
    objects.len()
}

/// A tree with a little of everything: text, random data that fills several 16 MiB packs,
/// an empty file, an executable, a symlink, a hard link, nested directories, old mtimes.
fn build_tree(src: &Path, random_mib: u64) {
    fs::create_dir_all(src.join("docs/deep/er")).unwrap();
    write(&src.join("docs/readme.txt"), &compressible_bytes(1, 50_000));
    write(&src.join("docs/deep/er/note.txt"), b"at the bottom\n");
    write(&src.join("docs/empty"), b"");
    write(&src.join("run.sh"), b"#!/bin/sh\necho hello\n");
    chmod(&src.join("run.sh"), 0o755);
    write_generated(
        &src.join("data/text.bin"),
        2,
        3 * MIB + 7,
        compressible_bytes,
    );
    write_generated(
        &src.join("data/random.bin"),
        3,
        random_mib * MIB,
        random_bytes,
    );
    write_generated(&src.join("data/old.bin"), 4, 12 * MIB, random_bytes);
    symlink("docs/readme.txt", src.join("readme")).unwrap();
    fs::hard_link(
        src.join("docs/readme.txt"),
        src.join("docs/readme-link.txt"),
    )
    .unwrap();
    set_mtime(
        &src.join("docs/deep/er/note.txt"),
        1_000_000_000,
        123_456_789,
    );
    set_mtime(&src.join("docs/deep/er"), 1_100_000_000, 5);
}

/// The day-two changes: an edited file, a new one, and `data/old.bin` (12 MiB of its own
/// packs' data) gone, so that forgetting day one leaves prune something to delete.
fn change_tree(src: &Path) {
    write(
        &src.join("docs/deep/er/note.txt"),
        b"still at the bottom, edited\n",
    );
    write_generated(&src.join("data/new.bin"), 5, 5 * MIB, random_bytes);
    fs::remove_file(src.join("data/old.bin")).unwrap();
}

/// `vault snapshot --json --stdin --stdin-name NAME PATH...` fed `stdin`; asserts success.
/// Returns (snapshot, BLAKE3 of what was fed).
#[track_caller]
fn snapshot_with_stdin(
    env: &Env,
    name: &str,
    paths: &[&Path],
    stdin: SqlDump,
) -> (Value, blake3::Hash) {
    let mut cmd = env.cmd(["snapshot", "--json", "--stdin", "--stdin-name", name]);
    cmd.args(paths);
    let fed = Fed::spawn(cmd, stdin).wait();
    fed.out.ok();
    assert!(fed.feed_error.is_none(), "{:?}", fed.feed_error);
    let v = fed.out.json();
    check_snapshot_json(&v);
    (v, fed.fed_digest)
}

/// Restores `spec` into a fresh directory; asserts success; returns the directory.
#[track_caller]
fn restore_fresh(env: &Env, spec: &str) -> PathBuf {
    let target = env.path(format!("restore-{}", crate::util::history::rand_suffix()));
    env.restore(spec, &target, Vec::<String>::new()).ok();
    target
}

// ------------------------------------------------------------------------------------------------
// Refusals: wrong credentials, a missing bucket, host keys
// ------------------------------------------------------------------------------------------------

/// A command that must fail at once (not after retries: nothing here is transient) with exit
/// 1, one line on stderr and no panic; returns that line.
#[track_caller]
fn refused(cmd: std::process::Command) -> String {
    let started = Instant::now();
    let out = run_cmd(cmd);
    let took = started.elapsed();
    out.code(1).no_panic();
    let lines: Vec<&str> = out.stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "want a one-line error:\n{}", out.stderr);
    assert!(
        took < Duration::from_secs(20),
        "{} took {took:?} to fail (retrying a permanent error?)",
        out.cmdline
    );
    lines[0].to_string()
}

/// Wrong S3 credentials and a bucket that does not exist: init fails at once with a one-line
/// error and writes nothing.
#[test]
fn s3_wrong_credentials_and_missing_bucket_are_refused() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let env = remote_env(&server, "repo");
    let mut cmd = env.cmd(["init", "--encryption", "none"]);
    cmd.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let line = refused(cmd);
    eprintln!("wrong secret: {line}");
    assert!(
        !server.disk_path("repo").unwrap().exists(),
        "init wrote with a wrong secret"
    );

    let mut cmd = env.cmd(["init", "--encryption", "none"]);
    cmd.env(
        "VAULT_REPO",
        format!("s3:{}/no-such-bucket/repo", server.endpoint()),
    );
    let line = refused(cmd);
    eprintln!("missing bucket: {line}");
    assert!(
        line.to_lowercase().contains("bucket"),
        "the error should name the problem (the bucket): {line}"
    );
    assert!(!server.root().join("no-such-bucket").exists());
}

/// Host-key checking over SFTP: the default (strict) refuses a server whose key differs from
/// the one in known_hosts, and one that is not in known_hosts at all; `add` accepts an unknown
/// server and records its key, after which strict checking passes.
#[test]
fn sftp_host_key_checking() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let env = remote_env(&server, "repo");
    let init = |known_hosts: Option<&str>| {
        let mut cmd = env.cmd(["init", "--encryption", "none"]);
        if let Some(mode) = known_hosts {
            cmd.env("VAULT_SFTP_KNOWN_HOSTS", mode);
        }
        cmd
    };

    // Another key under the server's name: a man in the middle.
    let other = env.path("other_key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut fields = other_pub.split_whitespace();
    let (algo, key) = (fields.next().unwrap(), fields.next().unwrap());
    write(
        &server.known_hosts(),
        format!("[127.0.0.1]:{} {algo} {key}\n", server.port()).as_bytes(),
    );
    let line = refused(init(None));
    eprintln!("changed host key, strict: {line}");
    let line = refused(init(Some("strict")));
    eprintln!("changed host key, strict (explicit): {line}");
    assert!(
        !server.disk_path("repo").unwrap().exists(),
        "init wrote past a changed host key"
    );

    // Not known at all.
    write(&server.known_hosts(), b"");
    let line = refused(init(None));
    eprintln!("unknown host key, strict: {line}");
    assert!(
        !server.disk_path("repo").unwrap().exists(),
        "init wrote to an unknown host"
    );

    // add: accepted and recorded; then strict passes.
    run_cmd(init(Some("add"))).ok();
    assert!(server.disk_path("repo/config").unwrap().is_file());
    let recorded = fs::read_to_string(server.known_hosts()).unwrap();
    let want = server.known_hosts_line();
    let want_key = want.split_whitespace().nth(2).unwrap();
    assert!(
        recorded.contains(want_key),
        "add did not record the server's key in known_hosts: {recorded:?}"
    );
    let list = env.cmd(["list", "--json"]);
    run_cmd(list).ok();
}

// ------------------------------------------------------------------------------------------------
// The servers themselves
// ------------------------------------------------------------------------------------------------

/// The helpers work: each server starts, answers its own protocol, drops established
/// connections when killed, refuses new ones while down, and answers again after a restart
/// with the same data.
fn servers_start_and_stop<S: Start>() {
    let Some(mut server) = S::start() else { return };
    assert!(
        server.is_up(),
        "{} server is not up after start",
        server.kind()
    );
    // Data that must survive a restart: a file on the server's disk, or where it has none
    // (Garage), an object written through its protocol.
    let marker = match server.disk_path("marker") {
        Some(marker) => {
            fs::create_dir_all(marker.parent().unwrap()).unwrap();
            write(&marker, b"survives restarts");
            true
        }
        None => server
            .client_put("marker", b"survives restarts")
            .unwrap_or_else(|e| panic!("{e}")),
    };

    // An established connection (an ssh session; a TCP connection to the S3 port) must die
    // with the server, as vault's would.
    let mut held = server.hold_connection();
    server.kill();
    assert!(
        !server.is_up(),
        "{} server still answers after kill",
        server.kind()
    );
    let started = Instant::now();
    while held.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(15) {
            let _ = held.kill();
            panic!(
                "a connection to the killed {} server is still open",
                server.kind()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    server.restart();
    assert!(
        server.is_up(),
        "{} server is not up after restart",
        server.kind()
    );
    if marker {
        assert_eq!(
            server.read_object("marker").as_deref(),
            Some(&b"survives restarts"[..])
        );
    }
    // The location names the place on disk (where there is one): what a client writes through
    // the protocol lands at disk_path, and is read back by read_object.
    match server.client_put("probe/object", b"probe") {
        Ok(true) => assert_eq!(
            server.read_object("probe/object").as_deref(),
            Some(&b"probe"[..]),
            "{} client_put did not land at disk_path",
            server.kind()
        ),
        Ok(false) => eprintln!(
            "no {} client installed: the put probe is skipped",
            server.kind()
        ),
        Err(e) => panic!("{e}"),
    }
}

// ------------------------------------------------------------------------------------------------
// A repository's life
// ------------------------------------------------------------------------------------------------

fn life_of_an_unencrypted_repository<S: Start>() {
    life_of_a_repository::<S>(false)
}

fn life_of_an_encrypted_repository<S: Start>() {
    life_of_a_repository::<S>(true)
}

/// init -> snapshot (tree + stream) -> restore exact -> verify -> second snapshot -> forget the
/// first -> prune (space comes back on the server) -> the second still restores exact and the
/// repository verifies clean.
fn life_of_a_repository<S: Start>(encrypted: bool) {
    let Some(server) = S::start() else { return };
    let mut env = remote_env(&server, "backups/repo");
    let on_server = "backups/repo";
    if encrypted {
        let pw = use_password(&mut env);
        let mut init = env.cmd(["init", "--encryption", "repokey", "--password-file"]);
        init.arg(&pw);
        run_cmd(init).ok();
    } else {
        env.run(["init", "--encryption", "none"]).ok();
    }
    assert!(
        server.read_object(&format!("{on_server}/config")).is_some(),
        "init wrote no config at {on_server}/config (the location's place on the {} server)",
        server.kind()
    );
    // A second init must refuse to overwrite the repository.
    env.run(["init", "--encryption", "none"]).fails().no_panic();

    let src = env.path("src");
    build_tree(&src, 40);
    let dump = || SqlDump::new(7).bytes(3 * MIB + 11);
    let (first, dump_digest) = snapshot_with_stdin(&env, "db/app.sql", &[&src], dump());
    let first = id_of(&first);
    let first_digests = digests(&src);
    let packs_after_first = packs(&server, on_server);
    assert!(
        packs_after_first.len() >= 3,
        "~60 MiB should fill several packs; the server holds {:?}",
        packs_after_first
    );
    assert_objects_whole(&server, on_server);
    assert_eq!(env.snapshot_ids(), [first.clone()].into());

    // Restore from the remote repository, with a fresh index cache (everything read back).
    fs::remove_dir_all(&env.cache).ok();
    let target = restore_fresh(&env, &first);
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
    assert_eq!(
        file_digest(&target.join("db/app.sql")),
        (dump_digest, 3 * MIB + 11),
        "the stream did not restore exact"
    );
    let (code, digest, len, stderr) = env.dump_digest(&first, "/db/app.sql", &[]);
    assert_eq!(
        (code, digest, len),
        (0, dump_digest, 3 * MIB + 11),
        "{stderr}"
    );
    fs::remove_dir_all(&target).unwrap();
    verify_clean(&env);

    // Day two.
    // (With the stream again, so that both snapshots are in one forget group: same paths.)
    change_tree(&src);
    let (second, second_dump) =
        snapshot_with_stdin(&env, "db/app.sql", &[&src], SqlDump::new(8).bytes(2 * MIB));
    let second = id_of(&second);
    assert_objects_whole(&server, on_server);
    assert_eq!(env.snapshot_ids(), [first.clone(), second.clone()].into());

    // Forget day one and prune: old.bin's packs go away on the server.
    env.run(["forget", "--keep-last", "1"]).ok();
    assert_eq!(env.snapshot_ids(), [second.clone()].into());
    let before = bytes_of(&packs(&server, on_server));
    let report = env.run(["prune", "--json"]).ok().json();
    let after_packs = packs(&server, on_server);
    let after = bytes_of(&after_packs);
    assert!(
        after + 8 * MIB < before,
        "prune freed {} bytes of {before} on the server (old.bin alone is 12 MiB): {report}",
        before as i64 - after as i64
    );
    assert_objects_whole(&server, on_server);
    let again = env.run(["prune", "--json"]).ok().json();
    assert_eq!(
        packs(&server, on_server),
        after_packs,
        "a second prune changed packs: {again}"
    );

    // What is left restores exact and verifies clean, from a fresh cache too.
    let target = restore_fresh(&env, "latest");
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
    assert_eq!(
        file_digest(&target.join("db/app.sql")),
        (second_dump, 2 * MIB),
        "the second stream did not restore exact"
    );
    fs::remove_dir_all(&target).unwrap();
    verify_clean(&env);
    fs::remove_dir_all(&env.cache).ok();
    verify_clean(&env);
    assert_ne!(digests(&src), first_digests);
}

// ------------------------------------------------------------------------------------------------
// vault copy
// ------------------------------------------------------------------------------------------------

/// Snapshots identified across repositories (their ids differ when the encryption does).
fn identities(list: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {} {}",
                s["time"], s["host"], s["paths"], s["tags"], s["labels"]
            )
        })
        .collect();
    v.sort();
    v
}

/// The id, in `to`, of the snapshot `id` of `from` (matched by [`identities`]).
#[track_caller]
fn same_snapshot(from: &[Value], id: &str, to: &[Value]) -> String {
    let original = from.iter().find(|s| s["id"] == id).expect("in the list");
    let want = identities(std::slice::from_ref(original));
    let found: Vec<&Value> = to
        .iter()
        .filter(|s| identities(std::slice::from_ref(*s)) == want)
        .collect();
    assert_eq!(found.len(), 1, "copies of {id}: {found:?}");
    found[0]["id"].as_str().unwrap().to_string()
}

/// How many snapshots a `vault copy --json` run says it copied, if it says so in a way this
/// recognises (a number, or an array of copied snapshots, under a key naming copies).
fn copied_count(report: &Value) -> Option<u64> {
    for key in ["copied", "snapshots_copied", "copied_snapshots"] {
        match &report[key] {
            Value::Number(n) => return n.as_u64(),
            Value::Array(a) => return Some(a.len() as u64),
            _ => {}
        }
    }
    None
}

/// A local repository's snapshots copied to an encrypted remote one and from there to a second
/// local one: all of them arrive, each restores exact; a second copy copies nothing.
fn copy_local_to_remote_and_back<S: Start>() {
    let Some(server) = S::start() else { return };
    let local = Env::new()
        .with_envs(server.envs())
        .with_envs([("VAULT_CONNECTIONS", "3")]);
    local.run(["init", "--encryption", "none"]).ok();
    let remote = server.location("copies");
    let on_server = "copies";

    let src = local.path("src");
    build_tree(&src, 20);
    let mut taken = Vec::new();
    let one = local.snapshot([
        "--tag",
        "daily",
        "--label",
        "app=site",
        src.to_str().unwrap(),
    ]);
    taken.push((id_of(&one), digests(&src)));
    change_tree(&src);
    let two = local.snapshot(["--tag", "weekly", src.to_str().unwrap()]);
    taken.push((id_of(&two), digests(&src)));
    let local_list = local.list(Vec::<String>::new());

    // The destination: encrypted, on the server.
    let pw = local.path("remote-password");
    write(&pw, PASSWORD.as_bytes());
    let mut init = local.cmd(["--repo", remote.as_str(), "init", "--encryption", "repokey"]);
    init.arg("--password-file")
        .arg(&pw)
        .env("VAULT_KDF_MEMORY", "64KiB")
        .env("VAULT_KDF_PASSES", "1");
    run_cmd(init).ok();

    let copy_to_remote = || {
        let mut cmd = local.cmd(["copy", "--json", "--to", remote.as_str()]);
        cmd.arg("--to-password-file").arg(&pw);
        run_cmd(cmd)
    };
    let first_copy = copy_to_remote();
    first_copy.ok().no_panic();
    assert_objects_whole(&server, on_server);
    let remote_list = || {
        let mut cmd = local.cmd(["--repo", remote.as_str(), "list", "--json"]);
        cmd.arg("--password-file").arg(&pw);
        match run_cmd(cmd)
            .ok()
            .json()
            .get_mut("snapshots")
            .map(Value::take)
        {
            Some(Value::Array(items)) => items,
            other => panic!("list --json printed no snapshots array: {other:?}"),
        }
    };
    assert_eq!(identities(&remote_list()), identities(&local_list));
    if let Ok(report) = serde_json::from_slice::<Value>(&first_copy.stdout) {
        if let Some(n) = copied_count(&report) {
            assert_eq!(n, 2, "first copy: {report}");
        }
    }

    // Again: nothing new to copy, nothing written.
    let objects_before = addressed_objects(&server, on_server);
    let second_copy = copy_to_remote();
    second_copy.ok().no_panic();
    assert_eq!(
        addressed_objects(&server, on_server),
        objects_before,
        "a second copy wrote objects"
    );
    assert_eq!(identities(&remote_list()), identities(&local_list));
    match serde_json::from_slice::<Value>(&second_copy.stdout) {
        Ok(report) => match copied_count(&report) {
            Some(n) => assert_eq!(n, 0, "second copy: {report}"),
            None => eprintln!("NOTE: cannot tell the copied count from {report}"),
        },
        Err(_) => eprintln!(
            "NOTE: copy --json printed no JSON: {}",
            second_copy.stdout_str()
        ),
    }

    // Back to a second local repository, unencrypted, with a fresh cache on both ends.
    let back = Env::new().with_envs(server.envs());
    back.run(["init", "--encryption", "none"]).ok();
    fs::remove_dir_all(&local.cache).ok();
    let mut cmd = local.cmd(["--repo", remote.as_str(), "copy", "--json", "--to"]);
    cmd.arg(&back.repo).arg("--password-file").arg(&pw);
    run_cmd(cmd).ok().no_panic();
    let back_list = back.list(Vec::<String>::new());
    assert_eq!(identities(&back_list), identities(&local_list));
    // (A copy records where it was first taken, so its id differs from the original's even
    // between two unencrypted repositories: match them by what they describe.)
    verify_clean(&back);
    for (id, want) in &taken {
        let copy = same_snapshot(&local_list, id, &back_list);
        let target = restore_fresh(&back, &copy);
        assert_eq!(
            &digests(&Env::restored(&target, &src)),
            want,
            "snapshot {id} copied there and back did not restore exact"
        );
        fs::remove_dir_all(&target).unwrap();
    }
    let target = restore_fresh(&back, "latest");
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());

    // A copy filtered by tag copies only that snapshot.
    let filtered = Env::new().with_envs(server.envs());
    filtered.run(["init", "--encryption", "none"]).ok();
    let mut cmd = local.cmd(["copy", "--tag", "weekly", "--to"]);
    cmd.arg(&filtered.repo);
    run_cmd(cmd).ok().no_panic();
    let filtered_list = filtered.list(Vec::<String>::new());
    assert_eq!(
        identities(&filtered_list),
        identities(&[local_list
            .iter()
            .find(|s| s["id"] == two["id"])
            .unwrap()
            .clone()])
    );
}

// ------------------------------------------------------------------------------------------------
// The server killed mid-snapshot
// ------------------------------------------------------------------------------------------------

/// The size of the stream that is being backed up when the server dies.
const BIG: u64 = 300 * MIB;

/// The server dies (SIGKILL, connections and all) once the first pack of a 300 MiB snapshot has
/// arrived: the snapshot fails with exit 1 and a one-line error, nothing is committed, no object
/// on the server is partial; after a restart the next snapshot succeeds and verifies clean.
fn server_killed_mid_snapshot_commits_nothing_and_the_next_snapshot_works<S: Start>() {
    let Some(mut server) = S::start() else { return };
    let env = remote_env(&server, "repo").with_envs([("VAULT_RETRIES", "1")]);
    let on_server = "repo";
    env.run(["init", "--encryption", "none"]).ok();
    let small = env.path("small");
    fs::create_dir_all(&small).unwrap();
    write(&small.join("a.txt"), b"committed before the crash\n");
    let before = id_of(&env.snapshot([&small]));
    let packs_before = packs(&server, on_server).len();

    let big = env.path("big/data.bin");
    write_generated(&big, 99, BIG, random_bytes);
    let mut cmd = env.cmd(["snapshot".as_ref(), big.as_os_str()]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let cmdline = cmdline_of(&cmd);
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    loop {
        if packs(&server, on_server).len() > packs_before {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmdline} ended ({status}) before a pack reached the server:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no pack reached the server in 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    let killed_at = Instant::now();

    // The snapshot must give up soon (VAULT_RETRIES=1), not hang on a dead connection.
    let out = wait_with_timeout(child, Duration::from_secs(180), &cmdline);
    eprintln!(
        "{} snapshot ended {:?} after the kill: exit {}, stderr {:?}",
        server.kind(),
        killed_at.elapsed(),
        out.code,
        out.stderr
    );
    out.code(1).no_panic();
    let lines: Vec<&str> = out.stderr.trim_end().lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the error should be one line on stderr, got {}:\n{}",
        lines.len(),
        out.stderr
    );
    assert!(!lines[0].trim().is_empty(), "empty error line");

    server.restart();
    assert_eq!(
        env.snapshot_ids(),
        [before.clone()].into(),
        "a snapshot was committed"
    );
    assert_objects_whole(&server, on_server);
    verify_clean(&env);

    // The next snapshot works and stores the whole file.
    let next = id_of(&env.snapshot([&big]));
    assert_eq!(env.snapshot_ids(), [before, next.clone()].into());
    let (code, digest, len, stderr) = env.dump_digest(&next, big.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((digest, len), file_digest(&big));
    assert_objects_whole(&server, on_server);
    verify_clean(&env);
}

/// Waits for `child`, killing it (and failing) after `timeout`.
#[track_caller]
fn wait_with_timeout(mut child: Child, timeout: Duration, cmdline: &str) -> Out {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmdline} still runs {timeout:?} after the server died; stderr so far:\n{}",
                err_t.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::process::ExitStatusExt;
    Out {
        cmdline: cmdline.to_string(),
        code: status
            .code()
            .unwrap_or_else(|| panic!("{cmdline}: killed by signal {:?}", status.signal())),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Two hosts, each with its own index cache, write into one remote repository: the second
/// deduplicates against the first's packs (its cache takes them in from the index segments),
/// a cache rebuilt from scratch reads only segments (no pack trailer), a prune on one host is
/// caught up by the other, and every restore stays exact.
#[test]
fn two_hosts_share_one_remote_repository() {
    let Some(server) = <S3Server as Start>::start() else {
        return;
    };
    let a = remote_env(&server, "shared/repo");
    let b = remote_env(&server, "shared/repo");
    a.run(["init", "--encryption", "none"]).ok();
    let src = a.path("src");
    build_tree(&src, 24);
    let src_arg = src.to_str().unwrap();

    let first_a = a.snapshot(["--host", "alpha", src_arg]);
    let added_a = summary(&first_a, "bytes_added");
    let first_b = b.snapshot(["--host", "beta", src_arg]);
    // Host beta's cache learned every pack of alpha before deciding what to store.
    assert!(
        summary(&first_b, "bytes_added") * 20 < added_a,
        "beta stored {} bytes of data alpha had stored ({added_a} bytes) already",
        summary(&first_b, "bytes_added")
    );

    // A cache lost and rebuilt takes every pack from the segments, none from its trailer.
    let index = fs::read_dir(&a.cache)
        .unwrap()
        .flat_map(|e| fs::read_dir(e.unwrap().path()).into_iter().flatten())
        .map(|e| e.unwrap().path().join("index.redb"))
        .find(|p| p.is_file())
        .expect("alpha's cache holds an index");
    fs::remove_file(&index).unwrap();
    let out = a.run(["list"]);
    out.ok();
    assert!(
        out.stderr
            .contains("packs from index segments, 0 from their trailers"),
        "a rebuilt cache read pack trailers: {}",
        out.stderr
    );

    // Beta forgets alpha's snapshot and prunes; alpha's next snapshot and restores catch up.
    change_tree(&src);
    b.run(["forget", &id_of(&first_a)]).ok();
    b.run(["prune"]).ok();
    let second_a = id_of(&a.snapshot(["--host", "alpha", src_arg]));
    let want = digests(&src);
    for (env, id) in [(&a, &second_a), (&b, &second_a), (&a, &id_of(&first_b))] {
        let target = restore_fresh(env, id);
        let got = digests(&Env::restored(&target, &src));
        if id == &second_a {
            assert_eq!(got, want, "snapshot {id} restored by another host");
        } else {
            assert_eq!(got.len(), want.len(), "snapshot {id}");
        }
    }
    verify_clean(&a);
    verify_clean(&b);
}
