//! `vault restore --delta` (issue #10): restoring into an existing target, rewriting only what
//! differs, against the interface in the issue. Every test runs the real binary on real files
//! and compares the target with the snapshot's source tree entry by entry (type, mode, mtime
//! sec+nsec, size, content, symlink target, hard-link groups).
//!
//! ```text
//! cargo test --release -p vault-cli --test integration restore_delta::
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;
use serde_json::Value;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// A repository with small file chunks (16/64/256 KiB), so an 8 MiB file has ~128 chunks and a
/// small change touches a small part of it.
fn init_small_chunks() -> Env {
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
    env
}

/// `ID:<abs src>`: the snapshot's copy of `src`, so that the target holds the tree itself.
fn spec(id: &str, src: &Path) -> String {
    format!("{id}:{}", src.display())
}

/// `vault restore SPEC --target T ARGS --json`, asserting the exit code; returns the report.
#[track_caller]
fn restore_report(env: &Env, spec: &str, target: &Path, args: &[&str], code: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = env.restore(spec, target, all);
    out.code(code).no_panic();
    let v = out.json();
    assert!(v["snapshot"].is_string(), "no snapshot in {v}");
    assert!(v["target"].is_string(), "no target in {v}");
    let report = v["report"].clone();
    assert!(report.is_object(), "no report in {v}");
    report
}

/// `report.<key>` as u64.
#[track_caller]
fn r(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("report.{key} missing or not a number in {report:#}"))
}

/// Asserts that `n` regular files of the restored view were not left alone (`files -
/// files_unchanged`), allowing for later names of hard-linked files counted in `files` but
/// not in `files_unchanged`.
#[track_caller]
fn assert_not_unchanged(report: &Value, n: u64) {
    let files = r(report, "files");
    let unchanged = r(report, "files_unchanged");
    assert!(
        unchanged <= files,
        "files_unchanged {unchanged} > files {files}: {report:#}"
    );
    let d = files - unchanged;
    assert!(
        d == n || d == n + r(report, "hardlinks"),
        "{d} files not left alone, expected {n}: {report:#}"
    );
}

/// `cp -a SRC DST` (keeps hard links, symlinks, FIFOs, modes and mtimes).
fn copy_tree(src: &Path, dst: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .expect("run cp");
    assert!(st.success(), "cp -a {} {}", src.display(), dst.display());
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).unwrap(),
        Ok(_) => fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

/// Overwrites `len` bytes at `offset` with other bytes (size unchanged).
fn overwrite_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
}

fn append(path: &Path, data: &[u8]) {
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(data).unwrap();
}

fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Inserts `data` at `offset`, shifting the rest of the file.
fn insert_at(path: &Path, offset: usize, data: &[u8]) {
    let mut content = fs::read(path).unwrap();
    content.splice(offset..offset, data.iter().copied());
    fs::write(path, content).unwrap();
}

/// Number of regular-file paths and their total size in a tree.
fn file_stats(root: &Path) -> (u64, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for node in scan(root).values() {
        if node.kind == Kind::File {
            n += 1;
            bytes += node.size;
        }
    }
    (n, bytes)
}

/// The difference lines `compare_trees` gives for entries the target has and the source lacks.
fn unexpected_lines(target: &Path, rels: &[&str]) -> BTreeSet<String> {
    let tree = scan(target);
    rels.iter()
        .map(|rel| {
            let node = tree
                .get(rel.as_bytes())
                .unwrap_or_else(|| panic!("{rel} is not in {}", target.display()));
            format!(
                "{}: unexpected in restore ({:?})",
                show(rel.as_bytes()),
                node.kind
            )
        })
        .collect()
}

#[track_caller]
fn assert_diffs(src: &Path, target: &Path, expected: &BTreeSet<String>, what: &str) {
    let got: BTreeSet<String> = compare_trees(src, target, Compare::default())
        .into_iter()
        .collect();
    let missing: Vec<&String> = expected.difference(&got).collect();
    let extra: Vec<&String> = got.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} against {}:\n  differences that should not be there:\n    {}\n  \
         expected differences that are not there:\n    {}",
        target.display(),
        src.display(),
        extra
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n    "),
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n    ")
    );
}

// ------------------------------------------------------------------------------------------------
// 1. A changed tree
// ------------------------------------------------------------------------------------------------

