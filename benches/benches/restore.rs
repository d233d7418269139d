//! Restore writing: one file of N MiB (`VAULT_BENCH_MIB`, default 16) restored from a local
//! repository by `restore::write::write_content` (index lookup, pack read, digest check,
//! decompression, write), and its read half alone (`repo::content::read_content`), beside
//! writing the same bytes with one
//! `std::fs::write` and with one `write_all` per chunk buffer.

mod common;

use std::fs::File;
use std::io::{Cursor, Write};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vault_engine::format::tree::EntryKind;
use vault_engine::repo::{content, lookup_path};
use vault_engine::restore::write;
use vault_engine::snapshot::{self, SnapshotOptions, StreamSource};
use vault_engine::storage::LocalBackend;
use vault_engine::{InitOptions, NoProgress, Repository, SnapshotFilter};

fn restore(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(
        Arc::new(LocalBackend::new(dir.path().join("repo"))),
        &dir.path().join("cache"),
        &InitOptions::default(),
    )
    .unwrap();
    let inputs = common::inputs();
    let streams = inputs
        .iter()
        .map(|(name, data)| {
            StreamSource::from_reader(*name, "stdin", Box::new(Cursor::new(data.clone())))
        })
        .collect();
    let options = SnapshotOptions {
        streams,
        ..Default::default()
    };
    snapshot::run(&repo, options, &NoProgress).unwrap();
    let info = repo
        .find_snapshot("latest", &SnapshotFilter::default())
        .unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    for (name, data) in &inputs {
        let EntryKind::File(file_data) =
            lookup_path(&repo, &info, &format!("/{name}")).unwrap().kind
        else {
            panic!("/{name} is not a file");
        };
        let chunks = common::split(data, &common::cut(data));
        let out = target.join(name);
        let mut group = c.benchmark_group(format!("restore/{name}"));
        group.sampling_mode(criterion::SamplingMode::Flat);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function("engine write_content", |b| {
            b.iter(|| {
                let file = File::create(&out).unwrap();
                write::write_content(
                    &repo,
                    &file,
                    &out,
                    &file_data,
                    &NoProgress,
                    Default::default(),
                )
                .unwrap()
            })
        });
        group.bench_function("engine fetch_content only (no write)", |b| {
            b.iter(|| {
                let mut n = 0;
                content::read_content(&repo, &file_data, |chunk| {
                    n += chunk.len();
                    Ok(())
                })
                .unwrap();
                n
            })
        });
        group.bench_function("limit std::fs::write", |b| {
            b.iter(|| std::fs::write(&out, data).unwrap())
        });
        group.bench_function("limit write_all per chunk buffer", |b| {
            b.iter(|| {
                let mut file = File::create(&out).unwrap();
                for chunk in &chunks {
                    file.write_all(chunk).unwrap();
                }
            })
        });
        group.finish();
    }
}

criterion_group! { name = benches; config = common::config(); targets = restore }
criterion_main!(benches);
