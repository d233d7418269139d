//! Several vault processes using one repository (and one index cache) at the same time.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Instant;

use crate::util::*;

const MIB: u64 = 1 << 20;

/// A source tree of `files` random files of `size` bytes plus one file shared by every source.
fn build_source(dir: &std::path::Path, seed: u64, files: u64, size: u64) {
    for i in 0..files {
        write_generated(
            &dir.join(format!("part-{i:02}.bin")),
            seed * 100 + i,
            size,
            random_bytes,
        );
    }
    // Identical in every source: both processes may try to store its chunks at once.
    write_generated(&dir.join("shared.bin"), 4242, 8 * MIB, random_bytes);
    write_generated(&dir.join("shared.txt"), 4343, 4 * MIB, compressible_bytes);
}

/// The stream each process reads: 16 MiB shared by both (stored by whichever gets there
/// first, possibly both), then 96 MiB of its own incompressible data.
fn stream(seed: u64) -> impl Read {
    let shared = (0..16u64).map(|b| random_bytes(7000 + b, MIB as usize));
    let own = (0..96u64).map(move |b| random_bytes(seed * 1000 + b, MIB as usize));
    let blocks: Vec<Vec<u8>> = shared.chain(own).collect();
    std::io::Cursor::new(blocks.concat())
}