/// The source tree of test 1.
fn build_source(src: &Path) {
    fs::create_dir_all(src).unwrap();
    // Large random files: many chunks each.
    write_generated(&src.join("big/inplace.bin"), 1, 8 * MIB, random_bytes);
    write_generated(&src.join("big/shifted.bin"), 2, 8 * MIB, random_bytes);
    write_generated(&src.join("big/untouched.bin"), 3, 8 * MIB, random_bytes);
    write_generated(&src.join("big/truncated.bin"), 4, 2 * MIB, random_bytes);
    write_generated(&src.join("big/appended.bin"), 5, 2 * MIB, random_bytes);
    // Small files.
    for i in 0..40u64 {
        let mut content = format!("small file {i}\n").into_bytes();
        content.extend_from_slice(&compressible_bytes(100 + i, 3000 + i as usize * 37));
        write(&src.join(format!("small/f{i:03}")), &content);
    }
    fs::File::create(src.join("small/empty")).unwrap();
    // Nested directories.
    write(&src.join("deep/a/b/c/leaf.txt"), b"a leaf\n");
    write(&src.join("deep/a/b/c/leaf2.txt"), &random_bytes(6, 20_000));
    write(&src.join("deep/a/b/mid.txt"), b"middle\n");
    write(&src.join("deep/a/top.txt"), b"top\n");
    // Symlinks.
    fs::create_dir_all(src.join("links")).unwrap();
    symlink("../small/f000", src.join("links/rel")).unwrap();
    symlink("/nonexistent-vault-delta-target", src.join("links/abs")).unwrap();
    symlink("old-target", src.join("links/retarget")).unwrap();
    // Hard links: one pair to break in the target, one to leave alone.
    write(&src.join("hl/one"), &random_bytes(7, 100_000));
    fs::hard_link(src.join("hl/one"), src.join("hl/two")).unwrap();
    write(&src.join("hl/three"), b"third and fourth\n");
    fs::hard_link(src.join("hl/three"), src.join("hl/four")).unwrap();
    // FIFOs.
    fs::create_dir_all(src.join("special")).unwrap();
    mkfifo(&src.join("special/fifo"), 0o640);
    mkfifo(&src.join("special/fifo2"), 0o600);
    // Entries whose type the target changes.
    write(&src.join("tc/file2dir"), b"a file in the snapshot\n");
    write(&src.join("tc/dir2file/inner.txt"), b"inside dir2file\n");
    write(&src.join("tc/dir2file/sub/deeper.txt"), b"deeper\n");
    write(
        &src.join("tc/file2link"),
        b"a file, a symlink in the target\n",
    );
    symlink("somewhere", src.join("tc/link2file")).unwrap();
    symlink("../small", src.join("tc/link2dir")).unwrap();
    write(&src.join("tc/dir2link/inner.txt"), b"inside dir2link\n");
    write(&src.join("tc/file2fifo"), b"a file, a fifo in the target\n");
    // Modes.
    chmod(&src.join("small/f004"), 0o644);
    chmod(&src.join("deep/a"), 0o755);
    chmod(&src.join("small/f010"), 0o600);
    let mut n = 0;
    set_all_mtimes(src, &mut n);
}

/// Extra entries `mutate` adds that the snapshot does not have (all of them, for the
/// expected differences of a delta restore without --delete).
const EXTRAS: [&str; 8] = [
    "extra.txt",
    "extra-dir",
    "extra-dir/x",
    "extra-dir/y",
    "extra-dir/sub",
    "extra-dir/sub/z",
    "small/extra.txt",
    "small/renamed",
];

