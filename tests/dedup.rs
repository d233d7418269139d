//! Deduplication: a second snapshot after small changes stores only what changed.

use std::fs;

use crate::util::*;

/// Lines of the 64 MiB-ish pseudo-SQL stream (the generator averages ~140 bytes a line).
const LINES: u64 = 480_000;
/// Edited clusters, spread evenly; together 1% of the lines.
const CLUSTERS: u64 = 16;
const CLUSTER_LINES: u64 = LINES / 100 / CLUSTERS;
/// Lines appended in the second version.
const APPENDED: u64 = 2_000;

fn edited_dump() -> SqlDump {
    let mut dump = SqlDump::new(99).lines(LINES + APPENDED);
    for c in 0..CLUSTERS {
        let start = LINES / CLUSTERS * c + LINES / CLUSTERS / 2;
        dump = dump.edited(start..start + CLUSTER_LINES, 1000 + c);
    }
    dump
}

/// `vault snapshot --json --stdin --stdin-name db/app.sql` fed with `dump`: the checked JSON
/// summary, and the digest and length of what was fed.
fn snapshot_stream(env: &Env, dump: SqlDump) -> (serde_json::Value, blake3::Hash, u64) {
    let fed = Fed::spawn(
        env.cmd([
            "snapshot",
            "--json",
            "--stdin",
            "--stdin-name",
            "db/app.sql",
        ]),
        dump,
    )
    .wait();
    fed.out.ok();
    let v = fed.out.json();
    check_snapshot_json(&v);
    (v, fed.fed_digest, fed.fed_bytes)
}

#[test]
fn stream_with_one_percent_edited_stores_only_changed_chunks() {
    let env = Env::init();
    let snapshot = |dump: SqlDump| snapshot_stream(&env, dump);
    let (first, _, size1) = snapshot(SqlDump::new(99).lines(LINES));
    let (second, digest2, size2) = snapshot(edited_dump());
    assert!(size1 > 50 << 20 && size2 > size1, "sizes {size1} {size2}");

    let (added1, added2) = (
        summary(&first, "bytes_added"),
        summary(&second, "bytes_added"),
    );
    let (new2, total2) = (
        summary(&second, "chunks_new"),
        summary(&second, "chunks_total"),
    );
    eprintln!(
        "dedup stream: {size1} B -> added {added1} B; edited {size2} B -> added {added2} B, \
         {new2}/{total2} chunks new"
    );
    // What changed: 1% of the lines (in 16 clusters), the chunks straddling the 32 cluster
    // edges (16 KiB on average each), the appended 0.4%, and the rewritten chunk list (~36 B per
    // chunk reference). That is about 2-3% of the chunks and of the stored bytes; without dedup
    // it would be 100%. Assert under 8% of the chunks and 10% of the first snapshot's bytes,
    // leaving room for chunk-size variance while any failure to dedup is far above it.
    assert!(
        new2 * 100 < total2 * 8,
        "{new2} of {total2} chunks new after editing 1% of the lines"
    );
    assert!(
        added2 * 10 < added1,
        "second snapshot added {added2} bytes, first {added1}: not deduplicated"
    );
    // The edits and the appended lines are stored, not lost.
    assert!(
        new2 > CLUSTERS,
        "only {new2} new chunks for {CLUSTERS} edited regions"
    );
    assert!(added2 > 0);

    let (code, digest, len, stderr) = env.dump_digest("latest", "/db/app.sql", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (digest, len),
        (digest2, size2),
        "edited stream dumped back differently"
    );
    let (code, _, len, _) = env.dump_digest(&id_of(&first), "/db/app.sql", &[]);
    assert_eq!((code, len), (0, size1));
}

