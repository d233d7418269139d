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

/// The cache directory holds exactly one index file, none moved aside.
#[track_caller]
fn assert_cache_intact(env: &Env) {
    let repos = names(&env.cache);
    assert_eq!(repos.len(), 1, "cache dirs: {repos:?}");
    let files = names(&env.cache.join(&repos[0]));
    assert_eq!(files, ["index.redb"], "index cache files: {files:?}");
}