#[test]
fn two_simultaneous_snapshots_into_one_repository() {
    let env = Env::init();
    let a = env.path("src-a");
    let b = env.path("src-b");
    build_source(&a, 1, 6, 16 * MIB);
    build_source(&b, 2, 6, 16 * MIB);

    let spawn = |src: &std::path::Path, tag: &str| {
        let mut cmd = env.cmd(["snapshot", "--json", "--stdin", "--stdin-name"]);
        cmd.arg(format!("{tag}.bin")).args(["--tag", tag]).arg(src);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        (cmdline_of(&cmd), cmd.spawn().expect("spawn vault snapshot"))
    };
    let started = Instant::now();
    let (cmd_a, mut child_a) = spawn(&a, "a");
    let (cmd_b, mut child_b) = spawn(&b, "b");
    // Feed both streams in lockstep, 1 MiB at a time: a pipe holds only 64 KiB, so neither
    // process can finish its stream (and so its snapshot) before the other has read all but
    // the last MiB of its own. They overlap in time however fast the machine is.
    let mut in_a = child_a.stdin.take().unwrap();
    let mut in_b = child_b.stdin.take().unwrap();
    let (mut sa, mut sb) = (stream(1), stream(2));
    let (mut ha, mut hb) = (blake3::Hasher::new(), blake3::Hasher::new());
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let mut progressed = false;
        for (src, dst, h) in [(&mut sa, &mut in_a, &mut ha), (&mut sb, &mut in_b, &mut hb)] {
            let n = src.read(&mut buf).unwrap();
            if n > 0 {
                dst.write_all(&buf[..n]).expect("feeding a snapshot");
                h.update(&buf[..n]);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    drop((in_a, in_b));
    let finish = |cmdline: String, child: std::process::Child| {
        let output = child.wait_with_output().unwrap();
        let out = Out {
            cmdline,
            code: output.status.code().expect("exited"),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        out.ok();
        assert_no_cache_trouble(&out.stderr);
        let v = out.json();
        check_snapshot_json(&v);
        v
    };
    let snap_a = finish(cmd_a, child_a);
    let snap_b = finish(cmd_b, child_b);
    let secs = |v: &serde_json::Value| v["summary"]["duration_secs"].as_f64().unwrap();
    eprintln!(
        "concurrency: both done in {:.2?}; durations {:.2}s and {:.2}s",
        started.elapsed(),
        secs(&snap_a),
        secs(&snap_b)
    );
    for s in [&snap_a, &snap_b] {
        assert_eq!(s["complete"], true, "{s}");
    }
    assert_cache_intact(&env);

    let ids = env.snapshot_ids();
    assert_eq!(
        ids,
        [id_of(&snap_a), id_of(&snap_b)].into_iter().collect(),
        "list does not show exactly both snapshots"
    );

    let digests = [ha.finalize(), hb.finalize()];
    for (i, (snap, src, name)) in [(&snap_a, &a, "a"), (&snap_b, &b, "b")]
        .into_iter()
        .enumerate()
    {
        let target = env.path(format!("t{name}"));
        env.restore(&id_of(snap), &target, Vec::<&str>::new()).ok();
        assert_same_tree(src, &Env::restored(&target, src), Compare::default());
        assert_eq!(
            file_digest(&target.join(format!("{name}.bin"))),
            (digests[i], 112 * MIB)
        );
    }
    // latest honours the tag written by each process.
    let (code, digest, _, stderr) = env.dump_digest(
        "latest",
        a.join("part-03.bin").to_str().unwrap(),
        &["--tag", "a"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(digest, file_digest(&a.join("part-03.bin")).0);
}

/// Many small concurrent stdin snapshots, plus concurrent readers (`list`), against a
/// repository and index cache none of them created.
#[test]
fn many_concurrent_small_snapshots_and_readers() {
    let env = Env::init();
    // Nobody has an index cache yet: every process creates or catches up the same one.
    // (Removed before any process starts: removing it under running writers races with
    // them creating it.)
    std::fs::remove_dir_all(&env.cache).unwrap();
    let n = 6u64;
    let writers: Vec<_> = (0..n)
        .map(|i| {
            let cmd = env.cmd([
                "snapshot".to_string(),
                "--json".into(),
                "--stdin".into(),
                "--stdin-name".into(),
                format!("db/{i}.sql"),
                "--label".into(),
                format!("n={i}"),
            ]);
            // Half of the content is shared by all writers.
            let data = if i % 2 == 0 {
                SqlDump::new(5)
            } else {
                SqlDump::new(100 + i)
            };
            Fed::spawn(cmd, data.bytes(24 * MIB))
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut cmd = env.cmd(["list", "--json"]);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let mut expected = Vec::new();
    for (i, w) in writers.into_iter().enumerate() {
        let fed = w.wait();
        fed.out.ok();
        assert_no_cache_trouble(&fed.out.stderr);
        let v = fed.out.json();
        assert_eq!(v["labels"]["n"], i.to_string());
        expected.push((i, id_of(&v), fed.fed_digest));
    }
    for r in readers {
        let out = r.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list JSON");
    }
    assert_eq!(env.snapshot_ids().len(), n as usize);
    assert_cache_intact(&env);
    for (i, id, digest) in expected {
        let (code, got, len, stderr) = env.dump_digest(&id, &format!("/db/{i}.sql"), &[]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!((got, len), (digest, 24 * MIB), "stream {i}");
    }
}

/// No process found the shared index cache unusable (it would have moved it aside).
#[track_caller]
fn assert_no_cache_trouble(stderr: &str) {
    for bad in ["unusable", "could not be indexed", "rebuilt", "warning"] {
        assert!(!stderr.contains(bad), "index cache trouble: {stderr}");
    }
}

/// The cache directory holds exactly one index file (of one repository at one location),
/// none moved aside.
#[track_caller]
fn assert_cache_intact(env: &Env) {
    let repos = names(&env.cache);
    assert_eq!(repos.len(), 1, "cache dirs: {repos:?}");
    let locations = names(&env.cache.join(&repos[0]));
    assert_eq!(
        locations.len(),
        1,
        "cache dirs of the repository: {locations:?}"
    );
    let files = names(&env.cache.join(&repos[0]).join(&locations[0]));
    assert_eq!(files, ["index.redb"], "index cache files: {files:?}");
}

/// The three ways a snapshot gets its data, each held open at a gate the test controls.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// `--stdin`: the test holds the pipe open.
    Stream,
    /// `--command`: the command waits for a file the test creates.
    Command,
    /// A directory tree (the forgotten snapshot's files and new ones), walked after a tiny
    /// `--command` that waits for the test; the unchanged files deduplicate against packs the
    /// prune condemns.
    Tree,
}

/// A snapshot taken from one host (cache `c1`) while a prune from another host (cache `c2`)
/// waits for it: the prune must take in the packs the snapshot wrote (its own index has never
/// seen them), rescue the condemned blobs the snapshot reuses, and leave a repository that a
/// third host verifies clean and restores the moment the prune exits.
fn snapshot_committed_while_a_prune_from_another_cache_waits(kind: Source) {
    let env = Env::init();
    let [c1, c2, c3] = ["c1", "c2", "c3"].map(|c| env.path(c));
    let with_cache = |cache: &std::path::Path, args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env("VAULT_CACHE_DIR", cache);
        cmd
    };
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    write_generated(&src.join("old-a.bin"), 11, 6 * MIB, random_bytes);
    write_generated(&src.join("old-b.txt"), 12, 3 * MIB, compressible_bytes);
    let old = run_cmd(with_cache(
        &c1,
        &["snapshot", "--json", src.to_str().unwrap()],
    ));
    let old = id_of(&old.ok().json());
    run_cmd(with_cache(&c1, &["forget", &old])).ok();

    let started = env.path("started");
    let go = env.path("go");
    let gate = format!(
        "touch {started}; while [ ! -e {go} ]; do sleep 0.02; done",
        started = started.display(),
        go = go.display()
    );
    let mut args: Vec<String> = vec!["snapshot".into(), "--json".into()];
    match kind {
        Source::Stream => args.extend(["--stdin".into(), "--stdin-name".into(), "db/s.sql".into()]),
        Source::Command => args.extend([
            "--command".into(),
            // 24 MiB before the gate (a pipe holds 64 KiB, so `started` appears only once
            // vault has read nearly all of it), 8 MiB after.
            format!(
                "db/s.sql=head -c {} /dev/urandom; {gate}; head -c {} /dev/urandom",
                24 * MIB,
                8 * MIB
            ),
        ]),
        Source::Tree => {
            write_generated(&src.join("new-c.bin"), 13, 12 * MIB, random_bytes);
            args.extend([
                "--command".into(),
                format!("gate.txt={gate}; echo open"),
                src.to_str().unwrap().into(),
            ]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut writer = with_cache(&c1, &args);
    writer
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut writer = writer.spawn().expect("spawn vault snapshot");
    let mut fed = blake3::Hasher::new();
    let mut stdin = writer.stdin.take();
    match kind {
        Source::Stream => {
            // Returns once vault has read all but a pipe's worth: it is registered by then.
            let data = random_bytes(21, 24 * MIB as usize);
            stdin.as_mut().unwrap().write_all(&data).unwrap();
            fed.update(&data);
        }
        Source::Command | Source::Tree => {
            let t = Instant::now();
            while !started.exists() {
                assert!(
                    t.elapsed().as_secs() < 60,
                    "the snapshot never reached its gate"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    // The prune from another host: it condemns the forgotten snapshot's packs and waits for the
    // running snapshot before deleting them.
    let mut prune = with_cache(&c2, &["prune", "--json"]);
    prune.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut prune = prune.spawn().expect("spawn vault prune");
    let mut prune_err = std::io::BufReader::new(prune.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut prune_err, &mut line).unwrap();
        assert!(
            n > 0,
            "prune ended without waiting for the snapshot: {seen}"
        );
        seen.push_str(&line);
        if line.contains("waiting for") {
            break;
        }
    }
    // Open the gate: the snapshot writes the rest of its data and commits while the prune waits.
    match kind {
        Source::Stream => {
            let data = random_bytes(22, 8 * MIB as usize);
            stdin.as_mut().unwrap().write_all(&data).unwrap();
            fed.update(&data);
            drop(stdin.take());
        }
        Source::Command | Source::Tree => std::fs::write(&go, b"").unwrap(),
    }
    let snap = writer.wait_with_output().unwrap();
    assert!(
        snap.status.success(),
        "snapshot: {}",
        String::from_utf8_lossy(&snap.stderr)
    );
    let snap: serde_json::Value = serde_json::from_slice(&snap.stdout).unwrap();
    let new_id = id_of(&snap);
    let mut rest = String::new();
    prune_err.read_to_string(&mut rest).unwrap();
    let pruned = prune.wait_with_output().unwrap();
    assert!(
        pruned.status.success(),
        "prune failed ({:?}): {seen}{rest}",
        pruned.status
    );
    let report: serde_json::Value = serde_json::from_slice(&pruned.stdout).unwrap();
    assert_eq!(report["snapshots_deleted"], 1, "{report}");
    if let Source::Tree = kind {
        assert!(report["blobs_rescued"].as_u64().unwrap() > 0, "{report}");
    }

    // A third host, right after the prune: clean, and the new snapshot restores exactly.
    run_cmd(with_cache(&c3, &["verify", "--read-data"])).ok();
    for cache in [&c3, &c1, &c2] {
        match kind {
            Source::Stream | Source::Command => {
                let mut dump = with_cache(cache, &["dump", &new_id, "/db/s.sql"]);
                dump.stdout(Stdio::piped());
                let out = dump.output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                if let Source::Stream = kind {
                    assert_eq!(blake3::hash(&out.stdout), fed.finalize());
                } else {
                    // The command's bytes are random and unseen: their count, and verify above.
                    assert_eq!(out.stdout.len() as u64, 32 * MIB);
                }
            }
            Source::Tree => {
                let target = env.path(format!(
                    "t-{}",
                    cache.file_name().unwrap().to_str().unwrap()
                ));
                let mut restore = with_cache(cache, &["restore", &new_id, "--target"]);
                restore.arg(&target);
                run_cmd(restore).ok();
                assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
            }
        }
    }
}

#[test]
fn stream_snapshot_committed_while_a_prune_from_another_cache_waits() {
    snapshot_committed_while_a_prune_from_another_cache_waits(Source::Stream);
}

#[test]
fn command_snapshot_committed_while_a_prune_from_another_cache_waits() {
    snapshot_committed_while_a_prune_from_another_cache_waits(Source::Command);
}

#[test]
fn tree_snapshot_committed_while_a_prune_from_another_cache_waits() {
    snapshot_committed_while_a_prune_from_another_cache_waits(Source::Tree);
}
