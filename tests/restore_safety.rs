//! Restore safety (issue 16): what a restore may change, where it may write, and how it goes on
//! over a damaged repository. Every test runs the real binary.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use crate::util::*;

/// `ID:<abs src>`: the snapshot's copy of `src`, so that the target holds the tree itself.
fn spec(id: &str, src: &Path) -> String {
    format!("{id}:{}", src.display())
}

/// (mode, uid, gid, content digest, mtime) of a file: what a restore must not change outside
/// its target.
fn state(path: &Path) -> (u32, u32, u32, blake3::Hash, (i64, i64)) {
    let m = fs::symlink_metadata(path).unwrap();
    (
        m.mode() & 0o7777,
        m.uid(),
        m.gid(),
        file_digest(path).0,
        (m.mtime(), m.mtime_nsec()),
    )
}

/// Skips (with a message) a test that needs root to give files away.
fn needs_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("SKIPPED: {test} needs root (it tests chown through a delta restore)");
        return false;
    }
    true
}

// ------------------------------------------------------------------------------------------------
// Item 4: a delta restore applies metadata only to what it wrote or hashed
// ------------------------------------------------------------------------------------------------

/// A hard link planted in the target to a file outside it, with the snapshot file's size, mtime
/// and even its content: the delta restore must neither re-permission nor re-own the outside
/// file (it went from 600 nobody to 644 root), and the target gets a file of its own.
#[test]
fn delta_never_changes_owner_or_mode_of_a_file_outside_the_target_through_a_hard_link() {
    if !needs_root("delta_never_changes_owner_or_mode_...") {
        return;
    }
    let env = Env::init();
    let src = env.path("src");
    let content = b"the snapshot's content of f\n";
    write(&src.join("f"), content);
    chmod(&src.join("f"), 0o644);
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);
    let f_meta = fs::symlink_metadata(src.join("f")).unwrap();

    for args in [&["--delta"][..], &["--delta", "--verify-existing"][..]] {
        let t = env.path("t");
        let outside = env.path("outside");
        let _ = fs::remove_dir_all(&t);
        let _ = fs::remove_dir_all(&outside);
        env.restore(&spec, &t, Vec::<&str>::new()).ok();
        // Outside: the same bytes, size and mtime, but private to nobody.
        let secret = outside.join("secret");
        write(&secret, content);
        chmod(&secret, 0o600);
        lchown(&secret, NOBODY, NOBODY);
        set_mtime(&secret, f_meta.mtime(), f_meta.mtime_nsec());
        fs::remove_file(t.join("f")).unwrap();
        fs::hard_link(&secret, t.join("f")).unwrap();
        let before = state(&secret);

        let out = env.restore(&spec, &t, args.iter().copied());
        assert_eq!(
            state(&secret),
            before,
            "{args:?}: the restore changed a file outside its target through a hard link\n{}",
            out.stderr
        );
        out.ok().no_panic();
        assert_same_tree(&src, &t, Compare::default());
        let restored = fs::symlink_metadata(t.join("f")).unwrap();
        assert_ne!(restored.ino(), fs::symlink_metadata(&secret).unwrap().ino());
        assert_eq!(restored.nlink(), 1, "{args:?}");
    }
}

