//! Snapshots of standard input: a multi-GiB generated stream, streamed in and dumped back out,
//! compared by BLAKE3 without ever holding it in memory.

use std::time::Instant;

use crate::util::*;

/// Size of the big stream: 2 GiB in release builds (~25 s), 256 MiB in unoptimized ones;
/// `VAULT_TEST_STDIN_MIB` overrides either.
fn big_stream_bytes() -> u64 {
    let default = if cfg!(debug_assertions) { 256 } else { 2048 };
    let mib: u64 = std::env::var("VAULT_TEST_STDIN_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    mib << 20
}

#[test]
fn multi_gib_stdin_stream_round_trips() {
    let env = Env::init();
    let size = big_stream_bytes();

    let started = Instant::now();
    let cmd = env.cmd([
        "snapshot",
        "--json",
        "--stdin",
        "--stdin-name",
        "db/dump.sql",
        "--tag",
        "db",
    ]);
    let fed = Fed::spawn(cmd, SqlDump::new(42).bytes(size)).wait();
    fed.out.ok();
    let snap = fed.out.json();
    check_snapshot_json(&snap);
    let snapshot_secs = started.elapsed().as_secs_f64();
    assert_eq!(fed.fed_bytes, size);
    assert_eq!(snap["complete"], true);
    assert_eq!(snap["paths"], serde_json::json!(["/db/dump.sql"]));
    assert_eq!(summary(&snap, "files"), 1);
    assert_eq!(summary(&snap, "bytes_total"), size, "{snap}");
    assert_eq!(summary(&snap, "bytes_read"), size, "{snap}");
    // Pseudo-SQL compresses well with zstd; storing it must not cost more than its size.
    let added = summary(&snap, "bytes_added");
    assert!(
        added > 0 && added < size,
        "bytes_added {added} for {size} bytes of text"
    );

    let started = Instant::now();
    let (code, digest, len, stderr) = env.dump_digest("latest", "/db/dump.sql", &[]);
    let dump_secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "dump failed: {stderr}");
    assert_eq!(len, size, "dump length");
    assert_eq!(
        digest, fed.fed_digest,
        "dumped content differs from the stream"
    );
    eprintln!(
        "stdin: {} MiB snapshot in {snapshot_secs:.1}s ({:.0} MiB/s, stored {} MiB), dump in {dump_secs:.1}s ({:.0} MiB/s)",
        size >> 20,
        (size >> 20) as f64 / snapshot_secs,
        added >> 20,
        (size >> 20) as f64 / dump_secs,
    );
}

/// The stream name is stored under `/`; dump finds it with or without the leading slash, by id,
/// prefix or `latest`; restore recreates it under the target.
#[test]
fn stdin_name_with_and_without_leading_slash() {
    let env = Env::init();
    let size = 3 << 20;
    let fed = Fed::spawn(
        env.cmd([
            "snapshot",
            "--json",
            "--stdin",
            "--stdin-name",
            "db/small.sql",
        ]),
        SqlDump::new(7).bytes(size),
    )
    .wait();
    fed.out.ok();
    let snap = fed.out.json();
    let id = id_of(&snap);
    for (snapshot, path) in [
        ("latest", "/db/small.sql"),
        ("latest", "db/small.sql"),
        (id.as_str(), "db/small.sql"),
        (&id[..12], "/db/small.sql"),
        (&id[..4], "//db//small.sql"),
    ] {
        let (code, digest, len, stderr) = env.dump_digest(snapshot, path, &[]);
        assert_eq!(code, 0, "dump {snapshot} {path}: {stderr}");
        assert_eq!(
            (digest, len),
            (fed.fed_digest, size),
            "dump {snapshot} {path}"
        );
    }
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    let (digest, len) = file_digest(&target.join("db/small.sql"));
    assert_eq!((digest, len), (fed.fed_digest, size));

    // A name given with a leading slash is the same place.
    let fed2 = Fed::spawn(
        env.cmd([
            "snapshot",
            "--json",
            "--stdin",
            "--stdin-name",
            "/db/other.sql",
        ]),
        SqlDump::new(8).bytes(1000),
    )
    .wait();
    fed2.out.ok();
    assert_eq!(
        fed2.out.json()["paths"],
        serde_json::json!(["/db/other.sql"])
    );
    let (code, digest, _, _) = env.dump_digest("latest", "db/other.sql", &[]);
    assert_eq!((code, digest), (0, fed2.fed_digest));
}

