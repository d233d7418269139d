//! `vault mount`: a real FUSE mount of a real repository, walked and read like any filesystem
//! and compared with the source and with `vault restore`.

use std::fs;
use std::os::unix::fs::{symlink, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::mount::{fuse_available, is_mounted, Mount};
use crate::util::*;

const MIB: u64 = 1 << 20;
const BIG: u64 = 12 * MIB + 12345;

/// A tree with every kind of entry a mount shows: a multi-MiB file, an empty one, a symlink,
/// a hard link across directories, nested directories and odd names.
fn build_source(src: &Path) {
    fs::create_dir_all(src.join("nested/deeper/deepest")).unwrap();
    write_generated(&src.join("big.bin"), 7, BIG, random_bytes);
    fs::File::create(src.join("empty")).unwrap();
    write(&src.join("nested/deeper/deepest/leaf.txt"), b"leaf\n");
    write(&src.join("nested/hard-a"), b"one inode, two names\n");
    fs::hard_link(src.join("nested/hard-a"), src.join("nested/deeper/hard-b")).unwrap();
    symlink("nested/deeper/deepest/leaf.txt", src.join("link")).unwrap();
    symlink("/nonexistent/target", src.join("dangling")).unwrap();
    write(&src.join("with space & ünïcödé"), b"odd name\n");
    write(&src.join("-leading-dash"), b"dash\n");
    write(&src.join("text.txt"), &compressible_bytes(3, 300_000));
    chmod(&src.join("text.txt"), 0o640);
    chmod(&src.join("nested/deeper"), 0o750);
}

/// The source tree inside a mounted snapshot directory.
fn inside(snapshot_dir: &Path, src: &Path) -> PathBuf {
    snapshot_dir.join(src.strip_prefix("/").unwrap())
}

struct Fixture {
    env: Env,
    src: PathBuf,
    first: String,
    second: String,
}

/// Two snapshots: the source as built (label app=web), then with one file changed (app=api).
fn two_snapshots() -> Fixture {
    let env = Env::init();
    let src = env.path("src");
    build_source(&src);
    let first = id_of(&env.snapshot([src.to_str().unwrap(), "--label", "app=web"]));
    write(&src.join("text.txt"), b"changed in the second snapshot\n");
    chmod(&src.join("text.txt"), 0o640);
    let second = id_of(&env.snapshot([src.to_str().unwrap(), "--label", "app=api"]));
    Fixture {
        env,
        src,
        first,
        second,
    }
}

#[test]
fn a_mounted_snapshot_equals_its_source_and_cp_a_equals_restore() {
    let Some(()) = fuse_available() else { return };
    let f = two_snapshots();
    let mount = Mount::start(&f.env, "mnt", &[]);
    assert_eq!(mount.report["snapshots"], 2);

    // The newest snapshot is the source as it is now: bytes, modes, mtimes, owners, sizes,
    // symlink targets, and the hard link as one inode.
    let second = mount.path(format!("snapshots/{}", f.second));
    assert_same_tree(&f.src, &inside(&second, &f.src), Compare::default());

    // `cp -a` out of the older snapshot equals `vault restore` of it.
    let copied = f.env.path("copied");
    let status = Command::new("cp")
        .arg("-a")
        .arg(inside(
            &mount.path(format!("snapshots/{}", f.first)),
            &f.src,
        ))
        .arg(&copied)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a out of the mount failed");
    let restored = f.env.path("restored");
    f.env.restore(&f.first, &restored, ["--quiet"]).ok();
    assert_same_tree(
        &Env::restored(&restored, &f.src),
        &copied,
        Compare::default(),
    );
    let changed = fs::read(copied.join("text.txt")).unwrap();
    assert_eq!(
        changed,
        compressible_bytes(3, 300_000),
        "first snapshot's text.txt"
    );
}

#[test]
fn latest_and_by_label_point_at_the_right_snapshots() {
    let Some(()) = fuse_available() else { return };
    let f = two_snapshots();
    let mount = Mount::start(&f.env, "mnt", &[]);
    let target = |rel: &str| fs::read_link(mount.path(rel)).unwrap();
    let to = |id: &str| PathBuf::from(format!("snapshots/{id}"));
    let up = |id: &str| PathBuf::from(format!("../../../snapshots/{id}"));
    assert_eq!(target("latest"), to(&f.second));
    assert_eq!(target("by-label/app/web/latest"), up(&f.first));
    assert_eq!(target("by-label/app/api/latest"), up(&f.second));
    assert_eq!(
        target(&format!("by-label/app/web/{}", f.first)),
        up(&f.first)
    );
    assert_eq!(listed(&mount.path("by-label/app")), ["api", "web"]);
    assert_eq!(listed(&mount.path("snapshots")), {
        let mut ids = vec![f.first.clone(), f.second.clone()];
        ids.sort();
        ids
    });
    // Through the links: the content of each snapshot.
    let text = |via: &str| fs::read(inside(&mount.path(via), &f.src).join("text.txt")).unwrap();
    assert_eq!(text("latest"), b"changed in the second snapshot\n");
    assert_eq!(
        text("by-label/app/web/latest"),
        compressible_bytes(3, 300_000)
    );
    assert_eq!(
        text("by-label/app/api/latest"),
        b"changed in the second snapshot\n"
    );

    // --snapshot shows only the one named.
    let only = Mount::start(&f.env, "only", &["--snapshot", &f.first[..12]]);
    assert_eq!(listed(&only.path("snapshots")), [f.first.as_str()]);
    assert_eq!(fs::read_link(only.path("latest")).unwrap(), to(&f.first));
}

/// `pread` at `offset` of `len` bytes: exactly the source's bytes there (cut at its end).
fn check_range(file: &fs::File, source: &[u8], offset: u64, len: usize) {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = file.read_at(&mut buf[got..], offset + got as u64).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    let start = (offset as usize).min(source.len());
    let end = (offset as usize + len).min(source.len());
    assert_eq!(got, end - start, "bytes read at {offset}+{len}");
    assert!(
        buf[..got] == source[start..end],
        "bytes at {offset}+{len} differ"
    );
}

#[test]
fn random_offset_and_concurrent_reads_return_the_source_bytes() {
    let Some(()) = fuse_available() else { return };
    let f = two_snapshots();
    // A cache smaller than the file: chunks are evicted and read again.
    let mount = Mount::start(&f.env, "mnt", &["--cache-size", "4MiB"]);
    let source = fs::read(f.src.join("big.bin")).unwrap();
    let big = inside(&mount.path(format!("snapshots/{}", f.first)), &f.src).join("big.bin");
    assert_eq!(fs::metadata(&big).unwrap().len(), BIG);

    let file = fs::File::open(&big).unwrap();
    let mut rng = Rng::new(42);
    for _ in 0..300 {
        let offset = rng.below(BIG + 1000);
        let len = 1 + rng.below(300_000) as usize;
        check_range(&file, &source, offset, len);
    }
    for (offset, len) in [
        (0, 1),
        (BIG - 1, 10),
        (BIG, 10),
        (MIB - 3, 7),
        (0, BIG as usize),
    ] {
        check_range(&file, &source, offset, len);
    }

    // Eight readers at once, each over its own random ranges and then the whole file.
    std::thread::scope(|scope| {
        for seed in 0..8u64 {
            let (big, source) = (&big, &source);
            scope.spawn(move || {
                let file = fs::File::open(big).unwrap();
                let mut rng = Rng::new(100 + seed);
                for _ in 0..60 {
                    let offset = rng.below(BIG);
                    check_range(&file, source, offset, 1 + rng.below(2 * MIB) as usize);
                }
                assert!(
                    fs::read(big).unwrap() == *source,
                    "reader {seed}: whole file"
                );
            });
        }
    });
}

/// A file of `len` bytes, 1 MiB runs alternating incompressible and compressible bytes.
fn mixed_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut run = 0u64;
    while out.len() < len {
        let take = (MIB as usize).min(len - out.len());
        out.extend(if run.is_multiple_of(2) {
            random_bytes(seed + run, take)
        } else {
            compressible_bytes(seed + run, take)
        });
        out.truncate(len);
        run += 1;
    }
    out
}

