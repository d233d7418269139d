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