/// Changes a restore of `build_source` in every way a delta restore must undo.
fn mutate(t: &Path) {
    // Content.
    overwrite_at(
        &t.join("big/inplace.bin"),
        3 * MIB + 12345,
        &random_bytes(50, 4096),
    );
    insert_at(
        &t.join("big/shifted.bin"),
        4 * MIB as usize + 777,
        &random_bytes(51, 1000),
    );
    truncate(&t.join("big/truncated.bin"), 3 * MIB / 2 + 99);
    append(
        &t.join("big/appended.bin"),
        &random_bytes(52, 300 * KIB as usize),
    );
    overwrite_at(&t.join("small/f001"), 1000, b"CHANGED IN THE MIDDLE");
    append(&t.join("small/f002"), b"appended\n");
    truncate(&t.join("small/f003"), 100);
    write(&t.join("small/empty"), b"no longer empty");
    // Metadata only.
    chmod(&t.join("small/f004"), 0o600);
    chmod(&t.join("deep/a"), 0o700);
    set_mtime(&t.join("small/f005"), 1_700_000_000, 5);
    chmod(&t.join("small/f010"), 0o755);
    // Deleted, renamed, added.
    fs::remove_file(t.join("small/f006")).unwrap();
    fs::rename(t.join("small/f007"), t.join("small/renamed")).unwrap();
    fs::remove_dir_all(t.join("deep/a/b/c")).unwrap();
    write(&t.join("extra.txt"), b"not in the snapshot\n");
    write(&t.join("extra-dir/x"), b"x\n");
    write(&t.join("extra-dir/y"), &random_bytes(53, 10_000));
    write(&t.join("extra-dir/sub/z"), b"z\n");
    write(&t.join("small/extra.txt"), b"extra\n");
    // Symlink retargeted.
    fs::remove_file(t.join("links/retarget")).unwrap();
    symlink("new-target", t.join("links/retarget")).unwrap();
    // Hard link broken: a separate copy with the same size and mtime.
    fs::remove_file(t.join("hl/two")).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-p")
        .arg(t.join("hl/one"))
        .arg(t.join("hl/two"))
        .status()
        .unwrap();
    assert!(st.success());
    // Type changes.
    fs::remove_file(t.join("special/fifo")).unwrap();
    write(&t.join("special/fifo"), b"a file where a fifo was\n");
    fs::remove_file(t.join("tc/file2dir")).unwrap();
    write(&t.join("tc/file2dir/child.txt"), b"child of file2dir\n");
    fs::remove_dir_all(t.join("tc/dir2file")).unwrap();
    write(&t.join("tc/dir2file"), b"a file where a dir was\n");
    // A symlink to a real file of the tree: following it would write into small/f000.
    fs::remove_file(t.join("tc/file2link")).unwrap();
    symlink("../small/f000", t.join("tc/file2link")).unwrap();
    fs::remove_file(t.join("tc/link2file")).unwrap();
    write(&t.join("tc/link2file"), b"a file where a symlink was\n");
    fs::remove_file(t.join("tc/link2dir")).unwrap();
    write(&t.join("tc/link2dir/child.txt"), b"child of link2dir\n");
    // A symlink to a real directory of the tree: following it would write into deep/.
    fs::remove_dir_all(t.join("tc/dir2link")).unwrap();
    symlink("../deep", t.join("tc/dir2link")).unwrap();
    fs::remove_file(t.join("tc/file2fifo")).unwrap();
    mkfifo(&t.join("tc/file2fifo"), 0o644);
}

#[test]
fn delta_restore_over_a_changed_tree_matches_the_snapshot_with_and_without_delete() {
    let env = init_small_chunks();
    let src = env.path("src");
    build_source(&src);
    let (n_files, total) = file_stats(&src);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);

    // Without --delete: everything of the snapshot is back; the extras stay.
    let t = env.path("t");
    restore_report(&env, &spec, &t, &[], 0);
    assert_same_tree(&src, &t, Compare::default());
    mutate(&t);
    let expected = unexpected_lines(&t, &EXTRAS);
    let report = restore_report(&env, &spec, &t, &["--delta"], 0);
    assert_diffs(&src, &t, &expected, "--delta over a changed tree");
    eprintln!("--delta report: {report:#}");
    assert_eq!(report["dry_run"], false, "{report:#}");
    assert_eq!(report["warnings"], serde_json::json!([]), "{report:#}");
    // Hard-link pairs may count their second name under `hardlinks`.
    let files = r(&report, "files");
    assert!(
        files <= n_files && files + 2 >= n_files,
        "files = {files}, the snapshot has {n_files} regular-file paths: {report:#}"
    );
    // 37 small files, big/untouched.bin and the untouched hard-link pair at least.
    assert!(r(&report, "files_unchanged") >= 36, "{report:#}");
    assert!(
        r(&report, "bytes_unchanged") >= 8 * MIB,
        "big/untouched.bin alone is 8 MiB: {report:#}"
    );
    // big/inplace.bin and big/shifted.bin at least.
    assert!(r(&report, "files_patched") >= 2, "{report:#}");
    // Both 8 MiB files differ in a few 64 KiB chunks: nearly all of them is reusable.
    assert!(
        r(&report, "bytes_reused") >= 14 * MIB,
        "bytes_reused {} < 14 MiB: {report:#}",
        r(&report, "bytes_reused")
    );
    assert!(
        r(&report, "bytes_fetched") < 4 * MIB,
        "{} of {total} bytes fetched for a few changed chunks: {report:#}",
        r(&report, "bytes_fetched")
    );
    assert!(
        r(&report, "bytes_written") < total / 2,
        "{} of {total} bytes written for a few changed chunks: {report:#}",
        r(&report, "bytes_written")
    );
    assert!(
        r(&report, "metadata_updated") >= 3,
        "chmod f004, deep/a, f010 and touch f005: {report:#}"
    );
    assert_eq!(r(&report, "deleted"), 0, "no --delete: {report:#}");

    // A second --delta over the repaired tree has nothing left to do but keep the extras.
    // (The hard-linked files, hl/one and hl/three, are rebuilt from their own chunks: a file
    // with other names is never kept, as they could be outside the target.)
    let again = restore_report(&env, &spec, &t, &["--delta"], 0);
    assert_diffs(&src, &t, &expected, "second --delta");
    assert_eq!(r(&again, "bytes_written"), 100_000 + 17, "{again:#}");
    assert_eq!(r(&again, "bytes_fetched"), 0, "{again:#}");
    assert_not_unchanged(&again, 0);

    // With --delete, on a fresh copy mutated the same way: exactly the snapshot.
    let t2 = env.path("t2");
    restore_report(&env, &spec, &t2, &[], 0);
    mutate(&t2);
    let report = restore_report(&env, &spec, &t2, &["--delta", "--delete"], 0);
    eprintln!("--delta --delete report: {report:#}");
    assert_same_tree(&src, &t2, Compare::default());
    // extra.txt, extra-dir (once), small/extra.txt, small/renamed; replaced entries of the
    // wrong type may count too.
    let deleted = r(&report, "deleted");
    assert!(
        (4..=4 + 10).contains(&deleted),
        "deleted = {deleted}: {report:#}"
    );
    assert!(r(&report, "files_patched") >= 2, "{report:#}");
    assert!(r(&report, "files_unchanged") >= 36, "{report:#}");
    assert!(r(&report, "bytes_fetched") < 4 * MIB, "{report:#}");
}

