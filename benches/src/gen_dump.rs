//! Writes day DAY of a generated database's plain-SQL dump to stdout: day 0 is the initial
//! dump of SIZE MiB; each later day applies the daily mutation of `dumpgen::Database::mutate`
//! (2% of rows updated in runs, 0.3% deleted in runs, 1% appended).
//!
//! Usage: `gen-dump SIZE_MiB DAY`.

use std::io::Write;

use vault_benches::dumpgen::Database;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("usage: gen-dump SIZE_MiB DAY"));
    let (mib, day) = (args.next().expect("SIZE_MiB"), args.next().unwrap_or(0));
    let mut db = Database::new(mib << 20);
    for d in 1..=day {
        db.mutate(d, 0.02, 0.003, 0.01);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    if db.dump(&mut out).is_ok() {
        let _ = out.flush();
    }
}
