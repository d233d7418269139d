//! How a restore reads and writes content (issue 19 item 3): spans decoded in parallel, each
//! file's next batch looked up and its delta bases fetched while the current one is written.
//! Whatever the overlap, a restore stays exact (content, metadata, hard links, symlinks), fails
//! as a whole when a chunk in the middle of a file is damaged (never leaving that file at its
//! name), and keeps its memory bounded however large the file.
//!
//! Run with `cargo test --release -p vault-cli --test integration restore_plan::`.

use std::fs;
use std::os::unix::fs::symlink;
use std::process::Stdio;

use crate::util::*;

const MIB: u64 = 1 << 20;

/// Thousands of small files (0 bytes to 40 KiB, text and random), added over five snapshots
/// so that the latest one's files lie in many packs, in many directories, with modes, symlinks
/// and hard links: the latest snapshot restores exactly, and `--dry-run --verify` reads it all.
#[test]
fn thousands_of_small_files_across_many_packs_restore_exactly() {
    let env = Env::init();
    let src = env.path("src");
    let mut rng = Rng::new(19);
    let mut n = 0u64;
    for round in 0..5u64 {
        for _ in 0..700 {
            let dir = src.join(format!("d{:02}/s{}", rng.below(40), rng.below(4)));
            let path = dir.join(format!(
                "f{n:05}.{}",
                ["txt", "bin", "json"][n as usize % 3]
            ));
            let len = match rng.below(10) {
                0 => 0,
                1..=6 => rng.below(4096),
                _ => rng.below(40 << 10),
            } as usize;
            let bytes = if n.is_multiple_of(2) {
                compressible_bytes(n, len)
            } else {
                random_bytes(n, len)
            };
            write(&path, &bytes);
            chmod(&path, [0o644, 0o600, 0o755, 0o444][n as usize % 4]);
            if n.is_multiple_of(97) {
                symlink(format!("f{n:05}.txt"), dir.join(format!("link{n}"))).unwrap();
                symlink("/nowhere/at/all", dir.join(format!("dangling{n}"))).unwrap();
            }
            if n.is_multiple_of(131) {
                let other = src.join(format!("d{:02}", n % 40));
                fs::create_dir_all(&other).unwrap();
                fs::hard_link(&path, other.join(format!("hard{n}"))).unwrap();
            }
            n += 1;
        }
        let mut t = 1_700_000_000 + round as i64 * 1000;
        set_all_mtimes(&src, &mut t);
        env.snapshot([&src]);
    }
    let packs = pack_files(&env.repo).len();
    assert!(packs >= 5, "{packs} packs");

    let target = env.path("target");
    let out = env.restore("latest", &target, ["--json"]);
    out.ok().no_panic();
    let report = &out.json()["report"];
    assert_eq!(report["files"].as_u64(), Some(n));
    assert_eq!(report["hardlinks"].as_u64(), Some(n.div_ceil(131)));
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());

    let out = env.restore(
        "latest",
        &env.path("dry"),
        ["--dry-run", "--verify", "--json"],
    );
    out.ok();
    let verified = out.json()["report"]["bytes_verified"].as_u64().unwrap();
    assert!(verified > 0, "--dry-run --verify read nothing");
}

/// A text dump of many batches (16 KiB chunks, 256 to a batch) with one byte flipped in the
/// middle of its pack: the restore fails (exit 1, "damaged"), and the dump is not at its name
/// although the batches before the damage were written; with `--keep-going` it is listed as
/// damaged (exit 3) and the other files are restored.
#[test]
fn damage_in_the_middle_of_a_many_batch_file_fails_the_restore() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("notes.txt"), b"kept\n");
    env.snapshot([&src]);
    let before = pack_files(&env.repo);
    let dump = src.join("db/app.sql");
    fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let mut file = fs::File::create(&dump).unwrap();
    std::io::copy(&mut SqlDump::new(7).bytes(24 * MIB), &mut file).unwrap();
    drop(file);
    env.snapshot([&src]);
    let mut new: Vec<(u64, std::path::PathBuf)> = pack_files(&env.repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .map(|p| (fs::metadata(&p).unwrap().len(), p))
        .collect();
    new.sort();
    let (len, pack) = new.pop().expect("the dump's pack");
    assert!(len > MIB, "the dump's pack is {len} bytes");
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    chmod(&pack, 0o644);
    fs::write(&pack, &bytes).unwrap();

    let target = env.path("t-stop");
    env.restore("latest", &target, Vec::<&str>::new())
        .code(1)
        .stderr_has("damaged")
        .no_panic();
    let restored = Env::restored(&target, &dump);
    assert!(
        fs::symlink_metadata(&restored).is_err(),
        "a partly restored dump was left at its name"
    );

    let target = env.path("t-keep");
    let out = env.restore("latest", &target, ["--keep-going", "--json"]);
    out.code(3).no_panic();
    let damaged = out.json()["report"]["damaged"].clone();
    let listed: Vec<&str> = damaged
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let restored = Env::restored(&target, &dump);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert!(listed[0].starts_with(&format!("{}: ", restored.display())));
    assert!(fs::symlink_metadata(&restored).is_err());
    let notes = Env::restored(&target, &src.join("notes.txt"));
    assert_eq!(fs::read(notes).unwrap(), b"kept\n");
}

/// `VmHWM` (peak resident memory) of process `pid`, in bytes, while it runs.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Runs a `vault` command to its end, reading its peak resident memory every 10 ms (`VmHWM`
/// only grows, so the last reading is the peak up to then; `ru_maxrss` from `wait4` would
/// count the test process's own memory, which the child had before `exec`). Returns the exit
/// code, the peak and stderr.
fn run_measured(mut cmd: std::process::Command) -> (i32, u64, String) {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn vault");
    let mut stderr = child.stderr.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        peak = peak_rss(child.id()).unwrap_or(0).max(peak);
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    (status.code().unwrap_or(-1), peak, drain.join().unwrap())
}

/// A 288 MiB file of random bytes (1 MiB chunks: more than one batch of 256) restores exactly,
/// and the restore's peak resident memory stays far below the file's size although the next
/// batch is prepared while one is written.
#[test]
fn a_file_much_larger_than_a_batch_restores_in_bounded_memory() {
    const SIZE: u64 = 288 * MIB + 4321;
    /// Far below the file's size, far above what a restore needs (spans of at most 4 MiB per
    /// thread, two batches' references and bases).
    const LIMIT: u64 = 160 * MIB;
    let env = Env::init();
    let src = env.path("src");
    write_generated(&src.join("disk.img"), 288, SIZE, random_bytes);
    write(&src.join("small.txt"), b"small\n");
    env.snapshot([&src]);
    let target = env.path("target");
    let mut cmd = env.cmd(["restore", "latest", "--target"]);
    cmd.arg(&target);
    let (code, peak, stderr) = run_measured(cmd);
    assert_eq!(code, 0, "vault restore failed: {stderr}");
    eprintln!(
        "vault restore peak RSS: {} MiB for a {} MiB file",
        peak / MIB,
        SIZE / MIB
    );
    assert!(peak > 0, "no VmHWM read");
    assert!(peak < LIMIT, "peak RSS {peak} restoring {SIZE} bytes");
    let restored = Env::restored(&target, &src);
    assert_eq!(
        file_digest(&restored.join("disk.img")),
        file_digest(&src.join("disk.img"))
    );
    assert_same_tree(&src, &restored, Compare::default());
    // The restored copy is removed at once: the test machine's disk is shared.
    fs::remove_dir_all(&target).unwrap();
}
