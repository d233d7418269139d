//! The index: batched inserts (`Index::add_packs`) and lookups (`IndexReader::lookup`) at 10^5
//! entries, beside raw redb on the same keys and values (same cache size) and a `HashMap`.
//! `VAULT_BENCH_LARGE=1` adds lookups and one-pack inserts on an index of 10^7 entries (its
//! build alone takes minutes).
//!
//! Throughput is in elements (index entries) per second, not bytes.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use redb::{ReadableDatabase, TableDefinition};
use vault_benches::dumpgen::Rng;
use vault_engine::format::pack::{BlobEntry, BlobKind, Encoding};
use vault_engine::id::{BlobId, PackId};
use vault_engine::index::Index;

/// About what a 16 MiB pack of 16 KiB chunks holds.
const BLOBS_PER_PACK: usize = 1000;
/// The raw table: the same key and value widths as the engine's `blobs` table.
const RAW: TableDefinition<[u8; 32], [u8; 22]> = TableDefinition::new("blobs");
/// Lookups per iteration.
const LOOKUPS: usize = 10_000;

type Pack = (PackId, u64, Vec<BlobEntry>);

fn id(rng: &mut Rng) -> [u8; 32] {
    let mut out = [0u8; 32];
    for word in out.chunks_mut(8) {
        word.copy_from_slice(&rng.next().to_le_bytes());
    }
    out
}

fn packs(rng: &mut Rng, count: usize) -> Vec<Pack> {
    (0..count)
        .map(|_| {
            let entries = (0..BLOBS_PER_PACK)
                .map(|i| BlobEntry {
                    id: BlobId(id(rng)),
                    kind: BlobKind::Chunk,
                    encoding: Encoding::Zstd,
                    offset: 12 + i as u64 * 5000,
                    stored_len: 5000,
                    raw_len: 16384,
                })
                .collect();
            (PackId(id(rng)), 5_000_000, entries)
        })
        .collect()
}

fn value(e: &BlobEntry) -> [u8; 22] {
    let mut v = [0u8; 22];
    v[4..12].copy_from_slice(&e.offset.to_le_bytes());
    v[12..16].copy_from_slice(&e.stored_len.to_le_bytes());
    v
}

fn raw_db(path: &Path) -> redb::Database {
    redb::Database::builder()
        .set_cache_size(32 << 20)
        .create(path)
        .unwrap()
}

fn raw_insert(db: &redb::Database, packs: &[Pack]) {
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(RAW).unwrap();
        for (_, _, entries) in packs {
            for e in entries {
                table.insert(e.id.0, value(e)).unwrap();
            }
        }
    }
    txn.commit().unwrap();
}

fn inserts(c: &mut Criterion) {
    let count = 100;
    let elements = (count * BLOBS_PER_PACK) as u64;
    let mut group = c.benchmark_group("index/insert 1e5");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(elements));
    let mut rng = Rng::new(1);
    // Each iteration fills a fresh database; setup is not timed.
    let mut timed = |f: &dyn Fn(&Path, &[Pack]) -> Duration, iters: u64| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let dir = tempfile::tempdir().unwrap();
            let batch = packs(&mut rng, count);
            total += f(dir.path(), &batch);
        }
        total
    };
    group.bench_function("engine add_packs 1 pack (1000 blobs) per txn", |b| {
        b.iter_custom(|iters| {
            timed(
                &|dir, batch| {
                    let index = Index::open(&dir.join("index.redb")).unwrap();
                    let start = Instant::now();
                    for pack in batch {
                        index.add_packs(std::slice::from_ref(pack)).unwrap();
                    }
                    start.elapsed()
                },
                iters,
            )
        })
    });
    group.bench_function("engine add_packs 100 packs in 1 txn", |b| {
        b.iter_custom(|iters| {
            timed(
                &|dir, batch| {
                    let index = Index::open(&dir.join("index.redb")).unwrap();
                    let start = Instant::now();
                    index.add_packs(batch).unwrap();
                    start.elapsed()
                },
                iters,
            )
        })
    });
    group.bench_function("limit redb insert 1 txn", |b| {
        b.iter_custom(|iters| {
            timed(
                &|dir, batch| {
                    let db = raw_db(&dir.join("raw.redb"));
                    let start = Instant::now();
                    raw_insert(&db, batch);
                    start.elapsed()
                },
                iters,
            )
        })
    });
    group.bench_function("limit HashMap insert", |b| {
        b.iter_custom(|iters| {
            timed(
                &|_, batch| {
                    let start = Instant::now();
                    let mut map = HashMap::with_capacity(elements as usize);
                    for (_, _, entries) in batch {
                        for e in entries {
                            map.insert(e.id.0, value(e));
                        }
                    }
                    black_box(map.len());
                    start.elapsed()
                },
                iters,
            )
        })
    });
    group.finish();
}