/// Another user who can write the dev target swaps in their own content with the right size
/// and mtime; a root delta restore must not make it setuid root: the snapshot's content is
/// written, and only then is it given to root with mode 4755.
#[test]
fn delta_never_makes_swapped_in_content_setuid_root() {
    if !needs_root("delta_never_makes_swapped_in_content_setuid_root") {
        return;
    }
    let env = Env::init();
    let src = env.path("src");
    let tool = b"#!/bin/sh\necho the real tool\n";
    write(&src.join("bin/tool"), tool);
    chmod(&src.join("bin/tool"), 0o4755);
    write(&src.join("bin/other"), b"an ordinary file\n");
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));
    let spec = spec(&id, &src);
    let tool_meta = fs::symlink_metadata(src.join("bin/tool")).unwrap();

    for args in [&["--delta"][..], &["--delta", "--verify-existing"][..]] {
        let t = env.path("t");
        let _ = fs::remove_dir_all(&t);
        env.restore(&spec, &t, Vec::<&str>::new()).ok();
        // The other user's file: same size and mtime, other bytes, owned by them.
        let evil = b"#!/bin/sh\nid > /tmp/owned ##\n";
        assert_eq!(evil.len(), tool.len());
        let at = t.join("bin/tool");
        fs::remove_file(&at).unwrap();
        write(&at, evil);
        chmod(&at, 0o755);
        lchown(&at, NOBODY, NOBODY);
        set_mtime(&at, tool_meta.mtime(), tool_meta.mtime_nsec());
        set_mtime(
            &t.join("bin"),
            fs::symlink_metadata(src.join("bin")).unwrap().mtime(),
            fs::symlink_metadata(src.join("bin")).unwrap().mtime_nsec(),
        );

        env.restore(&spec, &t, args.iter().copied()).ok().no_panic();
        let (mode, uid, _, digest, _) = state(&at);
        assert_eq!(
            digest,
            blake3::hash(tool),
            "{args:?}: content the restore did not write was kept (mode {mode:o}, uid {uid})"
        );
        assert_same_tree(&src, &t, Compare::default());
    }
}

// ------------------------------------------------------------------------------------------------
// Item 6: empty path arguments
// ------------------------------------------------------------------------------------------------

/// `--target ''` used to restore into the current directory, skipping the non-empty check;
/// `--output ''` and `--repo ''` are refused the same way.
#[test]
fn empty_target_or_output_is_a_usage_error_and_writes_nothing() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a"), b"a\n");
    env.snapshot([&src]);
    let cwd = env.dir.path();
    let before = names(cwd);
    let out = env.run(["restore", "latest", "--target", ""]);
    out.code(2).no_panic();
    assert_eq!(names(cwd), before, "{}", out.stderr);
    // Already refused by clap for path-typed options; kept here so it stays that way.
    let out = env.run(["export", "latest", "--output", ""]);
    out.code(2).no_panic();
    assert_eq!(names(cwd), before, "{}", out.stderr);
    // `--repo ''` used to be "vault: : not a vault repository" (exit 1).
    let out = env.run(["--repo", "", "list"]);
    out.code(2).no_panic();
    assert_eq!(names(cwd), before, "{}", out.stderr);
}

// ------------------------------------------------------------------------------------------------
// Item 10: --keep-going over a damaged repository
// ------------------------------------------------------------------------------------------------

/// Flips a byte in the middle of the largest pack of `packs_after` that is not in `packs_before`.
fn damage_new_pack(env: &Env, before: &[std::path::PathBuf]) {
    let mut new: Vec<(u64, std::path::PathBuf)> = pack_files(&env.repo)
        .into_iter()
        .filter(|p| !before.contains(p))
        .map(|p| (fs::metadata(&p).unwrap().len(), p))
        .collect();
    new.sort();
    let (len, pack) = new.pop().expect("a new pack");
    assert!(len > 1 << 20, "the big file's pack");
    let mut bytes = fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    chmod(&pack, 0o644);
    fs::write(&pack, &bytes).unwrap();
}

