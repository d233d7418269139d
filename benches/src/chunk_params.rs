//! Measures chunker parameters and zstd levels on a database-dump rotation: day 0, then day 1
//! with 2% of rows updated in place in runs of 50-1000 rows, 0.3% deleted in runs, 1% appended. Prints a Markdown table:
//! new bytes on day 1 (raw and after compression), index entries, and throughput.
//!
//! Usage: `cargo run --release -p vault-benches --bin chunk-params -- [DUMP_MiB]` (default 256).

use vault_benches::dumpgen;

use std::collections::HashSet;
use std::time::Instant;

use fastcdc::v2020::FastCDC;
use rayon::prelude::*;

fn chunks(data: &[u8], avg: usize) -> Vec<(usize, usize)> {
    FastCDC::new(data, (avg / 4).max(64), avg, avg * 4)
        .map(|c| (c.offset, c.length))
        .collect()
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("size in MiB"))
        .unwrap_or(256);
    let mut db = dumpgen::Database::new(mib << 20);
    let day0 = db.dump_bytes();
    db.mutate(1, 0.02, 0.003, 0.01);
    let day1 = db.dump_bytes();
    println!("dump day 0: {:.1} MiB, day 1: {:.1} MiB (2% of rows updated in runs of 50-1000 rows, 0.3% deleted in runs, 1% appended)\n", day0.len() as f64 / 1048576.0, day1.len() as f64 / 1048576.0);

    // Raw limits on this buffer, same run.
    let t = Instant::now();
    let _ = blake3::hash(&day1);
    let blake_rate = day1.len() as f64 / 1048576.0 / t.elapsed().as_secs_f64();
    println!("blake3::hash over day 1, one thread: {blake_rate:.0} MiB/s\n");

    println!("| avg chunk (min/max = avg/4, avg*4) | chunks day 0 | new chunks day 1 | new bytes day 1 (raw) | zstd -1 | zstd 1 | zstd 3 | chunk+hash MiB/s (1 thread) | index entries / GiB of dump |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for avg in [
        4usize << 10,
        8 << 10,
        16 << 10,
        32 << 10,
        64 << 10,
        256 << 10,
        1 << 20,
    ] {
        let c0 = chunks(&day0, avg);
        let known: HashSet<[u8; 32]> = c0
            .iter()
            .map(|&(o, l)| *blake3::hash(&day0[o..o + l]).as_bytes())
            .collect();
        let t = Instant::now();
        let c1: Vec<(usize, usize, [u8; 32])> = chunks(&day1, avg)
            .into_iter()
            .map(|(o, l)| (o, l, *blake3::hash(&day1[o..o + l]).as_bytes()))
            .collect();
        let rate = day1.len() as f64 / 1048576.0 / t.elapsed().as_secs_f64();
        let mut seen = HashSet::new();
        let new: Vec<&[u8]> = c1
            .iter()
            .filter(|(_, _, h)| !known.contains(h) && seen.insert(*h))
            .map(|&(o, l, _)| &day1[o..o + l])
            .collect();
        let raw: usize = new.iter().map(|c| c.len()).sum();
        let z = |level: i32| -> usize {
            new.par_iter()
                .map(|c| {
                    zstd::bulk::compress(c, level)
                        .expect("zstd")
                        .len()
                        .min(c.len())
                })
                .sum()
        };
        let per_gib = c0.len() as f64 * 1024.0 / (day0.len() as f64 / 1048576.0);
        println!(
            "| {} KiB | {} | {} ({:.1}%) | {:.1} MiB ({:.1}%) | {:.1} MiB | {:.1} MiB | {:.1} MiB | {rate:.0} | {:.0} |",
            avg >> 10, c0.len(), new.len(), 100.0 * new.len() as f64 / c1.len() as f64,
            raw as f64 / 1048576.0, 100.0 * raw as f64 / day1.len() as f64,
            z(-1) as f64 / 1048576.0, z(1) as f64 / 1048576.0, z(3) as f64 / 1048576.0, per_gib
        );
    }

    println!(
        "\n| zstd level | ratio on 16 KiB chunks of day 0 | MiB/s (1 thread) | MiB/s (2 threads) |"
    );
    println!("|---|---|---|---|");
    let c0 = chunks(&day0, 16 << 10);
    let pieces: Vec<&[u8]> = c0.iter().map(|&(o, l)| &day0[o..o + l]).collect();
    for level in [-3, -1, 1, 3, 6] {
        let t = Instant::now();
        let size: usize = pieces
            .iter()
            .map(|c| zstd::bulk::compress(c, level).expect("zstd").len())
            .sum();
        let one = day0.len() as f64 / 1048576.0 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _: usize = pieces
            .par_iter()
            .map(|c| zstd::bulk::compress(c, level).expect("zstd").len())
            .sum();
        let two = day0.len() as f64 / 1048576.0 / t.elapsed().as_secs_f64();
        println!(
            "| {level} | {:.2} | {one:.0} | {two:.0} |",
            day0.len() as f64 / size as f64
        );
    }
}
