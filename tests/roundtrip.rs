//! Round trip of a tree holding every kind of entry vault records, compared byte-for-byte and
//! metadata-for-metadata with the restore.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;

use crate::util::*;

const MIB: u64 = 1 << 20;
const SPARSE_SIZE: u64 = 64 * MIB;

/// Data islands of the sparse file: (offset, length).
const ISLANDS: [(u64, usize); 4] = [
    (0, 5000),
    (10 * MIB + 123, 70_000),
    (33 * MIB, 4096),
    (SPARSE_SIZE - 1000, 1000),
];

struct Fixture {
    files: u64,
    bytes: u64,
}

/// Builds the tree under `src` (which must not exist). Returns what the summary should count.
fn build_everything(src: &Path) -> Fixture {
    fs::create_dir(src).unwrap();

    // Regular files: random and compressible content at the interesting sizes.
    let files = src.join("files");
    fs::create_dir(&files).unwrap();
    fs::File::create(files.join("empty")).unwrap();
    fs::File::create(files.join("empty-too")).unwrap();
    write(&files.join("one"), b"x");
    write(&files.join("random-4095"), &random_bytes(1, 4095));
    write(&files.join("text-4095"), &compressible_bytes(2, 4095));
    write_generated(&files.join("random-4MiB+1"), 3, 4 * MIB + 1, random_bytes);
    write_generated(
        &files.join("text-4MiB+1"),
        4,
        4 * MIB + 1,
        compressible_bytes,
    );
    write_generated(&files.join("random-20MiB"), 5, 20 * MIB, random_bytes);
    write_generated(&files.join("text-20MiB"), 6, 20 * MIB, compressible_bytes);
    // The same content under two unrelated names (dedup, not a hard link).
    write(&files.join("copy-of-random-4095"), &random_bytes(1, 4095));

    // 100 levels of directories, with files at the middle and the bottom.
    let mut deep = src.join("deep");
    for level in 0..100 {
        deep = deep.join(format!("level-{level:03}"));
        if level == 50 {
            fs::create_dir_all(&deep).unwrap();
            write(&deep.join("middle.txt"), b"halfway down\n");
        }
    }
    fs::create_dir_all(&deep).unwrap();
    write(&deep.join("bottom.txt"), b"the bottom\n");

    // Symlinks: relative, absolute, dangling, to a directory, and a long target.
    let links = src.join("links");
    fs::create_dir(&links).unwrap();
    symlink("../files/one", links.join("relative")).unwrap();
    symlink(files.join("one"), links.join("absolute")).unwrap();
    symlink("no/such/file", links.join("dangling")).unwrap();
    symlink(
        "/nonexistent-vault-test-target",
        links.join("dangling-absolute"),
    )
    .unwrap();
    symlink("../deep", links.join("to-dir")).unwrap();
    symlink("x".repeat(1000), links.join("long-target")).unwrap();

    // Hard links: two names in one directory, two across directories, three across two.
    let hard = src.join("hard");
    fs::create_dir_all(hard.join("a")).unwrap();
    fs::create_dir_all(hard.join("b")).unwrap();
    fs::create_dir_all(hard.join("c")).unwrap();
    write(&hard.join("a/pair-1"), b"two names, one directory\n");
    fs::hard_link(hard.join("a/pair-1"), hard.join("a/pair-2")).unwrap();
    write(&hard.join("a/across"), &random_bytes(7, 100_000));
    fs::hard_link(hard.join("a/across"), hard.join("b/across-too")).unwrap();
    write_generated(&hard.join("b/three"), 8, 4 * MIB + 1, random_bytes);
    fs::hard_link(hard.join("b/three"), hard.join("c/three-2")).unwrap();
    fs::hard_link(hard.join("b/three"), hard.join("c/three-3")).unwrap();
    fs::File::create(hard.join("c/empty-linked")).unwrap();
    fs::hard_link(hard.join("c/empty-linked"), hard.join("a/empty-linked-2")).unwrap();

    // A sparse file: 64 MiB with a few data islands (one at the very end), and one that ends
    // in a hole.
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
        g.set_len(16 * MIB).unwrap();
    }

    // Names that are not UTF-8, including a directory and a hard link inside it.
    let odd = src.join("names");
    fs::create_dir(&odd).unwrap();
    write(&bytes_path(&odd, b"latin1-caf\xe9"), b"cafe\n");
    write(&bytes_path(&odd, b"\xff\xfe\xfd"), b"bytes\n");
    write(&odd.join("spaces and\ttab\nnewline"), b"ws\n");
    write(&odd.join("-leading-dash"), b"dash\n");
    write(&odd.join("\u{1F600} emoji \u{00e9}\u{0301}"), b"utf8\n");
    let odd_dir = bytes_path(&odd, b"dir-\x80\xff");
    fs::create_dir(&odd_dir).unwrap();
    write(&odd_dir.join("inside"), b"inside a non-UTF-8 directory\n");
    fs::hard_link(odd_dir.join("inside"), odd_dir.join("inside-linked")).unwrap();
    symlink(
        bytes_path(Path::new("."), b"latin1-caf\xe9"),
        odd.join("link-to-latin1"),
    )
    .unwrap();
    symlink(
        OsStr::from_bytes(b"\xff\xfe\xfd"),
        bytes_path(&odd, b"link-\xfe"),
    )
    .unwrap();

    // A FIFO.
    let special = src.join("special");
    fs::create_dir(&special).unwrap();
    mkfifo(&special.join("fifo"), 0o640);

    // 10,000 small files in one directory.
    let many = src.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..10_000u64 {
        let mut content = format!("small file {i}\n").into_bytes();
        content.extend_from_slice(&random_bytes(i, (i % 200) as usize));
        fs::write(many.join(format!("f{i:05}.txt")), content).unwrap();
    }

    // Modes.
    let modes = src.join("modes");
    fs::create_dir(&modes).unwrap();
    for (name, mode) in [
        ("0600", 0o600),
        ("0755", 0o755),
        ("0644", 0o644),
        ("0444", 0o444),
        ("0000", 0o000),
        ("4755-setuid", 0o4755),
        ("2755-setgid", 0o2755),
    ] {
        let p = modes.join(name);
        write(&p, name.as_bytes());
        chmod(&p, mode);
    }
    let setgid_dir = modes.join("setgid-dir");
    fs::create_dir(&setgid_dir).unwrap();
    write(&setgid_dir.join("child"), b"child of a setgid dir\n");
    chmod(&setgid_dir, 0o2755);
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

    // Ownership (only root can give files away).
    if is_root() {
        lchown(&modes.join("0644"), 1234, 5678);
        lchown(&links.join("relative"), 4321, 8765);
        lchown(&setgid_dir, 1111, 2222);
        lchown(&hard.join("a/pair-1"), 3333, 4444);
        chmod(&setgid_dir, 0o2755); // chown clears setgid on some systems
    }

    // Specific mtimes with nanoseconds on every entry, bottom-up (children before their
    // directory, since creating a child changes its directory's mtime). Includes times before
    // 1970 and after 2038.
    let mut n = 0i64;
    set_all_mtimes(src, &mut n);
    set_mtime(&files.join("one"), -14_182_940, 123_456_789); // 1969-07-20
    set_mtime(&files.join("empty"), 4_102_444_800, 999_999_999); // 2100-01-01
    set_mtime(&links.join("dangling"), 1_000_000_000, 1);
    set_mtime(&special.join("fifo"), 1_234_567_890, 987_654_321);

    let mut count = Fixture { files: 0, bytes: 0 };
    for (_, node) in scan(src) {
        if node.kind == Kind::File {
            count.files += 1;
            count.bytes += node.size;
        }
    }
    count
}

