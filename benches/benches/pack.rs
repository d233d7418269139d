//! Stage 7 in memory, pack: `PackBuilder` add + finish (trailer and the pack's BLAKE3 name) over
//! the stored (compressed) blobs of one buffer, beside a plain copy of the same bytes into a Vec,
//! and that copy plus one BLAKE3 over it (what naming a pack costs at least).

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vault_engine::format::pack::{BlobKind, PackBuilder};
use vault_engine::snapshot::compress_blob;
use vault_engine::{ChunkId, Compression};

fn pack(c: &mut Criterion) {
    for (name, data) in common::inputs() {
        let lengths = common::cut(&data);
        let blobs: Vec<_> = common::split(&data, &lengths)
            .into_iter()
            .map(|chunk| {
                let (encoding, bytes) = compress_blob(chunk, Compression::Zstd { level: 1 });
                (
                    ChunkId::digest(chunk).into(),
                    encoding,
                    chunk.len() as u32,
                    bytes,
                )
            })
            .collect();
        let stored: usize = blobs.iter().map(|b| b.3.len()).sum();
        let mut group = c.benchmark_group(format!("pack/{name}"));
        group.throughput(Throughput::Bytes(stored as u64));
        group.bench_function("engine PackBuilder add+finish", |b| {
            b.iter(|| {
                let mut builder = PackBuilder::with_capacity(
                    vault_engine::format::FORMAT_VERSION,
                    stored + (1 << 20),
                );
                for (id, encoding, raw_len, bytes) in &blobs {
                    builder.add(*id, BlobKind::Chunk, *encoding, *raw_len, black_box(bytes));
                }
                builder
                    .finish(&vault_engine::keys::Encryption::none())
                    .1
                    .len()
            })
        });
        group.bench_function("limit Vec copy", |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(stored + (1 << 20));
                for blob in &blobs {
                    out.extend_from_slice(black_box(&blob.3));
                }
                out.len()
            })
        });
        group.bench_function("limit Vec copy + blake3::hash", |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(stored + (1 << 20));
                for blob in &blobs {
                    out.extend_from_slice(black_box(&blob.3));
                }
                blake3::hash(&out)
            })
        });
        group.finish();
    }
}

criterion_group! { name = benches; config = common::config(); targets = pack }
criterion_main!(benches);
