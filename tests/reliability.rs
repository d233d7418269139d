//! What vault does when the world misbehaves: a full repository disk, locks and registrations
//! left by processes that are gone (or that live on another host), and hostile source trees
//! (symlink loops, the longest names, paths longer than `PATH_MAX`, deep nesting, a 10 GiB
//! sparse file, a dump command killed mid-stream, files vanishing during the walk).
//!
//! Every failure is checked for its exact exit code and for one `vault: ...` line that names
//! the path and what to do, never a panic. The full-disk tests mount a small tmpfs and so need
//! root; without it (or when `mount` fails) they print why they are skipped and pass.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{symlink, FileExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::history::*;
use crate::util::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

#[track_caller]
fn no_panic(out: &Out) {
    out.no_panic();
}

/// Asserts a failure reported as exactly one `vault: ` line (no panic, no chatter).
#[track_caller]
fn one_error_line(out: &Out) -> &str {
    no_panic(out);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("vault: "),
        "{}: expected one `vault: ` line on stderr, got:\n{}",
        out.cmdline,
        out.stderr
    );
    lines[0]
}

/// A tmpfs of `size` mounted at `dir` for one test; unmounted when dropped (also on panic).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts it, or says why it cannot (not root, no `mount`, not permitted in this container).
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still has a file open there (a vault a failed assertion left running).
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED reliability::{test}: {why}");
}

/// Every `.tmp-*` file under `dir` (a writer's temporary files must never be left behind).
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                out.push(e.path());
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Names of the pack files of a repository.
fn pack_names(repo: &Path) -> BTreeSet<String> {
    pack_files(repo)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Fills the filesystem holding `path` by writing `path` until the device refuses a single
/// byte more.
fn fill_device(path: &Path) {
    let mut f = File::create(path).unwrap();
    for block in [MIB as usize, 4096, 1] {
        let buf = vec![0xA5u8; block];
        loop {
            match f.write_all(&buf) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
}

/// This host's name as vault records it.
use vault_engine::host::hostname;

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

/// The id of a process that has exited (and been reaped): no process runs under it now.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// This process's start time in clock ticks since boot (`/proc/self/stat` field 22).
fn own_start_ticks() -> u64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// An owner record as `engine/src/repo/writers.rs` writes it. `start_ticks` is non-zero so that
/// a dead pid reused by another process in the meantime still counts as another process.
fn owner(host: &str, pid: u32, start_ticks: u64, what: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "host": host,
        "pid": pid,
        "boot_id": boot_id(),
        "start_ticks": start_ticks,
        "time": "2026-01-01T00:00:00Z",
        "what": what,
    }))
    .unwrap()
}

/// A repository holding one snapshot of unique data that is forgotten, so that a prune has
/// a pack to delete (and so a plan to finish, for which it looks at `writers/`).
fn forgotten_snapshot(env: &Env, seed: u64) {
    let src = env.path(format!("forgotten-{seed}"));
    write(&src.join("data.bin"), &random_bytes(seed, 2 * MIB as usize));
    let id = id_of(&env.snapshot([&src]));
    env.run(["forget", &id]).ok();
}