/// The sparse fixture files (`sparse/islands`, `sparse/trailing-hole`) were restored sparse.
pub(crate) fn check_sparse(src: &Path, restored: &Path) {
    for name in ["islands", "trailing-hole"] {
        let s = src.join("sparse").join(name);
        let r = restored.join("sparse").join(name);
        let size = fs::metadata(&r).unwrap().len();
        let (src_alloc, dst_alloc) = (allocated(&s), allocated(&r));
        // The source holds ~80 KB of data; allow generous filesystem overhead, but a restore
        // that wrote the zeros would allocate the whole size.
        assert!(
            dst_alloc < size / 8 && dst_alloc <= src_alloc + MIB,
            "{}: restored sparse file allocates {dst_alloc} bytes of {size} (source: {src_alloc})",
            r.display()
        );
    }
}

#[test]
fn round_trip_every_kind_of_entry() {
    let env = Env::init();
    let src = env.path("src");
    let expected = build_everything(&src);

    let snap = env.snapshot([&src]);
    assert_eq!(snap["complete"], true, "{snap}");
    assert_eq!(summary(&snap, "files"), expected.files, "{snap}");
    assert_eq!(summary(&snap, "bytes_total"), expected.bytes, "{snap}");
    assert_eq!(snap["summary"]["errors"], serde_json::json!([]), "{snap}");
    assert_eq!(snap["paths"], serde_json::json!([src.to_str().unwrap()]));

    let target = env.path("restore-1");
    env.restore(&id_of(&snap), &target, Vec::<&str>::new()).ok();
    let restored = Env::restored(&target, &src);
    assert_same_tree(&src, &restored, Compare::default());
    check_sparse(&src, &restored);

    // A second snapshot of the unchanged tree reuses every file entry from the first without
    // reading; restoring it must give the same tree again.
    let snap2 = env.snapshot([&src]);
    assert_eq!(
        summary(&snap2, "files_unchanged"),
        expected.files,
        "{snap2}"
    );
    assert_eq!(summary(&snap2, "bytes_read"), 0, "{snap2}");
    // Only the trees above src (/, /tmp, /tmp/vault-it-*) may be new: the restore above changed
    // the temp dir's mtime. Nothing inside src is stored again.
    assert_eq!(summary(&snap2, "chunks_new"), 0, "{snap2}");
    assert!(summary(&snap2, "trees_new") <= 3, "{snap2}");
    assert!(summary(&snap2, "bytes_added") < 4096, "{snap2}");
    let target2 = env.path("restore-2");
    env.restore(&id_of(&snap2), &target2, Vec::<&str>::new())
        .ok();
    let restored2 = Env::restored(&target2, &src);
    assert_same_tree(&src, &restored2, Compare::default());
    check_sparse(&src, &restored2);
}