/// `--delete` counts a removed directory once, whatever it holds.
#[test]
fn delete_counts_a_removed_directory_once() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("kept.txt"), b"kept\n");
    write(&src.join("dir/inner.txt"), b"inner\n");
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);
    let t = env.path("t");
    restore_report(&env, &spec, &t, &[], 0);
    for i in 0..5 {
        write(&t.join(format!("gone/f{i}")), b"x");
    }
    write(&t.join("gone/sub/deeper"), b"y");
    write(&t.join("dir/extra.txt"), b"z");
    write(&t.join("top-extra"), b"w");
    let report = restore_report(&env, &spec, &t, &["--delta", "--delete"], 0);
    assert_same_tree(&src, &t, Compare::default());
    assert_eq!(
        r(&report, "deleted"),
        3,
        "gone/ (once), dir/extra.txt, top-extra: {report:#}"
    );
    assert_eq!(r(&report, "files_unchanged"), 2, "{report:#}");
    assert_eq!(r(&report, "bytes_written"), 0, "{report:#}");
}

// ------------------------------------------------------------------------------------------------
// 2. An unchanged tree, and --verify-existing
// ------------------------------------------------------------------------------------------------

/// Bytes of the hard-linked pair `hl/a`, `hl/b` below, which every delta restore replaces.
const HARD_LINKED: u64 = 7;