/// `path` opened with O_DIRECT: every read goes to the mount, none is served from the kernel's
/// page cache (which holds what earlier reads brought in).
fn open_direct(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap()
}

/// Reads `file` from `start` to its end and then from 0 up to `start`, in `piece`-byte preads,
/// checking every piece against `source`.
fn read_around(file: &fs::File, source: &[u8], start: u64, piece: usize) {
    let len = source.len() as u64;
    let mut at = start;
    loop {
        check_range(file, source, at, piece);
        at += piece as u64;
        if at >= len {
            at = 0;
        }
        if at <= start && at + piece as u64 > start {
            check_range(file, source, at, (start - at) as usize);
            break;
        }
    }
}

#[test]
fn sequential_and_concurrent_reads_across_many_read_ahead_windows_return_the_source_bytes() {
    let Some(()) = fuse_available() else { return };
    // Small chunks (128 KiB kernel requests span several) and a cache of a third of the file
    // (16 MiB: read-ahead windows of 1 MiB, 4 MiB ahead): chunks are fetched ahead, evicted
    // and fetched again while the readers go.
    let env = Env::new();
    env.run([
        "init",
        "--encryption",
        "none",
        "--chunk-min",
        "16KiB",
        "--chunk-avg",
        "64KiB",
        "--chunk-max",
        "256KiB",
    ])
    .ok();
    let src = env.path("src");
    let len = 48 * MIB as usize + 4321;
    let source = mixed_bytes(5, len);
    write(&src.join("data.bin"), &source);
    env.snapshot([src.to_str().unwrap()]);
    let mount = Mount::start(&env, "mnt", &["--cache-size", "16MiB"]);
    let data = inside(&mount.path("latest"), &src).join("data.bin");

    // One reader, start to end.
    assert!(
        fs::read(&data).unwrap() == source,
        "sequential read differs"
    );

    // Six readers at once, each with a file of its own (a read-ahead stream of its own), from
    // six places around the file, in pieces of different sizes, past the page cache.
    std::thread::scope(|scope| {
        for k in 0..6u64 {
            let (data, source) = (&data, &source);
            scope.spawn(move || {
                let file = open_direct(data);
                let start = k * len as u64 / 6 + k * 4099;
                read_around(&file, source, start, 128 * 1024 + k as usize * 5000);
            });
        }
    });

    // Two readers sharing one open file (one stream, seeking to and fro between them).
    let file = open_direct(&data);
    std::thread::scope(|scope| {
        for k in 0..2u64 {
            let (file, source) = (&file, &source);
            scope.spawn(move || read_around(file, source, k * len as u64 / 2 + 7, 300_000));
        }
    });
}