fn problems(snap: &Value) -> BTreeSet<(String, String)> {
    snap["summary"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Full disk
// ------------------------------------------------------------------------------------------------

/// The repository on a 48 MiB device: an 80 MiB snapshot runs out of space and fails with one
/// line naming the repository and the fix; nothing is committed, no temporary file is left,
/// the repository verifies clean and restores. On the disk filled to the last byte `prune`
/// itself cannot start (it must write its lock) and says so the same way, changing nothing;
/// `verify` still runs (it only reads). With a little room, `prune` deletes the packs the
/// failed snapshot left, reports the bytes it freed, and the next snapshot fits.
#[test]
fn full_repository_disk_fails_cleanly_and_prune_makes_room() {
    let mut env = Env::new();
    let mount = env.path("small");
    let _tmpfs = match Tmpfs::mount(&mount, "48m") {
        Ok(t) => t,
        Err(why) => {
            return skip(
                "full_repository_disk_fails_cleanly_and_prune_makes_room",
                &why,
            )
        }
    };
    env.repo = mount.join("repo");
    env.run(["init", "--encryption", "none"]).ok();

    let first_src = env.path("first");
    write_generated(&first_src.join("a.bin"), 1, 8 * MIB, random_bytes);
    let first = id_of(&env.snapshot([&first_src]));

    let big = env.path("big");
    write_generated(&big.join("b.bin"), 2, 80 * MIB, random_bytes);
    let mut cmd = env.cmd(["snapshot", "--json"]);
    cmd.arg(&big);
    let out = run_cmd(cmd);
    out.code(1);
    let line = one_error_line(&out);
    for needle in [
        "No space left on device",
        &format!(
            "no space left on the device of repository {}",
            env.repo.display()
        ),
        "nothing was committed",
        "free space there",
        "vault prune",
    ] {
        assert!(line.contains(needle), "{needle:?} not in: {line}");
    }
    assert!(out.stdout.is_empty(), "{}", out.stdout_str());
    assert_eq!(env.snapshot_ids(), BTreeSet::from([first.clone()]));
    assert_eq!(temp_files(&env.repo), Vec::<PathBuf>::new());
    let left_by_failure = pack_names(&env.repo);

    // The disk filled to the last byte: prune cannot take its lock; nothing changes.
    let filler = mount.join("filler");
    fill_device(&filler);
    let out = env.run(["prune", "--json"]);
    out.code(1);
    let line = one_error_line(&out);
    assert!(line.contains("locks"), "{line}");
    assert!(
        line.contains(&format!(
            "no space left on the device of repository {}",
            env.repo.display()
        )),
        "{line}"
    );
    assert_eq!(pack_names(&env.repo), left_by_failure);
    assert_eq!(
        names(&env.repo.join("locks")),
        Vec::<std::ffi::OsString>::new()
    );
    assert_eq!(temp_files(&env.repo), Vec::<PathBuf>::new());
    // Reading needs no space.
    verify_clean(&env);
    let target = env.path("restore-1");
    env.restore(&first, &target, Vec::<&str>::new()).ok();
    assert_same_tree(
        &first_src,
        &Env::restored(&target, &first_src),
        Compare::default(),
    );
    fs::remove_file(&filler).unwrap();

    // Prune deletes what the failed snapshot stored: no snapshot references it.
    let packs_before = dir_bytes(&env.repo.join("packs"));
    let report = env.run(["prune", "--json"]).ok().json();
    let freed = report["bytes_freed"].as_u64().unwrap();
    assert!(freed > 8 * MIB, "freed only {freed} bytes: {report}");
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        packs_before - dir_bytes(&env.repo.join("packs")),
        freed,
        "{report}"
    );
    assert_eq!(report["snapshots"], 1, "{report}");
    let human = env.run(["prune", "--dry-run"]);
    human.ok();
    assert!(
        human.stdout_str().contains("freed"),
        "{}",
        human.stdout_str()
    );

    // A snapshot that fits now succeeds, and everything restores.
    let second_src = env.path("second");
    write_generated(&second_src.join("c.bin"), 3, 24 * MIB, random_bytes);
    let second = id_of(&env.snapshot([&second_src]));
    verify_clean(&env);
    for (id, src) in [(&first, &first_src), (&second, &second_src)] {
        let target = env.path(format!("restore-{}", &id[..8]));
        env.restore(id, &target, Vec::<&str>::new()).ok();
        assert_same_tree(src, &Env::restored(&target, src), Compare::default());
    }
    assert_eq!(temp_files(&env.repo), Vec::<PathBuf>::new());
}

/// A full restore target is not the repository's problem: the message names the target path
/// and its device, and does not claim anything about the repository.
#[test]
fn full_restore_target_names_the_target_device() {
    let env = Env::init();
    let mount = env.path("small-target");
    let _tmpfs = match Tmpfs::mount(&mount, "1m") {
        Ok(t) => t,
        Err(why) => return skip("full_restore_target_names_the_target_device", &why),
    };
    let src = env.path("src");
    write_generated(&src.join("f.bin"), 4, 3 * MIB, random_bytes);
    env.snapshot([&src]);
    let target = mount.join("t");
    let out = env.restore(
        &format!("latest:{}", src.display()),
        &target,
        Vec::<&str>::new(),
    );
    out.code(1);
    let line = one_error_line(&out);
    assert!(
        line.contains(&target.join("f.bin").display().to_string()),
        "{line}"
    );
    assert!(
        line.contains("no space left on the device holding this path; free space there"),
        "{line}"
    );
    assert!(!line.contains("repository"), "{line}");
    verify_clean(&env);
}

// ------------------------------------------------------------------------------------------------
// Stale locks and registrations
// ------------------------------------------------------------------------------------------------

/// A prune lock left by a process of this host and boot that no longer runs is taken over,
/// with a warning on stderr and `stale_lock_taken_over` in the report.
#[test]
fn prune_takes_over_the_lock_of_a_dead_process_on_this_host() {
    let env = Env::init();
    forgotten_snapshot(&env, 11);
    let pid = dead_pid();
    let host = hostname();
    fs::write(env.repo.join("locks/prune"), owner(&host, pid, 1, "prune")).unwrap();

    let out = env.run(["prune", "--json"]);
    out.ok();
    no_panic(&out);
    let holder = format!("prune on host {host} (pid {pid}, since 2026-01-01T00:00:00Z)");
    out.stderr_has(&format!(
        "took over the prune lock of a process that no longer runs: {holder}"
    ));
    let report = out.json();
    assert_eq!(report["stale_lock_taken_over"], json!(holder), "{report}");
    assert_eq!(report["snapshots_deleted"], 1, "{report}");
    assert!(names(&env.repo.join("locks")).is_empty());
    verify_clean(&env);
}

/// A prune lock that names another host (or a live process here, or that cannot be read) is
/// never broken: prune exits 4 naming `locks/prune` and `vault unlock`; `vault unlock` keeps it
/// and says so; `vault unlock --remove-all` removes it; then prune runs.
#[test]
fn prune_lock_of_another_host_or_a_live_process_is_kept_until_unlock_remove_all() {
    let env = Env::init();
    forgotten_snapshot(&env, 12);
    let lock = env.repo.join("locks/prune");
    let host = hostname();
    let cases: [(&str, Vec<u8>, String); 3] = [
        (
            "another host",
            owner("elsewhere.example", dead_pid(), 1, "prune"),
            "prune on host elsewhere.example".to_string(),
        ),
        (
            "a live process on this host",
            owner(&host, std::process::id(), own_start_ticks(), "prune"),
            format!("prune on host {host} (pid {}", std::process::id()),
        ),
        (
            "an unreadable owner",
            b"{ not json".to_vec(),
            "unreadable lock prune".to_string(),
        ),
    ];
    for (case, content, described) in cases {
        fs::write(&lock, &content).unwrap();
        let out = env.run(["prune"]);
        out.code(4);
        let line = one_error_line(&out);
        for needle in [
            format!("{}/locks/prune is held by", env.repo.display()),
            "vault unlock".to_string(),
        ] {
            assert!(line.contains(&needle), "{case}: {needle:?} not in {line}");
        }
        assert_eq!(fs::read(&lock).unwrap(), content, "{case}: lock changed");

        let kept = env.run(["unlock", "--json"]).ok().json();
        assert_eq!(kept["removed"], json!([]), "{case}: {kept}");
        let kept_list = kept["kept"].as_array().unwrap();
        assert!(
            kept_list.len() == 1 && kept_list[0].as_str().unwrap().contains(&described),
            "{case}: {kept}"
        );
        let human = env.run(["unlock"]);
        human.ok();
        assert!(
            human.stdout_str().contains("--remove-all removes it"),
            "{case}: {}",
            human.stdout_str()
        );
        assert!(lock.exists(), "{case}: vault unlock removed a live lock");

        let removed = env.run(["unlock", "--remove-all", "--json"]).ok().json();
        assert_eq!(removed["kept"], json!([]), "{case}: {removed}");
        assert_eq!(
            removed["removed"].as_array().unwrap().len(),
            1,
            "{case}: {removed}"
        );
        assert!(!lock.exists(), "{case}: --remove-all left the lock");
    }
    let report = env.run(["prune", "--json"]).ok().json();
    assert_eq!(report["snapshots_deleted"], 1, "{report}");
    assert_eq!(report["stale_lock_taken_over"], Value::Null, "{report}");
    verify_clean(&env);
}

/// Snapshot registrations (`writers/`): a dead one of this host is removed by prune with a
/// warning; one from another host counts as running, so `prune --no-wait` leaves its plan
/// pending; `vault unlock` keeps it, `--remove-all` removes it, and the next prune finishes.
#[test]
fn stale_writer_registrations_dead_here_are_removed_and_from_elsewhere_kept_until_unlock() {
    let env = Env::init();
    let writers = env.repo.join("writers");
    let host = hostname();

    forgotten_snapshot(&env, 13);
    let pid = dead_pid();
    fs::write(
        writers.join("0123456789abcdef0123456789abcdef"),
        owner(&host, pid, 1, "snapshot"),
    )
    .unwrap();
    let out = env.run(["prune", "--json"]);
    out.ok();
    no_panic(&out);
    out.stderr_has(&format!(
        "removing the registration of a snapshot that is no longer running: snapshot on host {host} (pid {pid}"
    ));
    let report = out.json();
    assert_eq!(report["pending"], false, "{report}");
    assert_eq!(report["waited_for"], json!([]), "{report}");
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    assert!(names(&writers).is_empty());

    forgotten_snapshot(&env, 14);
    let elsewhere = writers.join("fedcba9876543210fedcba9876543210");
    fs::write(&elsewhere, owner("elsewhere.example", 4242, 1, "snapshot")).unwrap();
    let report = env.run(["prune", "--no-wait", "--json"]).ok().json();
    assert_eq!(report["pending"], true, "{report}");
    assert!(
        report["waited_for"][0]
            .as_str()
            .unwrap()
            .contains("snapshot on host elsewhere.example (pid 4242"),
        "{report}"
    );
    assert_eq!(objects(&env.repo.join("prune")), 1, "no plan left");
    assert!(elsewhere.exists());

    let kept = env.run(["unlock", "--json"]).ok().json();
    assert_eq!(kept["removed"], json!([]), "{kept}");
    assert_eq!(kept["kept"].as_array().unwrap().len(), 1, "{kept}");
    assert!(elsewhere.exists());
    let removed = env.run(["unlock", "--remove-all", "--json"]).ok().json();
    assert_eq!(removed["removed"].as_array().unwrap().len(), 1, "{removed}");
    assert!(names(&writers).is_empty());

    let report = env.run(["prune", "--json"]).ok().json();
    assert_eq!(report["plans_finished"], 1, "{report}");
    assert_eq!(report["pending"], false, "{report}");
    assert_eq!(objects(&env.repo.join("prune")), 0);
    verify_clean(&env);
}

// ------------------------------------------------------------------------------------------------
// Hostile source trees
// ------------------------------------------------------------------------------------------------

/// Symlinks are recorded, never followed: a loop (a -> b -> a), links to their own directory
/// and to the source root, and a dangling one round-trip as symlinks with their targets; a
/// source path that is itself a looping symlink is stored as that symlink.
#[test]
fn symlink_loops_and_links_to_their_own_directory_are_stored_as_symlinks() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir_all(src.join("loop")).unwrap();
    fs::create_dir_all(src.join("self")).unwrap();
    symlink("b", src.join("loop/a")).unwrap();
    symlink("a", src.join("loop/b")).unwrap();
    symlink(".", src.join("self/me")).unwrap();
    symlink("../self", src.join("self/up")).unwrap();
    symlink(&src, src.join("root")).unwrap();
    symlink("nowhere/at/all", src.join("dangling")).unwrap();
    write(&src.join("self/file.txt"), b"only once\n");

    let snap = env.snapshot([&src]);
    assert_eq!(snap["complete"], true, "{snap}");
    assert_eq!(summary(&snap, "files"), 1, "a symlink was followed: {snap}");
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());

    let link = src.join("loop/a");
    let snap = env.snapshot([&link]);
    assert_eq!(snap["complete"], true, "{snap}");
    let target = env.path("t2");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    let restored = Env::restored(&target, &link);
    assert!(fs::symlink_metadata(&restored).unwrap().is_symlink());
    assert_eq!(fs::read_link(&restored).unwrap(), PathBuf::from("b"));
}