#[test]
fn delta_over_an_unchanged_tree_writes_nothing_and_verify_existing_finds_hidden_changes() {
    let env = init_small_chunks();
    let src = env.path("src");
    write_generated(&src.join("big.bin"), 21, 8 * MIB, random_bytes);
    write_generated(&src.join("big2.bin"), 22, 8 * MIB, random_bytes);
    write_generated(&src.join("text.txt"), 23, 3 * MIB, compressible_bytes);
    for i in 0..20u64 {
        write(
            &src.join(format!("small/s{i:02}")),
            &compressible_bytes(200 + i, 500 + i as usize * 100),
        );
    }
    fs::File::create(src.join("small/empty")).unwrap();
    write(&src.join("hl/a"), b"linked\n");
    fs::hard_link(src.join("hl/a"), src.join("hl/b")).unwrap();
    symlink("../big.bin", src.join("small/link")).unwrap();
    mkfifo(&src.join("fifo"), 0o644);
    chmod(&src.join("small"), 0o750);
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let (_, total) = file_stats(&src);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);

    let t = env.path("t");
    restore_report(&env, &spec, &t, &[], 0);
    assert_same_tree(&src, &t, Compare::default());

    for args in [&["--delta"][..], &["--delta", "--verify-existing"][..]] {
        let report = restore_report(&env, &spec, &t, args, 0);
        assert_same_tree(&src, &t, Compare::default());
        for key in [
            "bytes_fetched",
            "files_written",
            "deleted",
            "metadata_updated",
        ] {
            assert_eq!(r(&report, key), 0, "{args:?}: {key}: {report:#}");
        }
        // Except the hard-linked pair: a file with other names is never kept (they could be
        // outside the target), it is rebuilt from its own chunks.
        assert_eq!(
            r(&report, "bytes_written"),
            HARD_LINKED,
            "{args:?}: {report:#}"
        );
        assert_eq!(r(&report, "files_patched"), 1, "{args:?}: {report:#}");
        assert!(r(&report, "files") >= 23, "{args:?}: {report:#}");
        assert_not_unchanged(&report, 0);
        // The hard-linked pair (counted twice in `total`) is not unchanged.
        let unchanged = r(&report, "bytes_unchanged");
        assert!(
            unchanged == total - 2 * HARD_LINKED,
            "{args:?}: bytes_unchanged {unchanged} of {total}: {report:#}"
        );
    }

    // Content changed behind size and mtime: one byte in the middle of big.bin, a word of a
    // small file.
    let hide = |path: &Path, offset: u64, data: &[u8]| {
        let m = scan(path).remove(&Vec::new()).unwrap();
        overwrite_at(path, offset, data);
        set_mtime(path, m.mtime.0, m.mtime.1);
        // The change is real and hidden: same size and mtime, different bytes.
        let now = scan(path).remove(&Vec::new()).unwrap();
        assert_eq!((now.size, now.mtime), (m.size, m.mtime));
    };
    let big = t.join("big.bin");
    let byte = fs::read(&big).unwrap()[(4 * MIB + 3) as usize];
    hide(&big, 4 * MIB + 3, &[!byte]);
    hide(&t.join("small/s07"), 10, b"HIDDEN");
    set_mtime(
        &t,
        scan(&src)[&Vec::new()].mtime.0,
        scan(&src)[&Vec::new()].mtime.1,
    );
    let hidden: BTreeSet<String> = compare_trees(&src, &t, Compare::default())
        .into_iter()
        .collect();
    assert_eq!(
        hidden,
        BTreeSet::from([
            format!("\"big.bin\": content differs from byte {}", 4 * MIB + 3),
            "\"small/s07\": content differs from byte 10".to_string(),
        ])
    );

    // Plain --delta trusts size+mtime (documented): both are left alone.
    let report = restore_report(&env, &spec, &t, &["--delta"], 0);
    assert_diffs(&src, &t, &hidden, "--delta trusts size and mtime");
    assert_eq!(r(&report, "bytes_written"), HARD_LINKED, "{report:#}");
    assert_not_unchanged(&report, 0);

    // --verify-existing hashes them and repairs both, fetching only the changed chunks.
    let report = restore_report(&env, &spec, &t, &["--delta", "--verify-existing"], 0);
    eprintln!("--verify-existing report: {report:#}");
    assert_same_tree(&src, &t, Compare::default());
    assert!(r(&report, "files_patched") >= 1, "{report:#}");
    assert_not_unchanged(&report, 2);
    assert!(
        r(&report, "bytes_fetched") < MIB,
        "one changed byte and one small file need at most a few chunks: {report:#}"
    );
    assert!(
        r(&report, "bytes_written") > 0 && r(&report, "bytes_written") < total / 2,
        "{report:#}"
    );
    assert!(r(&report, "bytes_reused") >= 7 * MIB, "{report:#}");

    // And now there is nothing left to find.
    let report = restore_report(&env, &spec, &t, &["--delta", "--verify-existing"], 0);
    assert_eq!(r(&report, "bytes_written"), HARD_LINKED, "{report:#}");
    assert_same_tree(&src, &t, Compare::default());
}

// ------------------------------------------------------------------------------------------------
// 3. Symlinks in the target are never followed
// ------------------------------------------------------------------------------------------------

