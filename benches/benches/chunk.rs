//! Stage 3, chunk: FastCDC cut points through the engine's chunker, beside a plain pass over the
//! same buffer (memchr, and a byte sum): the memory-bandwidth limit of any chunker.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vault_engine::snapshot::ContentChunker;

fn chunk(c: &mut Criterion) {
    let stream = ContentChunker::new(
        common::stream_params(),
        &vault_engine::keys::Encryption::none(),
    );
    let file = ContentChunker::new(
        common::file_params(),
        &vault_engine::keys::Encryption::none(),
    );
    for (name, data) in common::inputs() {
        let mut group = c.benchmark_group(format!("chunk/{name}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function("engine ContentChunker::cut stream 4/16/64KiB", |b| {
            b.iter(|| stream.cut(black_box(&data), true).len())
        });
        group.bench_function("engine ContentChunker::cut file 256KiB/1/4MiB", |b| {
            b.iter(|| file.cut(black_box(&data), true).len())
        });
        group.bench_function("limit memchr count", |b| {
            b.iter(|| memchr::memchr_iter(b'\n', black_box(&data)).count())
        });
        group.bench_function("limit byte sum", |b| {
            b.iter(|| {
                black_box(&data)
                    .iter()
                    .map(|&x| x as u64)
                    .fold(0u64, u64::wrapping_add)
            })
        });
        group.finish();
    }
}

criterion_group! { name = benches; config = common::config(); targets = chunk }
criterion_main!(benches);