/// A restore from a damaged repository stopped at the first bad chunk; with --keep-going it
/// restores everything else, leaves the damaged files out (not partly written at their names),
/// lists each with its path and exits 3.
#[test]
fn keep_going_restores_everything_else_and_lists_each_damaged_file() {
    let env = Env::init();
    let src = env.path("src");
    for i in 0..200u64 {
        write(
            &src.join(format!("d{}/f{i:03}", i % 7)),
            &compressible_bytes(i, 100 + i as usize * 13),
        );
    }
    env.snapshot([&src]);
    let before = pack_files(&env.repo);
    // Only the big file's chunks go into the new pack (the rest deduplicates).
    write_generated(&src.join("d3/big.bin"), 77, 3 << 20, random_bytes);
    fs::hard_link(src.join("d3/big.bin"), src.join("d5/big-link")).unwrap();
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));
    damage_new_pack(&env, &before);
    let spec = spec(&id, &src);
    let damaged = ["d3/big.bin", "d5/big-link"];
    let check_rest = |t: &Path| {
        for rel in damaged {
            assert!(
                fs::symlink_metadata(t.join(rel)).is_err(),
                "{rel} left at its name"
            );
        }
        let how = Compare {
            hardlinks: false,
            ..Compare::default()
        };
        let diffs: Vec<String> = compare_trees(&src, t, how)
            .into_iter()
            .filter(|d| !damaged.iter().any(|rel| d.starts_with(&format!("{rel:?}"))))
            .collect();
        assert!(diffs.is_empty(), "{diffs:#?}");
    };

    // Without --keep-going: exit 1, and the file being written is not left at its name.
    let t = env.path("t-stop");
    env.restore(&spec, &t, Vec::<&str>::new())
        .code(1)
        .stderr_has("damaged");
    assert!(fs::symlink_metadata(t.join(damaged[0])).is_err());

    for (name, args) in [
        ("t-new", &["--keep-going"][..]),
        ("t-delta", &["--keep-going", "--delta"][..]),
    ] {
        let t = env.path(name);
        if args.contains(&"--delta") {
            // An older, complete-looking file at the damaged file's name goes too.
            env.restore(&spec, &t, ["--keep-going"]).code(3);
            write(&t.join(damaged[0]), b"an older big.bin\n");
        }
        let out = env.restore(&spec, &t, args.iter().copied().chain(["--json"]));
        out.code(3).no_panic();
        let v: Value = out.json();
        let listed: Vec<&str> = v["report"]["damaged"]
            .as_array()
            .unwrap_or_else(|| panic!("no report.damaged in {v:#}"))
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert_eq!(listed.len(), 2, "{args:?}: {listed:#?}");
        for rel in damaged {
            let path = t.join(rel);
            assert!(
                listed
                    .iter()
                    .any(|d| d.starts_with(&format!("{}: ", path.display()))),
                "{args:?}: {rel} not listed: {listed:#?}"
            );
        }
        check_rest(&t);
        let out = env.restore(&spec, &env.path(format!("{name}-human")), ["--keep-going"]);
        out.code(3);
        for rel in damaged {
            out.stderr_has(rel);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Item 12: a target inside a source or the repository
// ------------------------------------------------------------------------------------------------

/// A target inside a source path of the snapshot (the next snapshot would hold the copy) or
/// inside the repository gets a one-line warning; the restore itself succeeds (exit 0).
#[test]
fn target_inside_a_source_or_the_repository_is_warned_about() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("a"), b"a\n");
    let id = id_of(&env.snapshot([&src]));
    let warnings = |out: &Out| -> Vec<String> {
        out.stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .map(str::to_string)
            .collect()
    };

    let out = env.restore(&id, &src.join("restored"), Vec::<&str>::new());
    out.ok();
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", out.stderr);
    assert!(w[0].contains("inside") && w[0].contains("source"), "{w:?}");

    // Through a symlink to the source, too.
    std::os::unix::fs::symlink(&src, env.path("alias")).unwrap();
    let out = env.restore(&id, &env.path("alias/restored2"), Vec::<&str>::new());
    out.ok();
    assert_eq!(warnings(&out).len(), 1, "{}", out.stderr);

    let out = env.restore(&id, &env.repo.join("restored"), Vec::<&str>::new());
    out.ok();
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", out.stderr);
    assert!(w[0].contains("repository"), "{w:?}");

    let out = env.restore(&id, &env.path("elsewhere"), ["--json"]);
    out.ok();
    assert!(warnings(&out).is_empty(), "{}", out.stderr);
}

// ------------------------------------------------------------------------------------------------
// Item 11: trees beyond PATH_MAX under the target
// ------------------------------------------------------------------------------------------------