#[test]
fn delta_never_follows_a_symlink_that_points_outside_the_target() {
    let env = Env::init();
    let src = env.path("src");
    let f_content = b"the snapshot's f\n".to_vec();
    write(&src.join("dir/a"), b"snapshot a\n");
    write(&src.join("dir/b"), &random_bytes(31, 70_000));
    write(&src.join("dir/sub/c"), b"snapshot c\n");
    write(&src.join("f"), &f_content);
    write(&src.join("nested/inner/d"), b"snapshot d\n");
    write(&src.join("g"), b"the snapshot's g\n");
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let tree = scan(&src);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);

    // Outside: a directory with files of the same names, sizes and mtimes as the snapshot's
    // (a delta that followed the link would find them "unchanged"), and a file like f.
    let outside_dir = tempfile::Builder::new()
        .prefix("vault-outside-")
        .tempdir()
        .unwrap();
    let outside = outside_dir.path().to_path_buf();
    let same_shape = |rel: &str, dst: &Path| {
        let node = &tree[rel.as_bytes()];
        let mut content = fs::read(src.join(rel)).unwrap();
        for b in content.iter_mut() {
            *b = b.wrapping_add(1);
        }
        write(dst, &content);
        set_mtime(dst, node.mtime.0, node.mtime.1);
    };
    same_shape("dir/a", &outside.join("x/a"));
    same_shape("dir/b", &outside.join("x/b"));
    write(&outside.join("x/sentinel"), b"do not touch\n");
    same_shape("f", &outside.join("y"));
    write(&outside.join("z/sentinel"), b"do not touch either\n");
    write(&outside.join("g-target"), b"outside g\n");
    let before = fingerprint(&outside);

    for args in [
        &["--delta"][..],
        &["--delta", "--delete"][..],
        &["--delta", "--verify-existing"][..],
        &["--delta", "--verify-existing", "--delete"][..],
    ] {
        let t = env.path(format!("t{}", args.len()));
        remove_any(&t);
        restore_report(&env, &spec, &t, &[], 0);
        fs::remove_dir_all(t.join("dir")).unwrap();
        symlink(outside.join("x"), t.join("dir")).unwrap();
        fs::remove_file(t.join("f")).unwrap();
        symlink(outside.join("y"), t.join("f")).unwrap();
        fs::remove_dir_all(t.join("nested")).unwrap();
        symlink(outside.join("z"), t.join("nested")).unwrap();
        fs::remove_file(t.join("g")).unwrap();
        symlink(outside.join("g-target"), t.join("g")).unwrap();
        let out = env.restore(&spec, &t, args.iter().copied().chain(["--json"]));
        assert_eq!(
            fingerprint(&outside),
            before,
            "{args:?}: the restore changed files outside its target through a symlink\n{}",
            out.stderr
        );
        out.ok().no_panic();
        assert_same_tree(&src, &t, Compare::default());
        assert_eq!(fingerprint(&outside), before, "{args:?}");
    }
}

/// A file of the target that is a hard link to a file outside it: patching it in place would
/// change the file outside (beyond the letter of the interface, which speaks of symlinks, but
/// the same promise: a restore writes only under its target).
#[test]
fn delta_does_not_write_through_a_hard_link_to_a_file_outside_the_target() {
    let env = init_small_chunks();
    let src = env.path("src");
    write_generated(&src.join("big.bin"), 71, 2 * MIB, random_bytes);
    write(&src.join("small.txt"), b"the snapshot's small file\n");
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);
    // Outside, on the same file system (both are under the temp dir).
    let outside = env.path("outside");
    for args in [&["--delta"][..], &["--delta", "--delete"][..]] {
        remove_any(&outside);
        let t = env.path("t");
        remove_any(&t);
        restore_report(&env, &spec, &t, &[], 0);
        for name in ["big.bin", "small.txt"] {
            // The outside file: the target's content with a few bytes changed.
            let mut content = fs::read(t.join(name)).unwrap();
            let mid = content.len() / 2;
            content[mid] ^= 0xff;
            write(&outside.join(name), &content);
            fs::remove_file(t.join(name)).unwrap();
            fs::hard_link(outside.join(name), t.join(name)).unwrap();
        }
        let before = fingerprint(&outside);
        let out = env.restore(&spec, &t, args.iter().copied().chain(["--json"]));
        assert_eq!(
            fingerprint(&outside),
            before,
            "{args:?}: the restore changed a file outside its target through a hard link\n{}",
            out.stderr
        );
        out.ok().no_panic();
        assert_same_tree(&src, &t, Compare::default());
    }
}

// ------------------------------------------------------------------------------------------------
// 4. Killed mid-delta
// ------------------------------------------------------------------------------------------------

