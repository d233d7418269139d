//! `vault export`: a snapshot as a tar stream, extracted with GNU tar and compared
//! byte-for-byte and metadata-for-metadata with a `vault restore` of the same snapshot.
//! Run with `cargo test --release -p vault-cli --test integration export::`.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::encrypted::Enc;
use crate::util::*;

const MIB: u64 = 1 << 20;
const SPARSE_SIZE: u64 = 64 * MIB;

/// A tree with every kind of entry an archive can hold, under `root/src`; returns `src`.
fn build_source(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("nested/deeper")).unwrap();
    fs::File::create(src.join("empty")).unwrap();
    write(&src.join("small"), b"hello\n");
    write_generated(
        &src.join("nested/random-6MiB"),
        7,
        6 * MIB + 17,
        random_bytes,
    );
    write(&src.join("nested/deeper/leaf"), b"leaf\n");
    symlink("../small", src.join("nested/link")).unwrap();
    write(&src.join("hard-a"), b"linked content\n");
    fs::hard_link(src.join("hard-a"), src.join("nested/hard-b")).unwrap();
    write(&src.join("setuid"), b"#!/bin/sh\n");
    chmod(&src.join("setuid"), 0o4755);
    fs::create_dir(src.join("sticky")).unwrap();
    write(&src.join("sticky/inside"), b"x");
    mkfifo(&src.join("fifo"), 0o640);
    // Sparse: data only at the start and the end.
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(SPARSE_SIZE).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(&random_bytes(9, 5000), 0).unwrap();
    sparse
        .write_all_at(&random_bytes(10, 1000), SPARSE_SIZE - 1000)
        .unwrap();
    drop(sparse);
    let long_dir = src.join("d".repeat(120));
    fs::create_dir(&long_dir).unwrap();
    write(
        &long_dir.join(format!("{}-ü-名前", "n".repeat(110))),
        b"long name\n",
    );
    write(&src.join("non-ascii-é"), b"accent\n");
    // Nanosecond mtimes everywhere (directories last, children first).
    let mut all: Vec<PathBuf> = scan(&src)
        .keys()
        .map(|rel| {
            if rel.is_empty() {
                src.clone()
            } else {
                bytes_path(&src, rel)
            }
        })
        .collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64, 123_456_789 + i as i64);
    }
    chmod(&src.join("sticky"), 0o1777);
    set_mtime(&src.join("sticky"), 1_600_000_500, 5);
    src
}

/// Runs `vault export ARGS > archive`, asserting success.
#[track_caller]
fn export_to(env: &Env, cmd: Command, archive: &Path) -> String {
    let mut cmd = cmd;
    cmd.stdout(fs::File::create(archive).unwrap());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{} failed: {stderr}",
        cmdline_of(&cmd)
    );
    let _ = env;
    stderr
}

/// `tar -x` of `archive` into a new `dir`.
#[track_caller]
fn extract(archive: &Path, dir: &Path, extra: &[&str]) {
    fs::create_dir_all(dir).unwrap();
    let mut cmd = Command::new("tar");
    cmd.args(extra).arg("-xpf").arg(archive).arg("-C").arg(dir);
    if is_root() {
        cmd.arg("--same-owner");
    }
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "tar -x failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_sparse_and_links(extracted: &Path, src: &Path) {
    let sparse = Env::restored(extracted, &src.join("sparse"));
    let m = fs::metadata(&sparse).unwrap();
    assert_eq!(m.len(), SPARSE_SIZE);
    assert!(
        allocated(&sparse) < SPARSE_SIZE / 4,
        "sparse file extracted with {} bytes allocated",
        allocated(&sparse)
    );
    let a = fs::metadata(Env::restored(extracted, &src.join("hard-a"))).unwrap();
    let b = fs::metadata(Env::restored(extracted, &src.join("nested/hard-b"))).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard links extracted as separate files");
}

fn full_round_trip(env: &Env, cmd: impl Fn(&[&str]) -> Command, src: &Path) {
    let restored = env.path("restored");
    let out = run_cmd(cmd(&[
        "restore",
        "latest",
        "--target",
        restored.to_str().unwrap(),
    ]));
    out.ok();
    let whole = Compare {
        root_meta: false,
        ..Compare::default()
    };

    let tar = env.path("a.tar");
    let stderr = export_to(env, cmd(&["export", "latest", "--format", "tar"]), &tar);
    assert!(stderr.contains("exported snapshot"), "{stderr}");
    let from_tar = env.path("from-tar");
    extract(&tar, &from_tar, &[]);
    assert_same_tree(&restored, &from_tar, whole);
    check_sparse_and_links(&from_tar, src);
    assert_same_tree(src, &Env::restored(&from_tar, src), Compare::default());

    if required(
        "zstd",
        "apt-get install zstd",
        find_in_path("zstd").ok_or("not in PATH".into()),
    )
    .is_some()
    {
        let zst = env.path("a.tar.zst");
        export_to(
            env,
            cmd(&["export", "latest", "--format", "tar.zst", "--level", "5"]),
            &zst,
        );
        let from_zst = env.path("from-zst");
        extract(&zst, &from_zst, &["--zstd"]);
        assert_same_tree(&restored, &from_zst, whole);
        check_sparse_and_links(&from_zst, src);
    }
}