/// `VmHWM` (peak resident memory) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn reading_a_file_many_times_the_cache_budget_keeps_the_mount_in_bounded_memory() {
    let Some(()) = fuse_available() else { return };
    const SIZE: u64 = 512 * MIB + 12345;
    /// Half the file. Below it: the 16 MiB cache, read-ahead in flight (at most 8 MiB), the
    /// process itself, and what the allocator keeps of freed chunk buffers (glibc's
    /// per-thread arenas: 100-180 MiB measured here, 40 MiB with a fixed mmap threshold). A
    /// mount whose cache ignored its budget would hold the whole file.
    const LIMIT: u64 = 256 * MIB;
    let env = Env::init();
    let src = env.path("src");
    write_generated(&src.join("disk.img"), 21, SIZE, random_bytes);
    let source = fs::read(src.join("disk.img")).unwrap();
    env.snapshot([src.to_str().unwrap()]);
    let mount = Mount::start(&env, "mnt", &["--cache-size", "16MiB"]);
    let image = inside(&mount.path("latest"), &src).join("disk.img");

    assert!(
        fs::read(&image).unwrap() == source,
        "sequential read differs"
    );
    // Four readers at once past the page cache, each over a quarter, in 1 MiB pieces.
    std::thread::scope(|scope| {
        for k in 0..4u64 {
            let (image, source) = (&image, &source);
            scope.spawn(move || {
                let file = open_direct(image);
                let mut at = k * SIZE / 4 + k * 999;
                while at < ((k + 1) * SIZE / 4).min(SIZE) {
                    check_range(&file, source, at, MIB as usize);
                    at += MIB;
                }
            });
        }
    });
    let pid = mount.child.as_ref().expect("running").id();
    let peak = peak_rss(pid);
    eprintln!("vault mount peaked at {} MiB", peak / MIB);
    assert!(
        peak < LIMIT,
        "vault mount peaked at {} MiB reading a {} MiB file with a 16 MiB cache",
        peak / MIB,
        SIZE / MIB
    );
}