fn crash_iterations() -> usize {
    std::env::var("VAULT_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn mutate_for_crash(t: &Path, round: u64) {
    let big = t.join("big.bin");
    for (k, off) in [3 * MIB, 20 * MIB, 41 * MIB, 60 * MIB].iter().enumerate() {
        overwrite_at(
            &big,
            *off + round,
            &random_bytes(900 + round * 10 + k as u64, 50_000),
        );
    }
    insert_at(&big, (33 * MIB) as usize, &random_bytes(990 + round, 3333));
    for i in (0..200u64).step_by(2) {
        let p = t.join(format!("small/s{i:03}"));
        overwrite_at(&p, 5, format!("changed in round {round}").as_bytes());
    }
    for i in (1..200u64).step_by(7) {
        remove_any(&t.join(format!("small/s{i:03}")));
    }
    write(&t.join("extra/junk.bin"), &random_bytes(999, 100_000));
    write(&t.join("small/extra"), b"extra\n");
}

#[test]
fn delta_killed_at_random_points_then_rerun_restores_exactly_and_leaves_no_temp_files() {
    killed_delta_rounds(true);
}

/// The same, with a rerun without --delete: the temp files of the killed run must not be left
/// for ever (the rerun cannot tell them from the user's files unless it recognises its own).
/// Only the extra entries the mutation added may remain.
#[test]
fn delta_killed_then_rerun_without_delete_leaves_no_temp_files() {
    killed_delta_rounds(false);
}

fn killed_delta_rounds(rerun_with_delete: bool) {
    let env = init_small_chunks();
    let src = env.path("src");
    write_generated(&src.join("big.bin"), 41, 64 * MIB, random_bytes);
    for i in 0..200u64 {
        write(
            &src.join(format!("small/s{i:03}")),
            &random_bytes(1000 + i, 2000 + (i as usize * 131) % 30_000),
        );
    }
    write(&src.join("deep/x/y/z.txt"), b"z\n");
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);
    let pristine = env.path("pristine");
    restore_report(&env, &spec, &pristine, &[], 0);
    assert_same_tree(&src, &pristine, Compare::default());

    let mut rng = Rng::new(0xde17a);
    for round in 0..crash_iterations() {
        // How long an undisturbed run takes, on a copy mutated the same way.
        let probe = env.path("probe");
        remove_any(&probe);
        copy_tree(&pristine, &probe);
        mutate_for_crash(&probe, round as u64);
        let t0 = Instant::now();
        restore_report(&env, &spec, &probe, &["--delta", "--delete"], 0);
        let full = t0.elapsed();
        assert_same_tree(&src, &probe, Compare::default());

        let t = env.path("t");
        remove_any(&t);
        copy_tree(&pristine, &t);
        mutate_for_crash(&t, round as u64);
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        let mut cmd = env.cmd(["restore", &spec, "--delta", "--delete", "--target"]);
        cmd.arg(&t).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
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

        let allowed = if rerun_with_delete {
            BTreeSet::new()
        } else {
            let present: Vec<&str> = ["extra", "extra/junk.bin", "small/extra"]
                .into_iter()
                .filter(|rel| fs::symlink_metadata(t.join(rel)).is_ok())
                .collect();
            unexpected_lines(&t, &present)
        };
        let rerun: &[&str] = if rerun_with_delete {
            &["--delta", "--delete"]
        } else {
            &["--delta"]
        };
        let report = restore_report(&env, &spec, &t, rerun, 0);
        let diffs: Vec<String> = compare_trees(&src, &t, Compare::default())
            .into_iter()
            .filter(|d| !allowed.contains(d))
            .collect();
        assert!(
            diffs.is_empty(),
            "round {round} (killed after {delay:?}): the rerun left {} differences (temp files \
             show as 'unexpected'):\n  {}\nrerun report: {report:#}",
            diffs.len(),
            diffs.join("\n  ")
        );
        // Nothing beside the target either (a temp file next to it, say).
        let beside: Vec<_> = names(env.dir.path())
            .into_iter()
            .filter(|n| {
                let n = n.to_string_lossy();
                n.starts_with('.')
                    || n.contains("tmp")
                    || n.starts_with("t.")
                    || n.contains("vault")
            })
            .collect();
        assert!(
            beside.is_empty(),
            "round {round}: left beside the target: {beside:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// 5. --include
// ------------------------------------------------------------------------------------------------

/// Children of the restore root whose type changed, with --include: the included one is
/// replaced by the snapshot's entry, the other one (not part of the restored view) is left as
/// it is in the target.
#[test]
fn delta_with_include_replaces_included_children_of_the_wrong_type_only() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a/inner.txt"), b"inner\n");
    write(&src.join("a/sub/deeper.txt"), b"deeper\n");
    write(&src.join("b"), b"b is a file\n");
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);
    let t = env.path("t");
    restore_report(&env, &spec, &t, &[], 0);
    fs::remove_dir_all(t.join("a")).unwrap();
    write(&t.join("a"), b"a is a file now\n");
    fs::remove_file(t.join("b")).unwrap();
    write(&t.join("b/child"), b"b is a dir now\n");
    let b_before = fingerprint(&t.join("b"));
    let include = format!("{}/a", src.display());
    restore_report(&env, &spec, &t, &["--delta", "--include", &include], 0);
    assert_eq!(fingerprint(&t.join("b")), b_before, "b is not included");
    let diffs: Vec<String> = compare_trees(&src.join("a"), &t.join("a"), Compare::default());
    assert!(diffs.is_empty(), "a: {diffs:#?}");
}

// ------------------------------------------------------------------------------------------------
// 6. Usage
// ------------------------------------------------------------------------------------------------

#[test]
fn delete_and_verify_existing_need_delta() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a"), b"a\n");
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);
    let t = env.path("t");
    restore_report(&env, &spec, &t, &[], 0);
    write(&t.join("extra"), b"extra\n");
    let before = fingerprint(&t);
    for args in [
        &["--delete"][..],
        &["--verify-existing"][..],
        &["--delete", "--overwrite"][..],
        &["--verify-existing", "--delete"][..],
    ] {
        env.restore(&spec, &t, args).code(2).no_panic();
        assert_eq!(fingerprint(&t), before, "{args:?} changed the target");
    }
    // A missing target is not created by a usage error.
    let missing = env.path("missing");
    env.restore(&spec, &missing, ["--delete"]).code(2);
    assert!(fs::symlink_metadata(&missing).is_err());
    // Control: with --delta the same options are accepted (the exit code 2 above is about
    // the missing --delta, not about unknown options).
    let report = restore_report(
        &env,
        &spec,
        &t,
        &["--delta", "--delete", "--verify-existing"],
        0,
    );
    assert_same_tree(&src, &t, Compare::default());
    assert_eq!(r(&report, "deleted"), 1, "{report:#}");
}

