//! Deterministic crash points: a snapshot, a prune, a copy and a label edit, each interrupted at every step
//! of its storage I/O in turn.
//!
//! The repository lives in [`MemoryBackend`], which models what a file system keeps after a
//! power cut (only what was `fsync`ed: file bytes by a file `fsync`, names by a directory
//! `fsync`) and injects a fault at the N-th step (create, write, `fsync`, `link`, `unlink`,
//! directory `fsync`; see `engine/src/storage/memory.rs`). For every N from 1 to the number of
//! steps the operation takes undisturbed:
//!
//! - **power cut** before step N, then a reboot that keeps only the durable state (the local
//!   index cache is kept, as redb leaves it, for odd N, and lost for even N: it is only a
//!   cache, I9);
//! - **kill** of the process before step N: everything done before survives, durable or not
//!   (what SIGKILL leaves; the cache is kept);
//! - **I/O error** at step N, the process going on (and the repository reopened as it is).
//!
//! After each, format-spec's invariants hold: `verify --read-data` is clean; every snapshot
//! committed before restores byte-exact; the interrupted operation committed fully or left no
//! reachable trace (a snapshot exists whole or not at all, a prune never loses a kept snapshot,
//! a copy leaves whole snapshots in order); and a later copy, snapshot and prune of the
//! recovered repository succeed and verify clean.
//!
//! The engine is driven only through its facade (Repository and the operations' options).
//! Which step is the N-th can vary between runs where the snapshot's pack committer runs beside
//! its packer; every N is a state the code can reach, and the count is the same.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vault_engine::prune::PruneOptions;
use vault_engine::storage::{Backend, Fault, MemoryBackend, ObjectKind};
use vault_engine::verify::{ReadData, VerifyOptions};
use vault_engine::{
    ChunkerConfig, ChunkerParams, Compression, InitOptions, NoProgress, Repository, RestoreOptions,
    SnapshotOptions,
};

/// Seconds of the first fixture version's snapshot; version `v` is taken `v` days later.
const EPOCH: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

/// Deterministic bytes (xorshift64*).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// The files of fixture version `v`. Version 2 drops `b.bin` of version 1 and keeps `a.bin`,
/// so that once version 1 is forgotten its chunk pack is half garbage (repacked) and its tree
/// pack all garbage (deleted).
fn version(v: u32) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut add = |name: &str, data: Vec<u8>| files.insert(name.to_string(), data);
    add("a.bin", bytes(1, 40 << 10));
    add("small.txt", format!("version {v}\n").into_bytes());
    match v {
        1 => {
            add("b.bin", bytes(2, 48 << 10));
        }
        2 => {
            add("c.bin", bytes(3, 36 << 10));
        }
        _ => {
            let mut c = bytes(3, 36 << 10);
            c[20_000..20_100].copy_from_slice(&bytes(u64::from(v) << 8, 100));
            add("c.bin", c);
            add("d.bin", bytes(u64::from(v) << 16, 20 << 10));
        }
    }
    files
}

fn version_of(manifest: &vault_engine::Manifest) -> u32 {
    let time: jiff::Timestamp = manifest.time.parse().expect("manifest time");
    u32::try_from((time.as_second() - EPOCH) / DAY).expect("a fixture time")
}

fn init_options() -> InitOptions {
    let small = ChunkerParams {
        min: 2 << 10,
        avg: 8 << 10,
        max: 16 << 10,
    };
    InitOptions {
        chunker: ChunkerConfig {
            stream: small,
            file: small,
        },
        compression: Compression::Zstd { level: 1 },
        ..InitOptions::default()
    }
}