/// An empty stream is refused: `pg_dump typo | vault snapshot --stdin` (the dump fails, vault
/// reads 0 bytes) and a closed standard input must not commit a 0-byte "backup" that becomes
/// `latest`. Exit 1, one line naming the stream and `--allow-empty`, nothing committed.
#[test]
fn empty_stdin_is_refused_and_commits_nothing() {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let env = Env::init();
    let line = "vault: db/website.sql: standard input was empty (0 bytes): the program writing it \
                may have failed (`set -o pipefail` makes the shell report that); pass \
                --allow-empty if an empty stream is expected; nothing was committed";
    let args = [
        "snapshot",
        "--json",
        "--stdin",
        "--stdin-name",
        "db/website.sql",
    ];

    // The writer of the pipe fails without writing (here: a command that does not exist).
    let mut writer = Command::new("sh")
        .args(["-c", "vault-test-no-such-dump-command website"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut cmd = env.cmd(args);
    cmd.stdin(writer.stdout.take().unwrap());
    let out = run_cmd(cmd);
    assert!(!writer.wait().unwrap().success());
    out.code(1).no_panic();
    assert_eq!(out.stderr.trim_end(), line);
    assert!(out.stdout.is_empty(), "{}", out.stdout_str());

    // /dev/null, and a standard input that is closed.
    let out = run_cmd(env.cmd(args));
    out.code(1);
    assert_eq!(out.stderr.trim_end(), line);
    let mut closed = env.cmd(args);
    // SAFETY: close(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        closed.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    let out = run_cmd(closed);
    out.code(1);
    assert_eq!(out.stderr.trim_end(), line);

    assert!(env.snapshot_ids().is_empty(), "a snapshot was committed");
}

/// `--command` that exits 0 without writing a byte is refused the same way, naming the
/// command; a failing command that wrote nothing is reported by its exit status.
#[test]
fn empty_command_output_is_refused_and_commits_nothing() {
    let env = Env::init();
    let out = env.run(["snapshot", "--command", "db/x.sql=true"]);
    out.code(1).no_panic();
    assert_eq!(
        out.stderr.trim_end(),
        "vault: db/x.sql: command `true` exited 0 but wrote nothing (0 bytes); pass \
         --allow-empty if an empty stream is expected; nothing was committed"
    );
    let out = env.run(["snapshot", "--command", "db/x.sql=exit 4"]);
    out.code(1);
    assert_eq!(
        out.stderr.trim_end(),
        "vault: db/x.sql: command `exit 4` exited with status 4; nothing was committed"
    );
    assert!(env.snapshot_ids().is_empty(), "a snapshot was committed");
}

/// With `--allow-empty` an empty stream is a valid, empty file, from stdin or a command.
#[test]
fn allow_empty_stores_an_empty_stream_as_an_empty_file() {
    let env = Env::init();
    let fed = Fed::spawn(
        env.cmd([
            "snapshot",
            "--json",
            "--allow-empty",
            "--stdin",
            "--stdin-name",
            "empty.txt",
            "--command",
            "none.txt=true",
        ]),
        std::io::empty(),
    )
    .wait();
    fed.out.ok();
    assert_eq!(fed.out.json()["complete"], true);
    for path in ["/empty.txt", "/none.txt"] {
        let (code, digest, len, stderr) = env.dump_digest("latest", path, &[]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!((digest, len), (blake3::hash(b""), 0), "{path}");
    }
}

/// Stream names that would leave the snapshot's namespace are refused before anything is
/// committed.
#[test]
fn hostile_stdin_names_are_refused() {
    let env = Env::init();
    for name in ["../escape.sql", "db/../../x", "a//b", "./x", "db/", ""] {
        let fed = Fed::spawn(
            env.cmd(["snapshot", "--stdin", "--stdin-name", name]),
            SqlDump::new(1).bytes(100),
        )
        .wait();
        fed.out.code(2);
    }
    assert!(env.snapshot_ids().is_empty(), "a snapshot was committed");
}
