//! Delta chunks (format version 5): a dump whose rows are updated at random places each day is
//! stored as deltas of the chunks it had, and every reader restores it exactly — restore, dump,
//! export, delta restore, verify, prune that forgets the bases' snapshot, copy to a repository
//! with other keys, an index rebuild — and a damaged base is reported against every file whose
//! deltas need it.
//!
//! Run with `cargo test --release -p vault-cli --test integration delta::`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::encrypted::Enc;
use crate::util::*;

/// Rows of the generated table: about 18 MiB of dump, over the size from which a new file's
/// chunk profile is chosen by its content (format-spec/03-chunking.md §3.1.1), so day 0 is
/// chunked finely and its chunks are bases.
const ROWS: u64 = 230_000;
/// Days after day 0.
const DAYS: u64 = 3;

/// One row's line: its text depends only on (id, version).
fn row(id: u64, version: u64, out: &mut Vec<u8>) {
    let mut rng = Rng::new(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version);
    let words = [
        "lorem",
        "ipsum",
        "page",
        "article",
        "draft",
        "published",
        "media",
        "author",
        "review",
        "asset",
    ];
    out.extend_from_slice(
        format!("{id}\tuser{}@example.com\tv{version}\t", id * 7 % 100_003).as_bytes(),
    );
    for w in 0..8 + rng.below(10) {
        if w > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(words[rng.below(words.len() as u64) as usize].as_bytes());
    }
    out.push(b'\n');
}

/// The table's rows in heap order, day by day: each day 2% of rows are updated and written
/// elsewhere (a random place or the end, as PostgreSQL moves an updated row), 0.3% deleted and
/// 1% appended.
fn days() -> Vec<Vec<u8>> {
    let mut rows: Vec<(u64, u64)> = (0..ROWS).map(|id| (id, 0)).collect();
    let mut next_id = ROWS;
    let mut out = Vec::new();
    for day in 0..=DAYS {
        if day > 0 {
            let mut rng = Rng::new(0xDA7 + day);
            let n = rows.len() as u64;
            for _ in 0..n * 3 / 1000 {
                rows.remove(rng.below(rows.len() as u64) as usize);
            }
            for _ in 0..n * 2 / 100 {
                let (id, _) = rows.remove(rng.below(rows.len() as u64) as usize);
                let at = if rng.below(2) == 0 {
                    rng.below(rows.len() as u64 + 1) as usize
                } else {
                    rows.len()
                };
                rows.insert(at, (id, day));
            }
            for _ in 0..n / 100 {
                rows.push((next_id, day));
                next_id += 1;
            }
        }
        let mut dump = b"COPY public.pages (id, email, version, body) FROM stdin;\n".to_vec();
        for &(id, version) in &rows {
            row(id, version, &mut dump);
        }
        dump.extend_from_slice(b"\\.\n");
        out.push(dump);
    }
    out
}

/// Runs vault with a repository's settings (and password).
type Vault<'a> = &'a dyn Fn(&[&str]) -> Out;

/// Snapshots of `src` (with `src/db/app.sql` set to each day's dump); their ids and the bytes
/// each added.
fn snapshot_days(vault: Vault<'_>, src: &Path, dumps: &[Vec<u8>]) -> Vec<(String, u64)> {
    write(&src.join("assets/logo.txt"), b"the asset store\n");
    dumps
        .iter()
        .map(|dump| {
            write(&src.join("db/app.sql"), dump);
            let out = vault(&["snapshot", "--json", src.to_str().unwrap()]);
            out.ok();
            let v = out.json();
            check_snapshot_json(&v);
            (id_of(&v), summary(&v, "bytes_added"))
        })
        .collect()
}

fn restored_dump(vault: Vault<'_>, snapshot: &str, src: &Path, target: &Path) -> Vec<u8> {
    let _ = fs::remove_dir_all(target);
    let t = target.to_str().unwrap();
    vault(&["restore", snapshot, "--target", t, "--quiet"]).ok();
    fs::read(Env::restored(target, src).join("db/app.sql")).unwrap()
}

/// Pack file names of the repository.
fn pack_names(env: &Env) -> BTreeSet<std::path::PathBuf> {
    pack_files(&env.repo).into_iter().collect()
}