/// `/proc/self/fd/N/.`: a short path to the directory `rel` below `root`, opened one name at a
/// time (the full path may be longer than PATH_MAX). Keep the descriptor while using the path.
fn short_path_below(root: &Path, rel: &Path) -> (std::os::fd::OwnedFd, std::path::PathBuf) {
    use std::os::fd::AsRawFd;
    let mut fd: std::os::fd::OwnedFd = fs::File::open(root).unwrap().into();
    for part in rel {
        fd = crate::reliability::open_in(&fd, part.to_str().unwrap(), libc::O_DIRECTORY)
            .unwrap_or_else(|| panic!("{} not restored", rel.display()));
    }
    let path = std::path::PathBuf::from(format!("/proc/self/fd/{}/.", fd.as_raw_fd()));
    (fd, path)
}

/// A source tree whose paths come close to PATH_MAX can be snapshotted; restored under a
/// target its paths go beyond PATH_MAX. The restore (which made absolute paths and aborted with
/// "File name too long") round-trips it byte-exact, and so does a --delta restore over a
/// changed copy.
#[test]
fn a_tree_beyond_path_max_under_the_target_round_trips_also_with_delta() {
    const PATH_MAX: usize = 4096;
    let env = Env::init();
    let src = env.path("src");
    let level_name = |i: usize| format!("{i:03}{}", "y".repeat(197));
    // Levels down to 40 bytes short of PATH_MAX (room for the names at the bottom).
    let mut deep = src.clone();
    let mut i = 0;
    while deep.as_os_str().len() + 201 + 40 < PATH_MAX {
        deep.push(level_name(i));
        i += 1;
    }
    let rest = PATH_MAX - 40 - deep.as_os_str().len() - 1;
    deep.push("z".repeat(rest));
    assert_eq!(deep.as_os_str().len(), PATH_MAX - 40);
    write(&src.join(level_name(0)).join("top.txt"), b"near the top\n");
    write(&deep.join("data.bin"), &random_bytes(5, 300_000));
    write(&deep.join("small"), b"a small file at the bottom\n");
    fs::hard_link(deep.join("data.bin"), deep.join("link")).unwrap();
    std::os::unix::fs::symlink("data.bin", deep.join("sym")).unwrap();
    mkfifo(&deep.join("fifo"), 0o640);
    fs::create_dir(deep.join("private")).unwrap();
    write(&deep.join("private/x"), b"x\n");
    chmod(&deep.join("private"), 0o700);
    let mut n = 0;
    set_all_mtimes(&src, &mut n);
    let id = id_of(&env.snapshot([&src]));

    let t = env.path(format!("t{}", "-".repeat(150)));
    let rel = src.strip_prefix("/").unwrap();
    assert!(
        t.join(rel).as_os_str().len() + deep.as_os_str().len() - src.as_os_str().len() > PATH_MAX
    );
    let out = env.restore(&id, &t, Vec::<&str>::new());
    out.ok().no_panic();
    let (_fd, restored) = short_path_below(&t, rel);
    assert_same_tree(&src, &restored, Compare::default());

    // Changed at the bottom; --delta --delete puts it right.
    let deep_rel = deep.strip_prefix(&src).unwrap();
    {
        let (_fd, bottom) = short_path_below(&t, &rel.join(deep_rel));
        let mut data = fs::read(bottom.join("data.bin")).unwrap();
        data[150_000] ^= 1;
        fs::remove_file(bottom.join("data.bin")).unwrap();
        fs::write(bottom.join("data.bin"), &data).unwrap();
        fs::remove_file(bottom.join("small")).unwrap();
        fs::write(bottom.join("extra"), b"not in the snapshot\n").unwrap();
        fs::remove_file(bottom.join("sym")).unwrap();
        std::os::unix::fs::symlink("elsewhere", bottom.join("sym")).unwrap();
    }
    let out = env.restore(&id, &t, ["--delta", "--delete"]);
    out.ok().no_panic();
    let (_fd, restored) = short_path_below(&t, rel);
    assert_same_tree(&src, &restored, Compare::default());
    // A dry run over it finds nothing to do.
    let out = env.restore(&id, &t, ["--delta", "--dry-run", "--json"]);
    out.ok().no_panic();
    let report = out.json()["report"].clone();
    assert_eq!(report["files_written"], 0, "{report:#}");
    assert_eq!(
        report["problems"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
}