#[test]
fn export_round_trips_every_kind_of_entry_through_gnu_tar() {
    let env = Env::init();
    let src = build_source(env.dir.path());
    env.snapshot([&src]);
    full_round_trip(&env, |args| env.cmd(args), &src);
}

#[test]
fn export_of_an_encrypted_repository_round_trips() {
    let enc = Enc::init();
    let src = build_source(enc.dir.path());
    let out = enc.run([OsStr::new("snapshot"), src.as_os_str()]);
    out.ok();
    full_round_trip(&enc.env, |args| enc.cmd(args), &src);
}

use std::ffi::OsStr;

#[test]
fn export_of_a_subpath_holds_its_contents_at_the_top() {
    let env = Env::init();
    let src = build_source(env.dir.path());
    env.snapshot([&src]);
    let nested = src.join("nested");
    let spec = format!("latest:{}", nested.display());
    let restored = env.path("restored");
    env.restore(&spec, &restored, Vec::<String>::new()).ok();
    let tar = env.path("sub.tar");
    export_to(&env, env.cmd(["export", &spec]), &tar);
    let from_tar = env.path("from-tar");
    extract(&tar, &from_tar, &[]);
    // The directory's own metadata comes as `./`, like restore puts it on the target.
    assert_same_tree(&restored, &from_tar, Compare::default());
    assert!(from_tar.join("deeper/leaf").is_file());

    // A single file: the archive's one entry, by its name.
    let spec = format!("latest:{}", src.join("small").display());
    let one = env.path("one.tar");
    export_to(&env, env.cmd(["export", &spec, "--format", "tar"]), &one);
    let list = Command::new("tar").arg("-tf").arg(&one).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout), "small\n");
}

/// A stream is cut with the fine profile, whose zero chunks start and end inside 512-byte blocks:
/// the sparse regions of the archive must still be whole blocks, or GNU tar loses its place.
#[test]
fn export_of_a_sparse_file_whose_zero_runs_start_inside_a_block_extracts_exactly() {
    let env = Env::init();
    let mut content = random_bytes(21, 100_003);
    content.extend(vec![0u8; 700 << 10]);
    content.extend(random_bytes(22, 50_001));
    content.extend(vec![0u8; 300 << 10]);
    content.extend(random_bytes(23, 333));
    content.extend(vec![0u8; 200 << 10]);
    let fed = Fed::spawn(
        env.cmd([
            "snapshot",
            "--json",
            "--stdin",
            "--stdin-name",
            "db/zeros.bin",
        ]),
        std::io::Cursor::new(content.clone()),
    )
    .wait();
    fed.out.ok();
    let tar = env.path("zeros.tar");
    export_to(&env, env.cmd(["export", "latest", "--format", "tar"]), &tar);
    let from_tar = env.path("from-tar");
    extract(&tar, &from_tar, &[]);
    let extracted = fs::read(from_tar.join("db/zeros.bin")).unwrap();
    assert!(
        extracted == content,
        "extracted bytes differ from the stream"
    );
}

#[test]
fn export_to_an_output_file_infers_zstd_from_the_name() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("f"), b"content\n");
    env.snapshot([&src]);
    let file = env.path("out.tar.zst");
    env.run(["export", "latest", "--output", file.to_str().unwrap(), "-q"])
        .ok();
    let magic = fs::read(&file).unwrap();
    assert_eq!(&magic[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not zstd");
}

#[test]
fn export_with_an_unknown_format_is_a_usage_error() {
    let env = Env::init();
    env.run(["export", "latest", "--format", "zip"]).code(2);
}

#[test]
fn export_of_a_missing_path_fails_with_one_line() {
    let env = Env::init();
    let src = env.path("src");
    write(&src.join("f"), b"content\n");
    env.snapshot([&src]);
    let out = env.run(["export", "latest:/no/such/path"]);
    // Same exit code as `vault restore` of a missing path (a usage error).
    let restore = env.restore("latest:/no/such/path", &env.path("t"), Vec::<String>::new());
    out.code(restore.code)
        .fails()
        .stderr_has("does not exist in snapshot");
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    assert!(out.stdout.is_empty());
}