/// A snapshot path is recorded absolute and lexically normalized; the restore recreates the
/// ancestors with the source's metadata.
#[test]
fn relative_source_paths_are_recorded_absolute() {
    let env = Env::init();
    let src = env.path("work/proj");
    write(&src.join("a.txt"), b"a\n");
    set_mtime(&env.path("work"), 1_500_000_000, 42);
    let mut cmd = env.cmd(["snapshot", "--json", "./work/../work/proj"]);
    cmd.current_dir(env.dir.path());
    let out = run_cmd(cmd);
    out.ok();
    let snap = out.json();
    assert_eq!(snap["paths"], serde_json::json!([src.to_str().unwrap()]));
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
    let work_restored = Env::restored(&target, &env.path("work"));
    let m = fs::metadata(&work_restored).unwrap();
    assert_eq!(
        (m.mtime(), m.mtime_nsec()),
        (1_500_000_000, 42),
        "ancestor metadata"
    );
}

/// Restore makes hard links after all files exist, then re-applies the mtime of every directory
/// it linked into. Regression test: that fix-up once looked the directory up by
/// `to_string_lossy()` of its path, which fails for a non-UTF-8 name, leaving the directory
/// with the time of the restore (fixed in f06dbb4).
#[test]
fn hard_link_in_non_utf8_directory_keeps_directory_mtime() {
    let env = Env::init();
    let src = env.path("src");
    let dir = bytes_path(&src, b"dir-\x80\xff");
    fs::create_dir_all(&dir).unwrap();
    write(&dir.join("first"), b"linked\n");
    fs::hard_link(dir.join("first"), dir.join("second")).unwrap();
    set_mtime(&dir, 1_600_000_000, 123_456_789);
    set_mtime(&src, 1_600_000_100, 5);
    env.snapshot([&src]);
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
}

/// The same layout with a UTF-8 directory name restores exactly (control for the test above).
#[test]
fn hard_link_in_utf8_directory_keeps_directory_mtime() {
    let env = Env::init();
    let src = env.path("src");
    let dir = src.join("dir-\u{e9}");
    fs::create_dir_all(&dir).unwrap();
    write(&dir.join("first"), b"linked\n");
    fs::hard_link(dir.join("first"), dir.join("second")).unwrap();
    set_mtime(&dir, 1_600_000_000, 123_456_789);
    set_mtime(&src, 1_600_000_100, 5);
    env.snapshot([&src]);
    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
}

/// Snapshots (as root) a directory holding hard links, with `dir_mode` on that directory, and
/// restores it as uid 65534 (an ordinary user, for whom permission bits count).
fn unprivileged_restore_of_hard_links(dir_mode: u32) {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("links/first"), b"linked\n");
    fs::hard_link(src.join("links/first"), src.join("links/second")).unwrap();
    write(&src.join("rw/third"), b"linked across\n");
    fs::hard_link(src.join("rw/third"), src.join("links/fourth")).unwrap();
    chmod(&src.join("links"), dir_mode);
    env.snapshot([&src]);

    env.share_with_nobody();
    let parent = env.path("unprivileged");
    fs::create_dir(&parent).unwrap();
    if is_root() {
        lchown(&parent, NOBODY, NOBODY);
    }
    let target = parent.join("t");
    let mut cmd = env.cmd_unprivileged(["restore", "latest", "--target"]);
    cmd.arg(&target);
    run_cmd(cmd).ok();
    assert_same_tree(
        &src,
        &Env::restored(&target, &src),
        Compare {
            owners: false,
            ..Compare::default()
        },
    );
}

