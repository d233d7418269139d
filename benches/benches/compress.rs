//! Stage 6, compress: zstd level 1 per chunk through the engine's `compress_blob` (reused
//! context, early give-up on incompressible chunks) beside `zstd::bulk::compress` on the same
//! chunks, and on the whole buffer at once (what chunking into 16 KiB pieces costs zstd), one
//! thread each.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vault_engine::snapshot::compress_blob;
use vault_engine::Compression;

fn compress(c: &mut Criterion) {
    let level1 = Compression::Zstd { level: 1 };
    for (name, data) in common::inputs() {
        let lengths = common::cut(&data);
        let chunks = common::split(&data, &lengths);
        let stored: usize = chunks
            .iter()
            .map(|c| compress_blob(c, level1).1.len())
            .sum();
        println!(
            "compress/{name}: {} chunks, zstd 1 stores {:.1}% of {} MiB",
            chunks.len(),
            100.0 * stored as f64 / data.len() as f64,
            data.len() >> 20
        );
        let mut group = c.benchmark_group(format!("compress/{name}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function("engine compress_blob zstd:1 per chunk", |b| {
            b.iter(|| {
                chunks
                    .iter()
                    .map(|c| compress_blob(black_box(c), level1).1.len())
                    .sum::<usize>()
            })
        });
        group.bench_function("limit zstd::bulk::compress 1 per chunk", |b| {
            b.iter(|| {
                chunks
                    .iter()
                    .map(|c| zstd::bulk::compress(black_box(c), 1).unwrap().len())
                    .sum::<usize>()
            })
        });
        group.bench_function("limit zstd::bulk::compress 1 whole buffer", |b| {
            b.iter(|| zstd::bulk::compress(black_box(&data), 1).unwrap().len())
        });
        group.finish();
    }
}

criterion_group! { name = benches; config = common::config(); targets = compress }
criterion_main!(benches);
