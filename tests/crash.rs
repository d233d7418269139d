//! Crash consistency: `vault snapshot` and `vault prune` killed with SIGKILL at random points.
//! After each kill, `vault verify --read-data` is clean, every snapshot `vault list` shows
//! restores byte-exact, no partial snapshot appears, and the next run succeeds.
//!
//! A separate test binary so that the long run can be asked for alone:
//!
//! ```text
//! VAULT_CRASH_ITERATIONS=50 cargo test --release -p vault-cli --test crash
//! ```
//! The default run (part of `cargo test --workspace`) does 5 iterations of each.

mod util;

use std::process::Stdio;
use std::time::{Duration, Instant};

use util::history::*;
use util::*;

fn crash_iterations() -> usize {
    std::env::var("VAULT_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Prune killed with SIGKILL at random points: every remaining snapshot restores byte-exact,
/// verify --read-data is clean, and the next prune finishes the job.
#[test]
fn prune_killed_at_random_points_leaves_a_repository_that_verifies_and_a_rerun_finishes() {
    let mut rng = Rng::new(0x5eed);
    for round in 0..crash_iterations() {
        let env = Env::init();
        let mut days = Days::new(&env);
        let snaps: Vec<String> = (1..=6).map(|d| days.snapshot(&env, d, &[])).collect();
        env.run(["forget", "--keep-last", "2"]).ok();

        // How long an undisturbed prune of this repository takes, measured on a copy.
        let probe = Env::new();
        copy_dir(&env.repo, &probe.repo);
        let t = Instant::now();
        probe.run(["prune", "--max-unused", "0%"]).ok();
        let full = t.elapsed();

        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        let mut child = env.cmd(["prune", "--max-unused", "0%"]);
        child.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = child.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let plan_left = objects(&env.repo.join("prune"));
        eprintln!(
            "round {round}: killed after {delay:?} of {full:?}: {}, plans left {plan_left}",
            if status.success() {
                "had finished"
            } else {
                "interrupted"
            }
        );

        let remaining = ids(&env.list(Vec::<String>::new()));
        assert_eq!(remaining, snaps[4..].to_vec(), "round {round}");
        verify_clean(&env);
        for id in &remaining {
            days.check_restore(&env, id);
        }
        let rerun = env
            .run(["prune", "--max-unused", "0%", "--json"])
            .ok()
            .json();
        assert_eq!(rerun["pending"], false, "round {round}: {rerun}");
        assert_eq!(
            objects(&env.repo.join("prune")),
            0,
            "round {round}: a plan is left"
        );
        verify_clean(&env);
        let next = days.snapshot(&env, 7, &[]);
        days.check_restore(&env, &next);
        for id in &remaining {
            days.check_restore(&env, id);
        }
    }
}

/// Snapshot killed at random points while it stores new data (files and a stream): the
/// snapshots committed before are intact, the killed one is absent (never partial), and the
/// repository verifies clean and takes the next snapshot.
#[test]
fn snapshot_killed_at_random_points_leaves_no_partial_snapshot_and_a_clean_repository() {
    let mut rng = Rng::new(0xc0ffee);
    for round in 0..crash_iterations() {
        let env = Env::init();
        let mut days = Days::new(&env);
        let before: Vec<String> = (1..=2).map(|d| days.snapshot(&env, d, &[])).collect();
        // New data for the killed run: a bigger day file plus a stream.
        write(
            &days.src.join("big-new.bin"),
            &random_bytes(1000 + round as u64, 24 << 20),
        );
        let stream = env.path("stream.sql");
        write(&stream, &compressible_bytes(2000 + round as u64, 16 << 20));
        let args = |env: &Env| {
            let mut cmd = env.cmd([
                "snapshot",
                "--command",
                &format!("db/app.sql=cat {}", stream.display()),
            ]);
            cmd.arg(&days.src);
            cmd
        };

        // How long an undisturbed run takes, on a copy.
        let probe = Env::new();
        copy_dir(&env.repo, &probe.repo);
        let t = Instant::now();
        run_cmd({
            let mut c = args(&probe);
            c.env("VAULT_REPO", &probe.repo)
                .env("VAULT_CACHE_DIR", &probe.cache);
            c
        })
        .ok();
        let full = t.elapsed();

        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        let mut child = args(&env);
        child.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = child.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!(
            "round {round}: killed after {delay:?} of {full:?}: {}",
            if status.success() {
                "had finished"
            } else {
                "interrupted"
            }
        );

        let listed = ids(&env.list(Vec::<String>::new()));
        if status.success() {
            assert_eq!(listed.len(), 3, "round {round}: {listed:?}");
        } else if listed != before {
            // Killed after its manifest was committed, before the process exited: then the
            // snapshot must be whole, never partial.
            assert_eq!(listed.len(), 3, "round {round}: {listed:?}");
            assert_eq!(listed[..2], before[..], "round {round}");
            let (code, digest, len, stderr) = env.dump_digest(&listed[2], "/db/app.sql", &[]);
            assert_eq!(code, 0, "round {round}: {stderr}");
            assert_eq!(
                (digest, len),
                file_digest(&stream),
                "round {round}: a killed snapshot was committed partial"
            );
            let (code, digest, len, stderr) = env.dump_digest(
                &listed[2],
                days.src.join("big-new.bin").to_str().unwrap(),
                &[],
            );
            assert_eq!(code, 0, "round {round}: {stderr}");
            assert_eq!((digest, len), file_digest(&days.src.join("big-new.bin")));
        }
        verify_clean(&env);
        for id in &before {
            days.check_restore(&env, id);
        }
        // The next snapshot succeeds, reuses what the killed one stored, and restores exactly.
        let next = days.snapshot(&env, 3, &[]);
        days.check_restore(&env, &next);
        verify_clean(&env);
    }
}

/// The temporary files of killed writers: a snapshot killed mid-stream leaves its pack being
/// filled (and maybe packs waiting for their fsync) as `.tmp-*` files. The next prune removes
/// them, and only them: a temporary file of a process that still runs, of another host, or
/// without a process tag stays.
#[test]
fn prune_removes_the_temporary_files_of_killed_writers_and_only_those() {
    let env = Env::init();
    let kept = env.snapshot(["--command", "db.sql=head -c 3000000 /dev/urandom"]);

    // Killed once it has read (and packed) 24 MiB of the 40 it is fed.
    for round in 0..3u64 {
        let mut cmd = env.cmd(["snapshot", "--stdin", "--stdin-name", "db/s.sql"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, &random_bytes(100 + round, 24 << 20)).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let left = temporary_files(&env.repo);
    assert!(
        !left.is_empty(),
        "the killed snapshots left no temporary file"
    );

    // Three that must stay: one of a live process, one of another host, one untagged.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let digest = |s: &str| blake3::hash(s.trim().as_bytes()).to_hex()[..8].to_string();
    let mut live = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", live.id())).unwrap();
    let ticks = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let stay = [
        format!(
            ".tmp-{}{}-{}-{ticks}-00112233aabbccdd",
            digest(&host),
            digest(&boot),
            live.id()
        ),
        format!(".tmp-ffffffff{}-1-1-00112233aabbccdd", digest(&boot)),
        ".tmp-00112233aabbccdd".to_string(),
    ];
    for name in &stay {
        write(&env.repo.join("packs").join(name), b"not yet a pack");
    }

    let report = env.run(["prune", "--json"]).ok().json();
    live.kill().unwrap();
    live.wait().unwrap();
    assert_eq!(report["temp_files_removed"], left.len() as u64, "{report}");
    let mut after = temporary_files(&env.repo);
    after.sort();
    let mut expected: Vec<std::path::PathBuf> = stay
        .iter()
        .map(|n| env.repo.join("packs").join(n))
        .collect();
    expected.sort();
    assert_eq!(after, expected);
    env.run(["verify", "--read-data"]).ok();
    let (code, _, len, stderr) = env.dump_digest(&id_of(&kept), "/db.sql", &[]);
    assert_eq!((code, len), (0, 3_000_000), "{stderr}");
}

/// Every `.tmp-*` file in the repository.
fn temporary_files(repo: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![repo.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".tmp-")
            {
                out.push(path);
            }
        }
    }
    out
}