/// Issue 19 item 1: a dump that a nightly job writes to a file costs no more per day than the
/// same dump streamed through `--stdin`, while an incompressible media file beside it keeps its
/// coarse chunks.
#[test]
fn dump_written_as_a_file_deduplicates_like_the_same_dump_streamed() {
    const FILE_LINES: u64 = 160_000;
    let first_dump = || SqlDump::new(7).lines(FILE_LINES);
    let second_dump = || {
        let mut dump = SqlDump::new(7).lines(FILE_LINES + 700);
        for c in 0..CLUSTERS {
            let start = FILE_LINES / CLUSTERS * c + FILE_LINES / CLUSTERS / 2;
            let lines = FILE_LINES / 100 / CLUSTERS;
            dump = dump.edited(start..start + lines, 500 + c);
        }
        dump
    };

    // Streamed: the reference.
    let streamed = Env::init();
    let (stream1, _, _) = snapshot_stream(&streamed, first_dump());
    let (stream2, _, _) = snapshot_stream(&streamed, second_dump());

    // Written to a file between snapshots, beside 6 MiB of incompressible media.
    let env = Env::init();
    let src = env.path("src");
    let dump_path = src.join("db/app.sql");
    fs::create_dir_all(dump_path.parent().unwrap()).unwrap();
    let media = src.join("media/video.bin");
    write_generated(&media, 3, 6 << 20, random_bytes);
    let write_dump = |mut dump: SqlDump| {
        let mut file = fs::File::create(&dump_path).unwrap();
        std::io::copy(&mut dump, &mut file).unwrap();
    };
    write_dump(first_dump());
    let file1 = env.snapshot([&src]);
    write_dump(second_dump());
    let file2 = env.snapshot([&src]);

    let added = |v: &serde_json::Value| summary(v, "bytes_added");
    eprintln!(
        "dump as file: day 1 {} B, day 2 {} B; streamed: day 1 {} B, day 2 {} B",
        added(&file1),
        added(&file2),
        added(&stream1),
        added(&stream2)
    );
    // Day 2 of the file costs about what day 2 of the stream costs (its trees and the media's
    // unchanged entry add a little); with 1 MiB chunks it re-stored most of the dump.
    assert!(
        added(&file2) < added(&stream2) * 3 / 2 + 16_384,
        "file day 2 added {} B, stream day 2 {} B",
        added(&file2),
        added(&stream2)
    );
    assert!(added(&file2) * 10 < added(&file1), "{file2}");
    // The media kept coarse chunks: the file snapshot has about the stream's chunks plus six,
    // not plus the ~400 a fine cut of 6 MiB would make.
    let chunks = |v: &serde_json::Value| summary(v, "chunks_total");
    assert!(
        chunks(&file1) < chunks(&stream1) + 60,
        "{} chunks with the media, {} for the dump alone",
        chunks(&file1),
        chunks(&stream1)
    );

    // Both days restore byte for byte.
    let (code, digest, len, stderr) = env.dump_digest("latest", dump_path.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{stderr}");
    let now = fs::read(&dump_path).unwrap();
    assert_eq!((digest, len), (blake3::hash(&now), now.len() as u64));
    let old = env.path("old");
    env.restore(&id_of(&file1), &old, Vec::<&str>::new()).ok();
    let mut first = Vec::new();
    std::io::Read::read_to_end(&mut first_dump(), &mut first).unwrap();
    assert!(fs::read(Env::restored(&old, &dump_path)).unwrap() == first);
    assert_same_tree(
        &src.join("media"),
        &Env::restored(&old, &src.join("media")),
        Compare::default(),
    );
}

/// Builds 120 files of 256 KiB plus a few small ones.
fn build_many_files(src: &std::path::Path) -> u64 {
    let mut total = 0;
    for i in 0..120u64 {
        let dir = src.join(format!("d{}", i % 6));
        fs::create_dir_all(&dir).unwrap();
        let data = random_bytes(500 + i, 256 << 10);
        total += data.len() as u64;
        fs::write(dir.join(format!("blob-{i:03}.bin")), data).unwrap();
    }
    for name in ["config.ini", "notes.txt", "VERSION"] {
        let data = format!("{name} v1\n").repeat(3);
        total += data.len() as u64;
        write(&src.join(name), data.as_bytes());
    }
    total
}

#[test]
fn directory_second_snapshot_reads_only_the_changed_file() {
    let env = Env::init();
    let src = env.path("src");
    let total = build_many_files(&src);
    let files = 123;

    let first = env.snapshot([&src]);
    assert_eq!(summary(&first, "files"), files);
    assert_eq!(summary(&first, "files_unchanged"), 0);
    assert_eq!(summary(&first, "bytes_read"), total);

    // Change one small file (same size, so only mtime/ctime tell).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let changed = src.join("config.ini");
    let new_content = "config.ini v2\n".repeat(3);
    assert_eq!(
        new_content.len() as u64,
        fs::metadata(&changed).unwrap().len()
    );
    fs::write(&changed, &new_content).unwrap();

    let second = env.snapshot([&src]);
    assert_eq!(second["parent"], first["id"], "parent not detected");
    assert_eq!(summary(&second, "files"), files);
    assert_eq!(summary(&second, "files_unchanged"), files - 1, "{second}");
    assert_eq!(
        summary(&second, "bytes_read"),
        new_content.len() as u64,
        "{second}"
    );
    assert_eq!(summary(&second, "bytes_total"), total);
    assert_eq!(summary(&second, "chunks_new"), 1, "{second}");

    // A file whose content changes but whose mtime is put back is still re-read (ctime).
    let sneaky = src.join("notes.txt");
    let before = fs::symlink_metadata(&sneaky).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&sneaky, "notes.txt v2\n".repeat(3)).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        set_mtime(&sneaky, before.mtime(), before.mtime_nsec());
    }
    let third = env.snapshot([&src]);
    assert_eq!(summary(&third, "files_unchanged"), files - 1, "{third}");
    assert_eq!(summary(&third, "bytes_read"), 39, "{third}");

    // --force-read reads everything again but finds every chunk and tree already stored.
    let forced = env.snapshot([src.as_os_str(), "--force-read".as_ref()]);
    assert_eq!(summary(&forced, "files_unchanged"), 0, "{forced}");
    assert_eq!(summary(&forced, "bytes_read"), total, "{forced}");
    assert_eq!(summary(&forced, "chunks_new"), 0, "{forced}");
    // Only the trees above src may be new (other tests change /tmp's mtime meanwhile).
    assert!(summary(&forced, "trees_new") <= 3, "{forced}");
    assert!(summary(&forced, "bytes_added") < 4096, "{forced}");

    let target = env.path("t");
    env.restore("latest", &target, Vec::<&str>::new()).ok();
    assert_same_tree(&src, &Env::restored(&target, &src), Compare::default());
    // The first snapshot still holds the old content.
    let old = env.path("old");
    env.restore(&id_of(&first), &old, Vec::<&str>::new()).ok();
    assert_eq!(
        fs::read(Env::restored(&old, &changed)).unwrap(),
        "config.ini v1\n".repeat(3).as_bytes()
    );
}

/// The same content under another path dedups against the first snapshot (new source, no
/// parent: every file is read, but no chunk is new).
#[test]
fn copied_tree_dedups_against_other_source() {
    let env = Env::init();
    let src = env.path("src");
    build_many_files(&src);
    let first = env.snapshot([&src]);
    let copy = env.path("copy");
    fs::create_dir(&copy).unwrap();
    for e in walk_files(&src) {
        let rel = e.strip_prefix(&src).unwrap();
        let to = copy.join(rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(&e, &to).unwrap();
    }
    let second = env.snapshot([&copy]);
    assert!(second.get("parent").is_none_or(|p| p.is_null()), "{second}");
    assert_eq!(
        summary(&second, "bytes_read"),
        summary(&first, "bytes_read")
    );
    assert_eq!(summary(&second, "chunks_new"), 0, "{second}");
    assert!(
        summary(&second, "bytes_added") < 16 << 10,
        "copy added {} bytes",
        summary(&second, "bytes_added")
    );
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
