//! Writes a deterministic pseudo-SQL stream of SIZE bytes to stdout, fast enough (> 1 GiB/s)
//! to drive `vault snapshot --stdin` in memory and throughput measurements.
//!
//! Usage: `gen-stream SIZE_MiB [SEED]`. Every 64 KiB block is unique (it embeds its index), so
//! the stream does not deduplicate against itself; its text compresses like a dump (~3-4x).

use std::io::Write;

use vault_benches::dumpgen;

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: gen-stream SIZE_MiB [SEED]");
    let seed: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    // A pool of rows to draw from; each block mixes them with its own index.
    let mut rng = dumpgen::Rng::new(seed);
    let pool: Vec<String> = (0..4096).map(|i| dumpgen::row(i, seed, &mut rng)).collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut block = Vec::with_capacity(70_000);
    let total = mib << 20;
    let mut written = 0u64;
    let mut index = 0u64;
    while written < total {
        block.clear();
        block.extend_from_slice(format!("-- block {index} seed {seed}\n").as_bytes());
        while block.len() < 65_536 {
            let r = rng.next();
            block.extend_from_slice(format!("{}\t", r % 1_000_000_007).as_bytes());
            block.extend_from_slice(pool[(r >> 32) as usize % pool.len()].as_bytes());
        }
        let n = (block.len() as u64).min(total - written) as usize;
        if out.write_all(&block[..n]).is_err() {
            return;
        }
        written += n as u64;
        index += 1;
    }
    let _ = out.flush();
}