/// A scratch directory: the source tree, caches and restore targets.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    /// In memory where the system has a tmpfs: the index cache's commits `fsync`, and a few
    /// hundred of them on a disk take seconds.
    fn new() -> Work {
        let shm = Path::new("/dev/shm");
        let dir = match shm.is_dir() {
            true => tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir()),
            false => tempfile::tempdir(),
        };
        Work {
            dir: dir.expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn source(&self) -> PathBuf {
        self.path("src")
    }

    /// Snapshots fixture version `v` (written into the source directory first).
    fn snapshot(&self, repo: &Repository, v: u32) -> vault_engine::Result<()> {
        let src = self.source();
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(&src).unwrap();
        for (name, data) in version(v) {
            std::fs::write(src.join(name), data).unwrap();
        }
        let options = SnapshotOptions {
            paths: vec![src],
            host: Some("crash-points".into()),
            time: Some(jiff::Timestamp::from_second(EPOCH + i64::from(v) * DAY).unwrap()),
            // Every version rewrites the files within the same second: never trust mtimes.
            force_read: true,
            ..SnapshotOptions::default()
        };
        vault_engine::snapshot::run(repo, options, &NoProgress).map(|_| ())
    }

    /// Verify with --read-data is clean, and every snapshot restores byte-exact; returns the
    /// versions of the snapshots (not forgotten) and of the forgotten ones.
    fn check(&self, repo: &Repository, context: &str) -> (Vec<u32>, Vec<u32>) {
        let options = VerifyOptions {
            read_data: ReadData::All,
            snapshot: None,
        };
        let report = vault_engine::verify::run(repo, &options, &NoProgress)
            .unwrap_or_else(|e| panic!("{context}: verify failed: {e}"));
        assert!(
            report.is_clean(),
            "{context}: verify --read-data found problems: {:#?}",
            report.problems
        );
        let (all, unreadable) = repo.all_snapshots().unwrap();
        assert!(
            unreadable.is_empty(),
            "{context}: unreadable manifests {unreadable:?}"
        );
        let (mut kept, mut forgotten) = (Vec::new(), Vec::new());
        for snapshot in all {
            let v = version_of(&snapshot.manifest);
            if snapshot.forgotten {
                forgotten.push(v);
                continue;
            }
            kept.push(v);
            let target = self.path("restore");
            let _ = std::fs::remove_dir_all(&target);
            vault_engine::restore::run(
                repo,
                &snapshot,
                &RestoreOptions::new(target.clone()),
                &NoProgress,
            )
            .unwrap_or_else(|e| panic!("{context}: restore of version {v} failed: {e}"));
            let root = target.join(self.source().strip_prefix("/").unwrap());
            let mut restored = BTreeMap::new();
            for entry in std::fs::read_dir(&root).unwrap() {
                let entry = entry.unwrap();
                restored.insert(
                    entry.file_name().into_string().unwrap(),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
            assert!(
                restored == version(v),
                "{context}: version {v} does not restore byte-exact"
            );
        }
        (kept, forgotten)
    }
}

/// A repository at rest: its durable objects and its index cache.
struct Saved {
    backend: MemoryBackend,
    cache: PathBuf,
}

impl Saved {
    /// A fresh copy: a backend with the same durable objects, a copy of the cache at `cache`.
    fn restore(&self, cache: &Path) -> MemoryBackend {
        let _ = std::fs::remove_dir_all(cache);
        copy_dir(&self.cache, cache);
        self.backend.reboot()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn open(backend: &Arc<MemoryBackend>, cache: &Path) -> Repository {
    Repository::open(backend.clone() as Arc<dyn Backend>, cache).expect("open")
}

/// What survives the fault: after a power cut, the durable state of a rebooted machine; after a
/// kill, everything the process did; after an I/O error, the same repository. In each case the
/// process has ended: its writer registrations and locks are made recognisable as dead (their
/// boot is not this one, as after a reboot), since this test's process lives on.
fn recover(backend: &Arc<MemoryBackend>, fault: Fault) -> Arc<MemoryBackend> {
    let recovered = match fault {
        Fault::PowerCut(_) => Arc::new(backend.reboot()),
        Fault::Kill(_) => Arc::new(backend.restart()),
        Fault::Error(_) => {
            backend.inject(None);
            backend.clone()
        }
    };
    for kind in [ObjectKind::Writer, ObjectKind::Lock] {
        for object in recovered.list(kind).unwrap() {
            let bytes = recovered.read(kind, &object.name).unwrap();
            let mut owner: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            owner["boot_id"] = "a boot before the crash".into();
            recovered.delete(kind, &object.name).unwrap();
            recovered
                .write(kind, &object.name, &serde_json::to_vec(&owner).unwrap())
                .unwrap();
        }
    }
    recovered
}

fn no_wait() -> PruneOptions {
    PruneOptions {
        wait: false,
        ..PruneOptions::default()
    }
}

/// An operation under test: the repository, its backend, the scratch directory.
type Operation<'a> =
    dyn Fn(&Repository, &Arc<MemoryBackend>, &Work) -> vault_engine::Result<()> + 'a;

/// What happened to one run of an operation.
struct Interrupted {
    fault: Fault,
    /// The operation returned success (possible after an I/O error it tolerates, such as a
    /// failed removal of its writer registration).
    succeeded: bool,
    /// What struck, for messages.
    context: String,
}

/// The checks after a fault: the recovered repository, its backend, the scratch directory.
type After<'a> = dyn Fn(&Repository, &Arc<MemoryBackend>, &Work, &Interrupted) + 'a;

/// How many steps `operation` takes on an undisturbed copy of `saved`.
fn count_steps(saved: &Saved, work: &Work, operation: &Operation<'_>) -> u64 {
    let backend = Arc::new(saved.restore(&work.path("cache-count")));
    let repo = open(&backend, &work.path("cache-count"));
    backend.inject(None);
    operation(&repo, &backend, work).expect("the undisturbed operation");
    backend.steps()
}

/// Every fault at every step of `operation` on `saved`; `after` checks the recovered
/// repository (given whether the operation returned success) and finishes the job.
fn every_crash_point(
    name: &str,
    saved: &Saved,
    work: &Work,
    operation: &Operation<'_>,
    after: &After<'_>,
) -> u64 {
    let steps = count_steps(saved, work, operation);
    assert!(steps > 0);
    for n in 1..=steps {
        for fault in [Fault::PowerCut(n), Fault::Kill(n), Fault::Error(n)] {
            let cache = work.path("cache");
            let backend = Arc::new(saved.restore(&cache));
            let repo = open(&backend, &cache);
            backend.inject(Some(fault));
            let outcome = catch_unwind(AssertUnwindSafe(|| operation(&repo, &backend, work)));
            drop(repo);
            let struck = backend.struck();
            let context = format!("{name}: {}", struck.clone().unwrap_or(format!("{fault:?}")));
            let succeeded = match outcome {
                Ok(result) => result.is_ok(),
                // After a power cut or a kill nothing the process does counts any more.
                Err(_) if !matches!(fault, Fault::Error(_)) => false,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            assert!(
                struck.is_some() || succeeded,
                "{context}: no fault struck, yet the operation failed"
            );
            let recovered = recover(&backend, fault);
            if matches!(fault, Fault::PowerCut(n) if n % 2 == 0) {
                // The cache lost with the machine: rebuilt from the repository (I9).
                std::fs::remove_dir_all(&cache).unwrap();
            }
            let repo = open(&recovered, &cache);
            let interrupted = Interrupted {
                fault,
                succeeded,
                context,
            };
            after(&repo, &recovered, work, &interrupted);
        }
    }
    steps
}

/// A later snapshot and prune of a recovered repository succeed and leave it clean.
fn later_snapshot_and_prune(repo: &Repository, work: &Work, context: &str) -> (Vec<u32>, Vec<u32>) {
    work.snapshot(repo, 9)
        .unwrap_or_else(|e| panic!("{context}: a later snapshot failed: {e}"));
    let report = vault_engine::prune::run(repo, &no_wait(), &NoProgress)
        .unwrap_or_else(|e| panic!("{context}: a later prune failed: {e}"));
    assert!(!report.pending, "{context}: the later prune left a plan");
    work.check(repo, &format!("{context}, then a snapshot and a prune"))
}

/// A repository with snapshots of the given fixture versions, saved with its cache.
fn saved_repository(work: &Work, name: &str, versions: &[u32]) -> Saved {
    let backend = Arc::new(MemoryBackend::new());
    let cache = work.path(name);
    let repo = Repository::init(backend.clone() as Arc<dyn Backend>, &cache, &init_options())
        .expect("init");
    for &v in versions {
        work.snapshot(&repo, v).expect("snapshot");
    }
    drop(repo);
    Saved {
        backend: backend.reboot(),
        cache,
    }
}

#[test]
fn a_snapshot_interrupted_at_any_step_exists_whole_or_not_at_all() {
    let work = Work::new();
    let saved = saved_repository(&work, "saved", &[1, 2]);
    // Runs that reported an I/O error although their snapshot exists, whole: the error struck
    // after the manifest's link (its directory fsync), and the manifest stays visible.
    let failed_yet_whole = std::cell::Cell::new(0);
    let steps = every_crash_point(
        "snapshot",
        &saved,
        &work,
        &|repo, _, work| work.snapshot(repo, 3),
        &|repo, _, work, run| {
            let context = &run.context;
            let (kept, _) = work.check(repo, context);
            if run.succeeded {
                assert_eq!(
                    kept,
                    [1, 2, 3],
                    "{context}: a snapshot that succeeded is lost"
                );
                // Version 3 changes 100 bytes of c.bin: its changed chunk is stored as a delta
                // of version 2's, so the crash points cover writing a delta (format version 5).
                let mut deltas = 0;
                repo.index()
                    .for_each_blob(|_, loc| deltas += u32::from(loc.encoding.base().is_some()))
                    .unwrap();
                assert!(deltas >= 1, "{context}: no delta chunk written");
            } else {
                assert!(
                    kept == [1, 2] || kept == [1, 2, 3],
                    "{context}: snapshots {kept:?}"
                );
                if kept == [1, 2, 3] && matches!(run.fault, Fault::Error(_)) {
                    failed_yet_whole.set(failed_yet_whole.get() + 1);
                }
            }
            let (kept, _) = later_snapshot_and_prune(repo, work, context);
            assert_eq!(kept.last(), Some(&9), "{context}");
        },
    );
    println!(
        "crash points: snapshot {steps} (I/O errors reported with the snapshot whole: {})",
        failed_yet_whole.get()
    );
}

#[test]
fn a_prune_interrupted_at_any_step_loses_no_kept_snapshot_and_the_next_finishes_it() {
    let work = Work::new();
    let saved = {
        let saved = saved_repository(&work, "saved", &[1, 2, 3]);
        let backend = Arc::new(saved.backend);
        let repo = open(&backend, &saved.cache);
        let (all, _) = repo.snapshots().unwrap();
        let first = all.iter().find(|s| version_of(&s.manifest) == 1).unwrap();
        repo.forget_snapshot(first.id).unwrap();
        // Something to delete and something to repack.
        let plan = vault_engine::prune::run(
            &repo,
            &PruneOptions {
                dry_run: true,
                ..no_wait()
            },
            &NoProgress,
        )
        .unwrap();
        assert!(
            plan.packs_deleted > 0 && plan.packs_repacked > 0,
            "{plan:?}"
        );
        drop(repo);
        Saved {
            backend: backend.reboot(),
            cache: saved.cache,
        }
    };
    let steps = every_crash_point(
        "prune",
        &saved,
        &work,
        &|repo, _, _| vault_engine::prune::run(repo, &no_wait(), &NoProgress).map(|_| ()),
        &|repo, _, work, run| {
            let context = &run.context;
            let (kept, forgotten) = work.check(repo, context);
            assert_eq!(kept, [2, 3], "{context}: kept snapshots");
            if run.succeeded {
                assert!(
                    forgotten.is_empty(),
                    "{context}: prune succeeded, yet {forgotten:?}"
                );
            }
            let (kept, forgotten) = later_snapshot_and_prune(repo, work, context);
            assert_eq!(kept, [2, 3, 9], "{context}");
            assert!(forgotten.is_empty(), "{context}: {forgotten:?}");
        },
    );
    println!("crash points: prune {steps}");
}

#[test]
fn a_copy_interrupted_at_any_step_leaves_whole_snapshots_and_a_rerun_finishes_it() {
    let work = Work::new();
    let source = saved_repository(&work, "source", &[1, 2, 3]);
    let dest = saved_repository(&work, "dest", &[]);
    let source_cache = work.path("source-cache");
    // The source and the destination on one machine: one step counter, one power supply. The
    // faults strike through `dest`'s backend (the source only gains a reader registration).
    let run_copy = |dest_repo: &Repository,
                    dest_backend: &Arc<MemoryBackend>,
                    _: &Work|
     -> vault_engine::Result<()> {
        let backend = Arc::new(source.restore(&source_cache).with_machine_of(dest_backend));
        let source_repo = open(&backend, &source_cache);
        let (snapshots, _) = source_repo.snapshots()?;
        vault_engine::copy::run(&source_repo, dest_repo, &snapshots, &NoProgress).map(|_| ())
    };
    let steps = every_crash_point(
        "copy",
        &dest,
        &work,
        &run_copy,
        &|repo, backend, work, run| {
            let context = &run.context;
            let (kept, _) = work.check(repo, context);
            if run.succeeded {
                assert_eq!(kept, [1, 2, 3], "{context}: a copy that succeeded is lost");
            } else {
                assert!(
                    [1, 2, 3].starts_with(&kept),
                    "{context}: snapshots {kept:?}"
                );
            }
            run_copy(repo, backend, work)
                .unwrap_or_else(|e| panic!("{context}: the rerun failed: {e}"));
            let (kept, _) = later_snapshot_and_prune(repo, work, context);
            assert_eq!(kept, [1, 2, 3, 9], "{context}");
        },
    );
    println!("crash points: copy {steps}");
}

#[test]
fn a_label_edit_interrupted_at_any_step_shows_one_protected_version_of_the_snapshot() {
    let work = Work::new();
    let saved = {
        let saved = saved_repository(&work, "saved", &[1, 2]);
        let backend = Arc::new(saved.backend);
        let repo = open(&backend, &saved.cache);
        let (all, _) = repo.snapshots().unwrap();
        let first = all.iter().find(|s| version_of(&s.manifest) == 1).unwrap();
        repo.set_protected(first.id, true).unwrap();
        drop(repo);
        Saved {
            backend: backend.reboot(),
            cache: saved.cache,
        }
    };
    let first = |repo: &Repository| {
        let (all, _) = repo.snapshots().unwrap();
        all.into_iter()
            .find(|s| version_of(&s.manifest) == 1)
            .expect("version 1 is there")
    };
    let steps = every_crash_point(
        "label edit",
        &saved,
        &work,
        &|repo, _, _| {
            let options = vault_engine::edit::EditOptions {
                add_labels: vec![("app".into(), "edited".into())],
                ..Default::default()
            };
            vault_engine::edit::run(repo, &first(repo), &options).map(|_| ())
        },
        &|repo, _, work, run| {
            let context = &run.context;
            // Exactly one version of snapshot 1 is shown (E2's `replaces` hides the old one
            // before E3 forgets it), and it is protected (E1 before E2).
            let (kept, _) = work.check(repo, context);
            assert_eq!(kept, [1, 2], "{context}: snapshots shown");
            let shown = first(repo);
            assert!(
                shown.protected,
                "{context}: the edited snapshot lost its protection"
            );
            let edited = shown.manifest.labels.get("app").map(String::as_str) == Some("edited");
            if run.succeeded {
                assert!(edited, "{context}: an edit that succeeded is lost");
            }
            // A prune deletes the replaced version (protected or not), and nothing else.
            let (kept, forgotten) = later_snapshot_and_prune(repo, work, context);
            assert_eq!(kept, [1, 2, 9], "{context}");
            assert!(forgotten.is_empty(), "{context}: {forgotten:?}");
            let (all, _) = repo.all_snapshots().unwrap();
            assert_eq!(all.len(), 3, "{context}: manifests left after the prune");
            assert!(
                first(repo).protected,
                "{context}: protection lost by the prune"
            );
        },
    );
    println!("crash points: label edit {steps}");
}