/// The longest names a filesystem allows (255 bytes, also non-UTF-8) for every kind of entry,
/// and symlink targets of 4095 bytes, round-trip exactly.
#[test]
fn longest_names_and_symlink_targets_round_trip() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let name = |c: u8| OsStr::from_bytes(&[c; 255]).to_owned();
    let mut non_utf8 = vec![b'n'; 255];
    non_utf8[100] = 0xff;
    let dir = src.join(name(b'd'));
    write(
        &dir.join(name(b'f')),
        b"file with the longest name, in a dir with one\n",
    );
    write(
        &src.join(OsStr::from_bytes(&non_utf8)),
        &random_bytes(5, 70_000),
    );
    symlink("x".repeat(4095), src.join(name(b's'))).unwrap();
    symlink(format!("/{}", "a/".repeat(2047)), dir.join("slashes")).unwrap();
    mkfifo(&dir.join(name(b'p')), 0o640);

    let snap = env.snapshot([&src]);
    assert_eq!(snap["complete"], true, "{snap}");
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
}

/// `mkdirat` relative to an open directory: the absolute path may exceed `PATH_MAX`.
fn mkdir_in(parent: &OwnedFd, name: &str) -> OwnedFd {
    let c = CString::new(name).unwrap();
    // SAFETY: valid fd and C string.
    let rc = unsafe { libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o755) };
    assert_eq!(rc, 0, "mkdirat {name}: {}", io::Error::last_os_error());
    open_in(parent, name, libc::O_DIRECTORY)
        .unwrap_or_else(|| panic!("openat {name}: {}", io::Error::last_os_error()))
}