#[test]
fn unprivileged_restore_of_hard_links_in_writable_directory() {
    unprivileged_restore_of_hard_links(0o755);
}

/// Restore applies a directory's mode once its entries are restored, but makes the later names
/// of hard-linked files only at the very end (`finish_links`), when the directory is already
/// read-only. Root does not notice; anyone else gets EACCES and a half-done restore.
#[test]
fn unprivileged_restore_of_hard_links_in_read_only_directory() {
    unprivileged_restore_of_hard_links(0o555);
}

/// Device nodes round trip as root (type and rdev); an ordinary user's restore skips them with
/// a warning and exit code 3, restoring everything else.
#[test]
fn device_nodes() {
    if !is_root() {
        eprintln!("device_nodes: needs root to make device nodes; skipped");
        return;
    }
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("plain.txt"), b"plain\n");
    for (name, kind, major, minor) in [
        ("null-like", libc::S_IFCHR, 1, 3),
        ("loop-like", libc::S_IFBLK, 7, 200),
    ] {
        let c = cpath(&src.join(name));
        // SAFETY: valid C path.
        let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o640, libc::makedev(major, minor)) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // A container without CAP_MKNOD: nothing to test here.
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "mknod: {e}");
            eprintln!("device_nodes: mknod not permitted here; skipped");
            return;
        }
    }
    set_mtime(&src.join("null-like"), 1_234_567_890, 1);
    env.snapshot([&src]);

    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());

    env.share_with_nobody();
    let parent = env.path("unprivileged");
    fs::create_dir(&parent).unwrap();
    lchown(&parent, NOBODY, NOBODY);
    let t2 = parent.join("t");
    let mut cmd = env.cmd_unprivileged(["restore", "latest", "--target"]);
    cmd.arg(&t2);
    let out = run_cmd(cmd);
    out.code(3).stderr_has("needs root");
    let restored = Env::restored(&t2, &src);
    assert_eq!(fs::read(restored.join("plain.txt")).unwrap(), b"plain\n");
    assert!(!restored.join("null-like").exists() && !restored.join("loop-like").exists());
}

/// A repository made with tiny chunks and no compression: a 28 MiB file becomes ~21,000
/// chunks, stored through three chunk-list blobs (8,192 references each), and blobs are
/// stored raw.
#[test]
fn small_chunks_chunk_lists_and_no_compression() {
    let env = Env::new();
    let out = env.run([
        "init",
        "--encryption",
        "none",
        "--json",
        "--chunk-min",
        "512",
        "--chunk-avg",
        "1KiB",
        "--chunk-max",
        "4KiB",
        "--compression",
        "none",
    ]);
    out.ok();
    let config = out.json();
    assert_eq!(config["compression"]["algorithm"], "none", "{config}");
    for kind in ["file", "stream"] {
        assert_eq!(config["chunker"][kind]["avg"], 1024, "{config}");
        assert_eq!(config["chunker"][kind]["min"], 512, "{config}");
        assert_eq!(config["chunker"][kind]["max"], 4096, "{config}");
    }

    let src = env.path("src");
    write_generated(&src.join("random-28MiB"), 11, 28 * MIB, random_bytes);
    write_generated(&src.join("text-3MiB"), 12, 3 * MIB, compressible_bytes);
    write(&src.join("tiny"), b"t");
    let snap = env.snapshot([&src]);
    let chunks = summary(&snap, "chunks_total");
    // More than two lists' worth (FastCDC's real average is ~1.3 KiB here): three lists at least.
    assert!(
        chunks > 2 * 8192,
        "only {chunks} chunks: not enough for several chunk lists"
    );
    // Stored raw: at least every byte (compressible text included) plus per-blob overhead.
    let total = summary(&snap, "bytes_total");
    assert!(summary(&snap, "bytes_added") > total, "{snap}");

    let t = env.path("t");
    env.restore("latest", &t, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&t, &src), Compare::default());
    let file = src.join("random-28MiB");
    let (code, digest, len, stderr) = env.dump_digest("latest", file.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((digest, len), file_digest(&file));

    // The default repository compresses the same text to well under its size.
    let zenv = Env::init();
    let zsnap = zenv.snapshot([src.join("text-3MiB")]);
    assert!(summary(&zsnap, "bytes_added") < 3 * MIB / 2, "{zsnap}");
}