#[test]
fn writes_to_the_mount_fail_with_erofs() {
    let Some(()) = fuse_available() else { return };
    let f = two_snapshots();
    let mount = Mount::start(&f.env, "mnt", &[]);
    let dir = inside(&mount.path("latest"), &f.src);
    let erofs = |e: std::io::Error| assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    erofs(fs::write(dir.join("new-file"), b"x").unwrap_err());
    erofs(
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join("empty"))
            .unwrap_err(),
    );
    erofs(fs::create_dir(dir.join("new-dir")).unwrap_err());
    erofs(fs::remove_file(dir.join("empty")).unwrap_err());
    erofs(fs::rename(dir.join("empty"), dir.join("renamed")).unwrap_err());
    erofs(fs::write(mount.path("new-top"), b"x").unwrap_err());
    let append = fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join("text.txt"));
    erofs(append.unwrap_err());
    // Nothing changed in the repository's snapshots.
    assert_eq!(f.env.snapshot_ids().len(), 2);
}

#[test]
fn a_snapshot_and_a_prune_while_mounted_succeed_and_the_mount_shows_the_new_snapshot() {
    let Some(()) = fuse_available() else { return };
    let f = two_snapshots();
    let mount = Mount::start(&f.env, "mnt", &[]);
    let latest_text = inside(&mount.path("latest"), &f.src).join("text.txt");
    assert_eq!(
        fs::read(&latest_text).unwrap(),
        b"changed in the second snapshot\n"
    );

    write(&f.src.join("text.txt"), b"third\n");
    let third = id_of(&f.env.snapshot([f.src.to_str().unwrap()]));
    // The mount lists the repository again within a second: the new snapshot appears.
    let new_dir = mount.path(format!("snapshots/{third}"));
    let start = Instant::now();
    while !new_dir.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{third} never appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_same_tree(&f.src, &inside(&new_dir, &f.src), Compare::default());

    // Forget the first snapshot and prune: the mount is a reader like a running restore, so
    // the prune leaves the packs it condemned for the next prune (`--no-wait`; without it, it
    // waits for the mount to end). What the mount shows stays readable.
    f.env.run(["forget", &f.first]).ok();
    let pruned = f
        .env
        .run(["prune", "--no-wait", "--max-unused", "0%", "--json"]);
    pruned.ok();
    assert_eq!(
        pruned.json()["pending"],
        true,
        "prune ignored the mount: {}",
        pruned.stdout_str()
    );
    let big = inside(&mount.path(format!("snapshots/{}", f.second)), &f.src).join("big.bin");
    assert_eq!(file_digest(&big), file_digest(&f.src.join("big.bin")));
}

#[test]
fn sigterm_unmounts_and_exits_zero() {
    let Some(()) = fuse_available() else { return };
    let f = two_snapshots();
    let mut mount = Mount::start(&f.env, "mnt", &[]);
    let writers = f.env.repo.join("writers");
    assert_eq!(
        names(&writers).len(),
        1,
        "the mount is registered as a reader"
    );
    let pid = mount.child.as_ref().unwrap().id() as i32;
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_eq!(mount.wait_exit(Duration::from_secs(20)), 0);
    assert!(
        !is_mounted(&mount.mountpoint),
        "still mounted after SIGTERM"
    );
    assert!(
        names(&writers).is_empty(),
        "the reader registration is left behind"
    );
}

#[test]
fn fusermount_u_unmounts_and_exits_zero() {
    let Some(()) = fuse_available() else { return };
    let f = two_snapshots();
    let mut mount = Mount::start(&f.env, "mnt", &[]);
    let status = Command::new("fusermount3")
        .arg("-u")
        .arg(&mount.mountpoint)
        .status()
        .unwrap();
    assert!(status.success(), "fusermount3 -u failed");
    assert_eq!(mount.wait_exit(Duration::from_secs(20)), 0);
    assert!(!is_mounted(&mount.mountpoint));
}

#[test]
fn without_a_fuse_device_mount_says_so_in_one_line() {
    let env = Env::init().with_envs([("VAULT_FUSE_DEVICE", "/nonexistent/fuse")]);
    fs::create_dir(env.path("mnt")).unwrap();
    let out = env.run(["mount", "mnt"]);
    out.code(1)
        .stderr_has("/nonexistent/fuse: FUSE is not available")
        .stderr_has("apt-get install fuse3")
        .no_panic();
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    // A mountpoint that is not a directory is a usage error (/dev/null passes the device
    // check, so this runs on machines without FUSE too).
    let env = Env::init().with_envs([("VAULT_FUSE_DEVICE", "/dev/null")]);
    write(&env.path("file"), b"x");
    env.run(["mount", "file"])
        .code(2)
        .stderr_has("not a directory");
    env.run(["mount", "missing"]).code(1).stderr_has("missing");
}

/// The names in `dir`, sorted, as strings.
fn listed(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .map(|n| n.into_string().unwrap())
        .collect()
}