#[test]
fn delta_into_a_missing_or_empty_target_is_a_normal_restore() {
    let env = init_small_chunks();
    let src = env.path("src");
    write_generated(&src.join("big.bin"), 61, 3 * MIB, random_bytes);
    write(&src.join("dir/small"), b"small\n");
    write(&src.join("hl/a"), b"linked\n");
    fs::hard_link(src.join("hl/a"), src.join("hl/b")).unwrap();
    symlink("dir/small", src.join("link")).unwrap();
    mkfifo(&src.join("fifo"), 0o600);
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let (_, total) = file_stats(&src);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);

    let missing = env.path("a/b/missing");
    let report = restore_report(&env, &spec, &missing, &["--delta"], 0);
    assert_same_tree(&src, &missing, Compare::default());
    assert_eq!(r(&report, "files_unchanged"), 0, "{report:#}");
    assert_eq!(r(&report, "files_patched"), 0, "{report:#}");
    assert_eq!(r(&report, "bytes_reused"), 0, "{report:#}");
    // Hard-linked content is written once.
    assert_eq!(r(&report, "bytes_written"), total - 7, "{report:#}");
    assert_eq!(r(&report, "symlinks"), 1, "{report:#}");
    assert_eq!(r(&report, "special"), 1, "{report:#}");

    let empty = env.path("empty");
    fs::create_dir(&empty).unwrap();
    let report = restore_report(&env, &spec, &empty, &["--delta", "--delete"], 0);
    assert_same_tree(&src, &empty, Compare::default());
    assert_eq!(r(&report, "deleted"), 0, "{report:#}");
    assert_eq!(r(&report, "files_unchanged"), 0, "{report:#}");

    // A full snapshot (no subpath) with --delta into a missing target, too.
    let full = env.path("full");
    restore_report(&env, &id, &full, &["--delta"], 0);
    assert_same_tree(&src, &Env::restored(&full, &src), Compare::default());
}

/// A file patched in place gets its zero blocks written: the holes a fresh restore would leave
/// must not let the old bytes at those offsets survive.
#[test]
fn delta_patch_in_place_overwrites_old_data_where_the_snapshot_has_zeros() {
    let env = init_small_chunks();
    let src = env.path("src");
    let file = src.join("sparse.bin");
    write_generated(&file, 31, 8 * MIB, random_bytes);
    overwrite_at(&file, 4 * MIB, &vec![0u8; MIB as usize]);
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);
    let t = env.path("t");
    restore_report(&env, &spec, &t, &[], 0);
    assert_same_tree(&src, &t, Compare::default());

    // Same size, the zero region now random: the changed chunks are at their offsets (no moves),
    // so the file is patched in place.
    overwrite_at(
        &t.join("sparse.bin"),
        4 * MIB,
        &random_bytes(32, MIB as usize),
    );
    let report = restore_report(&env, &spec, &t, &["--delta"], 0);
    assert_eq!(r(&report, "files_patched"), 1, "{report:#}");
    assert!(r(&report, "bytes_fetched") < 4 * MIB, "{report:#}");
    assert_same_tree(&src, &t, Compare::default());
}