/// The whole series in one repository: what deltas save, and every way of reading them back.
fn series_round_trips(env: &Env, vault: Vault<'_>) {
    let dumps = days();
    let src = env.path("src");
    let taken = snapshot_days(vault, &src, &dumps);
    // Day 0 stores the dump whole; every later day's chunks nearly all changed (rows moved
    // everywhere), and are stored as deltas: a fraction of the first day's bytes.
    let (first, later) = (taken[0].1, &taken[1..]);
    for (id, added) in later {
        assert!(
            *added * 3 < first,
            "snapshot {id} added {added} bytes, the first {first}: no deltas?"
        );
    }
    // Every snapshot restores exactly, through restore and dump.
    let target = env.path("restored");
    for ((id, _), dump) in taken.iter().zip(&dumps) {
        assert!(
            restored_dump(vault, id, &src, &target) == *dump,
            "{id} differs"
        );
        let dumped = vault(&["dump", id, &format!("{}/db/app.sql", src.display())]);
        dumped.ok();
        assert!(dumped.stdout == *dump, "dump of {id} differs");
    }
    // Export: GNU tar extracts the last day's dump exactly.
    let tar = env.path("last.tar");
    let out = vault(&[
        "export",
        "latest",
        "--format",
        "tar",
        "--output",
        tar.to_str().unwrap(),
    ]);
    out.ok();
    let x = env.path("x");
    fs::create_dir(&x).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(status.success());
    let exported = fs::read(x.join(src.strip_prefix("/").unwrap()).join("db/app.sql")).unwrap();
    assert!(exported == dumps[DAYS as usize]);
    // A delta restore brings day 1's restored tree to the last day.
    let dev = env.path("dev");
    restored_dump(vault, &taken[1].0, &src, &dev);
    vault(&[
        "restore",
        "latest",
        "--target",
        dev.to_str().unwrap(),
        "--delta",
        "--quiet",
    ])
    .ok();
    let refreshed = fs::read(Env::restored(&dev, &src).join("db/app.sql")).unwrap();
    assert!(refreshed == dumps[DAYS as usize]);
    vault(&["verify", "--read-data"]).ok();

    // Forgetting day 0, which stored the bases, and pruning keeps every base a delta needs.
    vault(&["forget", &taken[0].0]).ok();
    vault(&["prune", "--max-unused", "0%"]).ok();
    vault(&["verify", "--read-data"]).ok();
    for ((id, _), dump) in taken.iter().zip(&dumps).skip(1) {
        assert!(
            restored_dump(vault, id, &src, &target) == *dump,
            "{id} after prune"
        );
    }
    // So does a cache rebuilt from the pack trailers (bases are in the trailers).
    vault(&["index", "rebuild"]).ok();
    assert!(restored_dump(vault, "latest", &src, &target) == dumps[DAYS as usize]);
}

#[test]
fn a_dump_updated_at_random_places_is_stored_as_deltas_and_restores_everywhere() {
    let env = Env::init();
    series_round_trips(&env, &|args| env.run(args));
}

#[test]
fn encrypted_deltas_round_trip_and_copy_into_a_repository_with_other_keys() {
    let enc = Enc::init();
    series_round_trips(&enc, &|args| enc.run(args));
    // Another repository, other keys: its blob ids differ, so every delta is decoded and
    // stored again under the destination's keys (as a delta of its own chunks or whole).
    let dest = Enc::init();
    let password = enc.path("dest-password");
    write(&password, dest.password.as_bytes());
    run_cmd(enc.cmd([
        "copy",
        "--to",
        dest.repo.to_str().unwrap(),
        "--to-password-file",
        password.to_str().unwrap(),
    ]))
    .ok();
    dest.run(["verify", "--read-data"]).ok();
    let src = enc.path("src");
    let target = dest.path("from-copy");
    let from_copy = restored_dump(&|args| dest.run(args), "latest", &src, &target);
    assert!(from_copy == days()[DAYS as usize]);
}

#[test]
fn a_damaged_base_is_reported_against_every_snapshot_whose_deltas_need_it() {
    let env = Env::init();
    let dumps = days();
    let src = env.path("src");
    write(&src.join("db/app.sql"), &dumps[0]);
    env.snapshot([&src]);
    // Day 0's packs hold the whole chunks the later days are deltas of.
    let day0: BTreeSet<_> = pack_names(&env);
    let later = snapshot_days(&|args| env.run(args), &src, &dumps[1..]);
    let data_pack = day0
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(data_pack).unwrap();
    for i in (64..bytes.len() / 2).step_by(4096) {
        bytes[i] ^= 0x5a;
    }
    fs::write(data_pack, &bytes).unwrap();
    let out = env.run(["verify", "--read-data", "--json"]);
    out.code(3);
    let v: Value = out.json();
    let dump_path = format!("{}/db/app.sql", src.display());
    for (id, _) in &later {
        let named = v["report"]["problems"].as_array().unwrap().iter().any(|p| {
            p["affected"][id]["paths"]
                .as_array()
                .is_some_and(|paths| paths.iter().any(|x| x.as_str() == Some(&dump_path)))
        });
        assert!(named, "snapshot {id} not named with {dump_path}: {v:#}");
        assert!(
            v["damaged_snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s.as_str() == Some(id)),
            "{id} not damaged: {v:#}"
        );
    }
}
