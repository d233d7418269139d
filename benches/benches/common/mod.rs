//! What every stage bench shares: the inputs, the chunker parameters and a short criterion
//! configuration (so `cargo bench -p vault-benches` takes minutes on 2 cores, not hours).
#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;
use vault_benches::data;
use vault_engine::snapshot::ContentChunker;
use vault_engine::{ChunkerParams, InitOptions};

/// Size of each input buffer in MiB: `VAULT_BENCH_MIB`, default 16.
pub fn mib() -> usize {
    std::env::var("VAULT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// Whether the slow 10^7-entry index benches run (`VAULT_BENCH_LARGE=1`).
pub fn large() -> bool {
    std::env::var("VAULT_BENCH_LARGE").is_ok_and(|v| v == "1")
}

/// The two inputs every stage is measured on: a plain-SQL dump and random bytes.
pub fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let bytes = mib() << 20;
    vec![
        ("sql", data::sql(bytes)),
        ("random", data::random(bytes, 7)),
    ]
}

/// The default chunker parameters of a new repository for streams (database dumps).
pub fn stream_params() -> ChunkerParams {
    InitOptions::default().chunker.stream
}

/// The default chunker parameters for regular files.
pub fn file_params() -> ChunkerParams {
    InitOptions::default().chunker.file
}

/// Chunk lengths of `data` with the default stream parameters.
pub fn cut(data: &[u8]) -> Vec<u32> {
    ContentChunker::new(stream_params(), &vault_engine::keys::Encryption::none()).cut(data, true)
}

/// `data` split at `lengths`.
pub fn split<'a>(data: &'a [u8], lengths: &[u32]) -> Vec<&'a [u8]> {
    let mut pos = 0;
    lengths
        .iter()
        .map(|&l| {
            let chunk = &data[pos..pos + l as usize];
            pos += l as usize;
            chunk
        })
        .collect()
}

pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}