/// An engine index and a raw redb database holding `count` packs' blobs, and ids to look up:
/// present ones (a sample) and absent ones.
struct Filled {
    _dir: tempfile::TempDir,
    index: Index,
    raw: Option<redb::Database>,
    map: Option<HashMap<[u8; 32], [u8; 22]>>,
    present: Vec<BlobId>,
    absent: Vec<BlobId>,
}

fn filled(count: usize, with_peers: bool) -> Filled {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.redb")).unwrap();
    let raw = with_peers.then(|| raw_db(&dir.path().join("raw.redb")));
    let mut map = with_peers.then(HashMap::new);
    let mut rng = Rng::new(2);
    let mut present = Vec::new();
    let start = Instant::now();
    let mut done = 0;
    while done < count {
        let batch = packs(&mut rng, (count - done).min(100));
        done += batch.len();
        index.add_packs(&batch).unwrap();
        if let Some(raw) = &raw {
            raw_insert(raw, &batch);
        }
        for (_, _, entries) in &batch {
            if let Some(map) = &mut map {
                map.extend(entries.iter().map(|e| (e.id.0, value(e))));
            }
            let step = (count * BLOBS_PER_PACK / LOOKUPS).max(1);
            present.extend(entries.iter().step_by(step).map(|e| e.id));
        }
    }
    println!(
        "index with {} entries built in {:.1} s",
        count * BLOBS_PER_PACK,
        start.elapsed().as_secs_f64()
    );
    // Random order, so that lookups do not walk the b-tree in insertion order.
    let mut order = Rng::new(3);
    for i in (1..present.len()).rev() {
        present.swap(i, order.below(i as u64 + 1) as usize);
    }
    present.truncate(LOOKUPS);
    let absent = (0..LOOKUPS).map(|_| BlobId(id(&mut order))).collect();
    Filled {
        _dir: dir,
        index,
        raw,
        map,
        present,
        absent,
    }
}

fn lookups_on(c: &mut Criterion, name: &str, f: &Filled) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(LOOKUPS as u64));
    group.bench_function("engine reader().lookup present, one reader", |b| {
        let reader = f.index.reader().unwrap();
        b.iter(|| {
            f.present
                .iter()
                .filter(|id| reader.lookup(id).unwrap().is_some())
                .count()
        })
    });
    group.bench_function("engine reader().lookup absent, one reader", |b| {
        let reader = f.index.reader().unwrap();
        b.iter(|| {
            f.absent
                .iter()
                .filter(|id| reader.lookup(id).unwrap().is_some())
                .count()
        })
    });
    group.bench_function("engine reader() + lookup per id (as restore does)", |b| {
        b.iter(|| {
            f.present
                .iter()
                .filter(|id| f.index.reader().unwrap().lookup(id).unwrap().is_some())
                .count()
        })
    });
    if let Some(raw) = &f.raw {
        group.bench_function("limit redb get present", |b| {
            let txn = raw.begin_read().unwrap();
            let table = txn.open_table(RAW).unwrap();
            b.iter(|| {
                f.present
                    .iter()
                    .filter(|id| table.get(id.0).unwrap().is_some())
                    .count()
            })
        });
    }
    if let Some(map) = &f.map {
        group.bench_function("limit HashMap get present", |b| {
            b.iter(|| {
                f.present
                    .iter()
                    .filter(|id| map.contains_key(&id.0))
                    .count()
            })
        });
    }
    group.finish();
}

fn lookups(c: &mut Criterion) {
    let f = filled(100, true);
    lookups_on(c, "index/lookup in 1e5", &f);
}

fn large(c: &mut Criterion) {
    if !common::large() {
        return;
    }
    let f = filled(10_000, false);
    lookups_on(c, "index/lookup in 1e7", &f);
    let mut group = c.benchmark_group("index/insert into 1e7");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(BLOBS_PER_PACK as u64));
    let mut rng = Rng::new(4);
    group.bench_function("engine add_packs 1 pack (1000 blobs) per txn", |b| {
        b.iter_custom(|iters| {
            let batch = packs(&mut rng, iters as usize);
            let start = Instant::now();
            for pack in &batch {
                f.index.add_packs(std::slice::from_ref(pack)).unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group! { name = benches; config = common::config(); targets = inserts, lookups, large }
criterion_main!(benches);
