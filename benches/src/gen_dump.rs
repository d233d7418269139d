//! Writes day DAY of a generated database's plain-SQL dump to stdout: day 0 is the initial
//! dump of SIZE MiB; each later day applies the daily mutation of `dumpgen::Database::mutate`
//! (2% of rows updated in runs, 0.3% deleted in runs, 1% appended), or with `uniform` that of
//! `Database::mutate_uniform` (the same rates, single rows at random places, updated rows moved).
//!
//! Usage: `gen-dump SIZE_MiB DAY [runs|uniform]`.

use std::io::Write;

use vault_benches::dumpgen::{Database, Series};

fn main() {
    const USAGE: &str = "usage: gen-dump SIZE_MiB DAY [runs|uniform]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).map(|a| a.parse::<u64>().expect(USAGE));
    let (mib, day) = (number(0).expect(USAGE), number(1).unwrap_or(0));
    let series = match args.get(2).map(String::as_str) {
        None | Some("runs") => Series::Runs,
        Some("uniform") => Series::Uniform,
        Some(_) => panic!("{USAGE}"),
    };
    let mut db = Database::new(mib << 20);
    for d in 1..=day {
        db.mutate_series(series, d, 0.02, 0.003, 0.01);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    if db.dump(&mut out).is_ok() {
        let _ = out.flush();
    }
}
