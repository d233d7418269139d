//! Stage 4, hash: BLAKE3 chunk ids through the engine's id function, one thread and in parallel
//! (as the pipeline runs it), beside one `blake3::hash` call over the whole buffer.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;
use vault_engine::ChunkId;

fn hash(c: &mut Criterion) {
    for (name, data) in common::inputs() {
        let lengths = common::cut(&data);
        let chunks = common::split(&data, &lengths);
        let mut group = c.benchmark_group(format!("hash/{name}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function("engine ChunkId::digest per chunk 1 thread", |b| {
            b.iter(|| {
                chunks
                    .iter()
                    .map(|c| ChunkId::digest(black_box(c)))
                    .collect::<Vec<_>>()
            })
        });
        group.bench_function("engine ChunkId::digest per chunk rayon", |b| {
            b.iter(|| {
                chunks
                    .par_iter()
                    .map(|c| ChunkId::digest(black_box(c)))
                    .collect::<Vec<_>>()
            })
        });
        group.bench_function("limit blake3::hash whole buffer 1 thread", |b| {
            b.iter(|| blake3::hash(black_box(&data)))
        });
        group.finish();
    }
}

criterion_group! { name = benches; config = common::config(); targets = hash }
criterion_main!(benches);