/// `openat(parent, name, O_RDONLY | flags)`, `None` when it fails.
pub(crate) fn open_in(parent: &OwnedFd, name: &str, flags: libc::c_int) -> Option<OwnedFd> {
    let c = CString::new(name).unwrap();
    // SAFETY: valid fd and C string.
    let fd = unsafe {
        libc::openat(
            parent.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | flags,
        )
    };
    // SAFETY: fd was just opened and is owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn write_in(parent: &OwnedFd, name: &str, data: &[u8]) {
    let c = CString::new(name).unwrap();
    // SAFETY: valid fd and C string.
    let fd = unsafe {
        libc::openat(
            parent.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    assert!(fd >= 0, "openat {name}: {}", io::Error::last_os_error());
    // SAFETY: fd was just opened and is owned by nobody else.
    let mut f = unsafe { File::from_raw_fd(fd) };
    f.write_all(data).unwrap();
}

/// Paths longer than `PATH_MAX` (4096 bytes with its NUL): a chain of directories with 200-byte
/// names, a file in each, made with `mkdirat`/`openat` since no absolute path reaches the deep
/// end. Vault walks with absolute paths, so it backs up everything whose path fits and reports
/// exactly the first entry whose path does not, with the reason; the entries beside the
/// too-long one are kept (regression: the walk `lstat`ed each child by its absolute path, so
/// one too-long child failed the listing of its whole directory, losing its siblings).
/// The deep part restores under a short target, and the whole chain under a target where it
/// reaches beyond PATH_MAX (restore works through directory descriptors).
#[test]
fn paths_longer_than_path_max_are_reported_exactly_and_the_rest_is_kept() {
    const LEVELS: usize = 25;
    const PATH_MAX: usize = 4096;
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let level_name = |i: usize| format!("{i:03}{}", "x".repeat(197));
    let mut fd: OwnedFd = File::open(&src).unwrap().into();
    for i in 0..LEVELS {
        fd = mkdir_in(&fd, &level_name(i));
        write_in(&fd, "file", format!("level {i}\n").as_bytes());
    }
    drop(fd);

    // What fits: a path of at most PATH_MAX - 1 bytes.
    let fits = |p: &Path| p.as_os_str().len() < PATH_MAX;
    let mut expected_problems = BTreeSet::new();
    let mut expected_files = Vec::new();
    // Levels whose directory is in the snapshot: those that fit, and the first that does not.
    let mut recorded_dirs = LEVELS;
    let mut dir = src.clone();
    for i in 0..LEVELS {
        dir = dir.join(level_name(i));
        if !fits(&dir) {
            recorded_dirs = i + 1;
            // Listed by its parent (relative lstat), recorded, but cannot be opened.
            expected_problems.insert((
                dir.display().to_string(),
                "cannot list directory: File name too long (os error 36)".to_string(),
            ));
            break;
        }
        let file = dir.join("file");
        if fits(&file) {
            expected_files.push((i, file));
        } else {
            expected_problems.insert((
                file.display().to_string(),
                "cannot open: File name too long (os error 36)".to_string(),
            ));
        }
    }
    assert!(expected_files.len() >= 15 && recorded_dirs < LEVELS);

    let mut cmd = env.cmd(["snapshot", "--json"]);
    cmd.arg(&src);
    let out = run_cmd(cmd);
    no_panic(&out);
    out.code(3);
    let snap = out.json();
    check_snapshot_json(&snap);
    assert_eq!(snap["complete"], false);
    assert_eq!(problems(&snap), expected_problems);
    // Files that could not be opened count as files seen.
    let unopenable = expected_problems
        .iter()
        .filter(|(_, r)| r.starts_with("cannot open"))
        .count();
    assert_eq!(
        summary(&snap, "files"),
        (expected_files.len() + unopenable) as u64,
        "{snap}"
    );
    assert_eq!(summary(&snap, "dirs"), recorded_dirs as u64 + 1, "{snap}");
    let id = id_of(&snap);

    // Every file that fits is in the snapshot.
    for (i, file) in &expected_files {
        let (code, digest, len, stderr) = env.dump_digest(&id, file.to_str().unwrap(), &[]);
        assert_eq!(code, 0, "level {i}: {stderr}");
        let want = format!("level {i}\n");
        assert_eq!(
            (digest, len),
            (blake3::hash(want.as_bytes()), want.len() as u64)
        );
    }

    // Restored from level 3 down under a short target, the chain fits: the files, and the
    // last directory (empty: it could not be listed).
    let short = env.path("s");
    let top = src
        .join(level_name(0))
        .join(level_name(1))
        .join(level_name(2));
    let out = env.restore(
        &format!("{id}:{}", top.display()),
        &short,
        Vec::<&str>::new(),
    );
    no_panic(&out);
    out.ok();
    let has_file: BTreeSet<usize> = expected_files.iter().map(|(i, _)| *i).collect();
    // The levels from `level` down, below the directory `fd`.
    let check_chain = |mut fd: OwnedFd, mut level: usize| {
        while let Some(next) = open_in(&fd, &level_name(level), libc::O_DIRECTORY) {
            fd = next;
            match open_in(&fd, "file", 0) {
                Some(file) => {
                    assert!(has_file.contains(&level), "level {level}: unexpected file");
                    let mut content = String::new();
                    File::from(file).read_to_string(&mut content).unwrap();
                    assert_eq!(content, format!("level {level}\n"));
                }
                None => assert!(!has_file.contains(&level), "level {level}: file missing"),
            }
            level += 1;
        }
        assert_eq!(level, recorded_dirs, "restored levels up to {level}");
    };
    check_chain(File::open(&short).unwrap().into(), 3);

    // The whole chain under the target reaches beyond PATH_MAX, and restores all the same.
    let target = env.path("t");
    let out = env.restore(&id, &target, Vec::<&str>::new());
    no_panic(&out);
    out.ok();
    let mut fd: OwnedFd = File::open(&target).unwrap().into();
    for part in src.strip_prefix("/").unwrap() {
        fd = open_in(&fd, part.to_str().unwrap(), libc::O_DIRECTORY).expect("restored source dir");
    }
    check_chain(fd, 0);
}

/// A tree 100 directories deep (with files on the way) restores exactly.
#[test]
fn hundred_levels_deep_tree_round_trips() {
    let env = Env::init();
    let src = env.path("src");
    let mut dir = src.clone();
    for i in 0..100 {
        dir = dir.join(format!("level-{i:03}"));
        if i % 10 == 0 {
            write(&dir.join("data.bin"), &random_bytes(i, 3000 + i as usize));
        }
    }
    fs::create_dir_all(&dir).unwrap();
    write(&dir.join("bottom.txt"), b"the bottom\n");
    let snap = env.snapshot([&src]);
    assert_eq!(snap["complete"], true, "{snap}");
    assert_eq!(summary(&snap, "dirs"), 101, "{snap}");
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
}

/// Size of the sparse file: 10 GiB; `VAULT_TEST_SPARSE_GIB` overrides it.
fn sparse_size() -> u64 {
    std::env::var("VAULT_TEST_SPARSE_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        * GIB
}

/// BLAKE3 and length of a file's content, read through its data segments (`SEEK_DATA` /
/// `SEEK_HOLE`) with the holes hashed as the zeros they read as: the same digest as reading
/// every byte, without making the kernel produce gigabytes of zeros.
fn sparse_digest(path: &Path) -> (blake3::Hash, u64) {
    let f = File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    let zeros = vec![0u8; MIB as usize];
    let mut buf = vec![0u8; MIB as usize];
    let mut hasher = blake3::Hasher::new();
    let hash_zeros = |hasher: &mut blake3::Hasher, mut n: u64| {
        while n > 0 {
            let k = n.min(MIB);
            hasher.update(&zeros[..k as usize]);
            n -= k;
        }
    };
    let seek = |offset: u64, whence: libc::c_int| -> Option<u64> {
        // SAFETY: lseek on an open fd.
        let r = unsafe { libc::lseek(f.as_raw_fd(), offset as libc::off_t, whence) };
        (r >= 0).then_some(r as u64)
    };
    let mut pos = 0;
    while pos < size {
        let data = seek(pos, libc::SEEK_DATA).unwrap_or(size);
        hash_zeros(&mut hasher, data - pos);
        if data >= size {
            break;
        }
        let hole = seek(data, libc::SEEK_HOLE).unwrap_or(size);
        let mut at = data;
        while at < hole {
            let k = (hole - at).min(MIB) as usize;
            f.read_exact_at(&mut buf[..k], at).unwrap();
            hasher.update(&buf[..k]);
            at += k as u64;
        }
        pos = hole;
    }
    (hasher.finalize(), size)
}

/// A 10 GiB sparse file with a little data at a few offsets snapshots (the holes deduplicate
/// to almost nothing) and restores byte-exact and sparse.
#[test]
fn ten_gib_sparse_file_round_trips_sparse_and_exact() {
    let env = Env::init();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let path = src.join("disk.img");
    let size = sparse_size();
    let f = File::create(&path).unwrap();
    f.set_len(size).unwrap();
    for (i, offset) in [0, size / 3 + 123, size / 10 * 7 + 5, size - 1000]
        .into_iter()
        .enumerate()
    {
        let data = random_bytes(40 + i as u64, if i == 3 { 1000 } else { 70_000 });
        f.write_all_at(&data, offset).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    let src_alloc = allocated(&path);
    assert!(
        src_alloc < 4 * MIB,
        "the source is not sparse here ({src_alloc} bytes)"
    );

    let started = Instant::now();
    let snap = env.snapshot([&src]);
    eprintln!(
        "snapshot of a {size}-byte sparse file: {:?}",
        started.elapsed()
    );
    assert_eq!(snap["complete"], true, "{snap}");
    assert_eq!(summary(&snap, "bytes_total"), size);
    assert!(summary(&snap, "bytes_added") < 4 * MIB, "{snap}");

    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    let restored = Env::restored(&target, &path);
    let dst_alloc = allocated(&restored);
    assert!(
        dst_alloc <= src_alloc + MIB,
        "restore is not sparse: {dst_alloc} bytes allocated (source: {src_alloc})"
    );
    assert_eq!(sparse_digest(&restored), sparse_digest(&path));
    // Metadata as usual (compare_trees would read all 20 GiB).
    let (a, b) = (
        fs::metadata(&path).unwrap(),
        fs::metadata(&restored).unwrap(),
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (a.mode(), a.mtime(), a.mtime_nsec()),
        (b.mode(), b.mtime(), b.mtime_nsec())
    );
}

/// A dump command killed by a signal after writing a megabyte fails the snapshot: exit 1, one
/// line naming the stream, the command line and the signal; nothing committed.
#[test]
fn command_killed_mid_stream_names_the_command_and_the_signal() {
    let env = Env::init();
    let data = env.path("data");
    write(&data.join("a.txt"), b"a\n");
    let first = id_of(&env.snapshot([&data]));
    let command = "head -c 1000000 /dev/urandom; kill -9 $$";
    let mut cmd = env.cmd(["snapshot", "--json", "--command"]);
    cmd.arg(format!("db/dump.sql={command}")).arg(&data);
    let out = run_cmd(cmd);
    out.code(1);
    let line = one_error_line(&out);
    assert_eq!(
        line,
        format!("vault: db/dump.sql: command `{command}` was killed by signal 9 (SIGKILL); nothing was committed")
    );
    assert!(out.stdout.is_empty());
    assert_eq!(env.snapshot_ids(), BTreeSet::from([first]));
    verify_clean(&env);
}

/// Standard input that cannot be read (here: a directory) fails the snapshot with the stream's
/// name and the reason; nothing committed.
#[test]
fn unreadable_stdin_commits_nothing() {
    let env = Env::init();
    let dir = env.path("a-directory");
    fs::create_dir(&dir).unwrap();
    let mut cmd = env.cmd(["snapshot", "--stdin", "--stdin-name", "db/x.sql"]);
    cmd.stdin(File::open(&dir).unwrap());
    let out = run_cmd(cmd);
    out.code(1);
    assert_eq!(
        one_error_line(&out),
        "vault: db/x.sql: read failed: Is a directory (os error 21); nothing was committed"
    );
    assert!(env.snapshot_ids().is_empty());
}

/// A writer that dies mid-stream in a shell pipeline (`dump | vault snapshot --stdin`) looks to
/// vault like the end of the stream: the snapshot holds what arrived and succeeds. Only
/// `--command` sees the writer's exit status (the test above); this pins the difference the
/// README's advice rests on.
#[test]
fn stdin_writer_dying_mid_stream_looks_like_the_end_of_the_stream() {
    let env = Env::init();
    let mut writer = Command::new("sh")
        .args(["-c", "head -c 1000000 /dev/urandom; kill -9 $$"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = writer.stdout.take().unwrap();
    let mut cmd = env.cmd(["snapshot", "--json", "--stdin", "--stdin-name", "db.sql"]);
    cmd.stdin(pipe);
    let out = run_cmd(cmd);
    let status = writer.wait().unwrap();
    assert!(!status.success());
    no_panic(&out);
    out.ok();
    let snap = out.json();
    assert_eq!(snap["complete"], true);
    assert_eq!(summary(&snap, "bytes_total"), 1_000_000, "{snap}");
}

/// Entries that vanish while the walk runs, made deterministic with one worker thread
/// (`RAYON_NUM_THREADS=1`: a directory's children are processed in name order) and a big first
/// file: once vault has it open, the source directory has been listed and nothing after the big
/// file has been opened. Then, deleted:
/// - `ysub/early.txt`, in a directory not listed yet: simply absent, no problem (the walk
///   documents "entries that vanish between listing and lstat are skipped");
/// - `zvictim`, listed and `lstat`ed but not yet opened: a problem naming it, "cannot open: No
///   such file or directory";
/// - `zdir`, listed but not yet opened: a problem naming it, "cannot list directory: No such
///   file or directory", and it is recorded as an empty directory.
///
/// The snapshot is committed, incomplete, exit 3; everything else restores exactly.
#[test]
fn entries_vanishing_during_the_walk() {
    let env = Env::init();
    let src = env.path("src");
    write_generated(&src.join("0big"), 6, 64 * MIB, random_bytes);
    write(
        &src.join("ysub/early.txt"),
        b"gone before its directory is listed\n",
    );
    write(&src.join("ysub/stays.txt"), b"stays\n");
    for i in 0..3 {
        write(
            &src.join(format!("zdir/f{i}")),
            b"gone with its directory\n",
        );
    }
    write(&src.join("zkeep"), b"kept\n");
    write(&src.join("zvictim"), b"gone after the listing\n");

    let ysub_mtime = {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(src.join("ysub")).unwrap();
        (m.mtime(), m.mtime_nsec())
    };

    let mut cmd = env.cmd(["snapshot", "--json"]);
    cmd.arg(&src)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let cmdline = cmdline_of(&cmd);
    let mut child = cmd.spawn().unwrap();
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let big = src.join("0big");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = fs::read_dir(&fds)
            .map(|d| {
                d.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                    .any(|t| t == big)
            })
            .unwrap_or(false);
        if open {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "vault finished before it was seen reading {}",
            big.display()
        );
        assert!(
            Instant::now() < deadline,
            "vault never opened {}",
            big.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    fs::remove_file(src.join("ysub/early.txt")).unwrap();
    fs::remove_file(src.join("zvictim")).unwrap();
    fs::remove_dir_all(src.join("zdir")).unwrap();
    // The walk recorded ysub's time from before the deletion (its lstat came with the listing of
    // src); put it back so that the source compares with the restore.
    set_mtime(&src.join("ysub"), ysub_mtime.0, ysub_mtime.1);
    let output = child.wait_with_output().unwrap();
    let out = Out {
        cmdline,
        code: output.status.code().expect("vault killed by a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    no_panic(&out);
    out.code(3);
    let snap = out.json();
    check_snapshot_json(&snap);
    assert_eq!(snap["complete"], false);
    let p = |rel: &str| src.join(rel).display().to_string();
    assert_eq!(
        problems(&snap),
        BTreeSet::from([
            (
                p("zdir"),
                "cannot list directory: No such file or directory (os error 2)".to_string()
            ),
            (
                p("zvictim"),
                "cannot open: No such file or directory (os error 2)".to_string()
            ),
        ])
    );
    out.stderr_has(&p("zdir")).stderr_has(&p("zvictim"));

    // The restore is the source as it is now, plus the empty directory recorded for zdir.
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    let restored = Env::restored(&target, &src);
    assert!(names(&restored.join("zdir")).is_empty());
    fs::remove_dir(restored.join("zdir")).unwrap();
    let diffs = compare_trees(
        &src,
        &restored,
        Compare {
            root_meta: false,
            ..Compare::default()
        },
    );
    assert_eq!(diffs, Vec::<String>::new());
}

/// `vault snapshot --json SRC` on one worker thread (so a directory's entries are processed in
/// name order), returned once it has tried to open the leased file: it has listed that file's
/// directory and opened nothing after it.
fn snapshot_stopped_at_the_lease(
    env: &Env,
    src: &Path,
    lease: &Lease,
) -> (String, std::process::Child) {
    let mut cmd = env.cmd(["snapshot", "--json"]);
    cmd.arg(src)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let cmdline = cmdline_of(&cmd);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lease.broken() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "vault finished without opening a-leased"
        );
        assert!(Instant::now() < deadline, "vault never opened a-leased");
        std::thread::sleep(Duration::from_millis(1));
    }
    (cmdline, child)
}

/// A write lease on a file: whoever opens it waits (or, opening it non-blocking, is refused and
/// retries) until the lease is released, and the holder can see that someone tried. That makes
/// "vault is inside the walk of this file's directory, past its listing" a deterministic signal.
struct Lease {
    file: File,
}

impl Lease {
    fn take(path: &Path) -> Lease {
        let file = File::open(path).unwrap();
        // SAFETY: fcntl on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
        assert_eq!(
            rc,
            0,
            "F_SETLEASE {}: {}",
            path.display(),
            io::Error::last_os_error()
        );
        // No owner: the lease break sends no SIGIO (which would end this test process).
        // SAFETY: as above.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETOWN, 0) };
        assert_eq!(rc, 0, "F_SETOWN: {}", io::Error::last_os_error());
        Lease { file }
    }

    /// Whether someone has tried to open the file (the lease is being broken).
    fn broken(&self) -> bool {
        // SAFETY: as above.
        let lease = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_GETLEASE) };
        lease != libc::F_WRLCK
    }

    fn release(self) {
        // SAFETY: as above.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        assert_eq!(rc, 0, "F_UNLCK: {}", io::Error::last_os_error());
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test when it takes longer.
fn wait_or_kill(mut child: std::process::Child, cmdline: String, limit: Duration) -> Out {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{cmdline} still ran after {limit:?} and was killed; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    Out {
        cmdline,
        code: output.status.code().expect("vault killed by a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Files replaced by something else after their directory was listed and before vault opens
/// them: a FIFO (without a writer: a blocking open would hang the snapshot forever, and every
/// prune waiting for it), a socket, a symlink, another file renamed over it and, as root, a
/// device node. Each is reported by path and left out; none is opened for reading or followed;
/// the snapshot is committed, incomplete, exit 3.
///
/// Deterministic: one worker thread (children in name order) and a write lease on the first
/// file. When vault tries to open it, the lease starts breaking: vault has listed the
/// directory (every victim `lstat`ed as a regular file) and opened nothing after it. The test
/// swaps the victims, then releases the lease.
#[test]
fn files_replaced_by_a_fifo_socket_symlink_or_device_after_the_listing_are_reported_unread() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a-leased"), b"held by a lease\n");
    for name in ["b-fifo", "c-socket", "d-symlink", "e-renamed", "f-device"] {
        write(&src.join(name), b"listed as a regular file\n");
    }
    write(&src.join("g-kept"), b"kept\n");
    let lease = Lease::take(&src.join("a-leased"));

    let (cmdline, child) = snapshot_stopped_at_the_lease(&env, &src, &lease);

    let p = |rel: &str| src.join(rel);
    fs::remove_file(p("b-fifo")).unwrap();
    mkfifo(&p("b-fifo"), 0o644);
    fs::remove_file(p("c-socket")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(p("c-socket")).unwrap();
    fs::remove_file(p("d-symlink")).unwrap();
    symlink("g-kept", p("d-symlink")).unwrap();
    write(&p("e-renamed.new"), b"a new file in its place\n");
    fs::rename(p("e-renamed.new"), p("e-renamed")).unwrap();
    let mut replaced = vec![
        ("b-fifo", "a FIFO"),
        ("c-socket", "a socket"),
        ("d-symlink", "a symlink"),
        ("e-renamed", "another file"),
    ];
    if is_root() {
        fs::remove_file(p("f-device")).unwrap();
        let c = cpath(&p("f-device"));
        // SAFETY: valid C path; the node is /dev/null's (1, 3).
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) };
        assert_eq!(rc, 0, "mknod: {}", io::Error::last_os_error());
        replaced.push(("f-device", "a character device"));
    }
    lease.release();

    let out = wait_or_kill(child, cmdline, Duration::from_secs(60));
    no_panic(&out);
    out.code(3);
    let snap = out.json();
    check_snapshot_json(&snap);
    assert_eq!(snap["complete"], false);
    let want: BTreeSet<(String, String)> = replaced
        .iter()
        .map(|(name, now)| {
            (
                p(name).display().to_string(),
                format!("was replaced by {now} while the snapshot ran; left out of the snapshot"),
            )
        })
        .collect();
    assert_eq!(problems(&snap), want);
    for (name, _) in &replaced {
        out.stderr_has(&p(name).display().to_string());
    }

    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    let restored = Env::restored(&target, &src);
    let mut kept = vec!["a-leased", "g-kept"];
    if !is_root() {
        kept.insert(1, "f-device");
    }
    assert_eq!(names(&restored), kept);
    assert_eq!(
        fs::read(restored.join("a-leased")).unwrap(),
        b"held by a lease\n"
    );
    assert_eq!(fs::read(restored.join("g-kept")).unwrap(), b"kept\n");
}

/// A directory replaced by a symlink (to another directory) after its parent was listed and
/// before vault lists it: the symlink is never followed (the other directory's files must not
/// appear in the snapshot). The directory is reported and recorded empty; exit 3. Made
/// deterministic as above: one worker thread and a lease on the first entry.
#[test]
fn directory_replaced_by_a_symlink_after_the_listing_is_not_followed() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a-leased"), b"held by a lease\n");
    write(
        &src.join("b-dir/inside.txt"),
        b"listed with its directory\n",
    );
    write(&src.join("c-kept"), b"kept\n");
    let elsewhere = env.path("elsewhere");
    write(&elsewhere.join("secret.txt"), b"not a source\n");
    let lease = Lease::take(&src.join("a-leased"));

    let (cmdline, child) = snapshot_stopped_at_the_lease(&env, &src, &lease);
    fs::rename(src.join("b-dir"), env.path("b-dir-moved")).unwrap();
    symlink(&elsewhere, src.join("b-dir")).unwrap();
    lease.release();

    let out = wait_or_kill(child, cmdline, Duration::from_secs(60));
    no_panic(&out);
    out.code(3);
    let snap = out.json();
    assert_eq!(
        problems(&snap),
        BTreeSet::from([(
            src.join("b-dir").display().to_string(),
            "cannot list directory: was replaced by a symlink while the snapshot ran".to_string()
        )])
    );
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    let restored = Env::restored(&target, &src);
    assert_eq!(names(&restored), ["a-leased", "b-dir", "c-kept"]);
    assert!(restored.join("b-dir").is_dir());
    assert!(names(&restored.join("b-dir")).is_empty());
}
