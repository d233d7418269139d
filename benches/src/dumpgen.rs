//! Deterministic generator of plain-SQL database dumps and their daily mutations, shared by the
//! chunk-parameter measurement and the end-to-end benchmark.

/// A small, fast, seeded PRNG (xorshift64*).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "page",
    "article",
    "draft",
    "published",
    "media",
    "author",
    "review",
    "website",
    "release",
    "content",
    "block",
    "render",
    "cache",
    "asset",
    "link",
];

/// One table row of a dump, as pg_dump's COPY format writes it.
pub fn row(id: u64, version: u64, rng: &mut Rng) -> String {
    let words: Vec<&str> = (0..8 + rng.below(12))
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect();
    format!(
        "{id}\tuser{}@example.com\t{}\t2026-{:02}-{:02} {:02}:{:02}:{:02}\tv{version}\t{}\n",
        id * 7 % 100_003,
        words[0],
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        words.join(" ")
    )
}

/// How a day's changes fall on the tables (issue 19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// Runs of 50-1,000 consecutive rows updated in place and deleted ([`Database::mutate`]):
    /// few, long changed stretches, friendly to content-defined chunking.
    Runs,
    /// Single rows at random positions, updated the way PostgreSQL's MVCC writes them
    /// ([`Database::mutate_uniform`]): many short changed stretches all over the dump.
    Uniform,
}

/// A heap slot whose row was deleted or moved away by an update ([`Series::Uniform`]).
const FREE: (u64, u64) = (u64::MAX, u64::MAX);

/// The state of a database: per table, its heap in dump order, each slot a row's id and version
/// or [`FREE`] (the dump skips free slots).
#[derive(Clone)]
pub struct Database {
    pub tables: Vec<Vec<(u64, u64)>>,
    /// Per table, the indices of its free slots in `tables`, in no particular order.
    pub free: Vec<Vec<usize>>,
    pub next_id: u64,
}

impl Database {
    /// A database of roughly `bytes` of dump text in 4 tables.
    pub fn new(bytes: u64) -> Self {
        let rows = bytes / 110;
        let per_table = rows / 4;
        let tables = (0..4)
            .map(|t| (0..per_table).map(|i| (t * per_table + i, 0)).collect())
            .collect();
        Database {
            tables,
            free: vec![Vec::new(); 4],
            next_id: 4 * per_table,
        }
    }

    /// A database whose day-0 dump is about `bytes` long (its rows are longer than
    /// [`Self::new`] assumes, so the size is calibrated on a small one first).
    pub fn with_dump_size(bytes: u64) -> Self {
        let probe = 4u64 << 20;
        let actual = Database::new(probe).dump_bytes().len() as f64;
        Database::new((bytes as f64 * probe as f64 / actual) as u64)
    }

    /// One day of changes, as applications make them: runs of 50-1000 consecutive rows
    /// updated in place (`updated` of all rows) and deleted (`deleted`), plus `appended` new rows
    /// at each table's end.
    pub fn mutate(&mut self, day: u64, updated: f64, deleted: f64, appended: f64) {
        // Removing runs shifts the heap, which would invalidate the uniform series' free list.
        assert!(
            self.free.iter().all(Vec::is_empty),
            "one series per database"
        );
        let mut rng = Rng::new(0xDA7 + day);
        for table in &mut self.tables {
            let n = table.len() as u64;
            let mut budget = (n as f64 * updated) as u64;
            while budget > 0 {
                let run = (50 + rng.below(951)).min(budget);
                let start = rng.below(n.saturating_sub(run).max(1));
                for row in &mut table[start as usize..(start + run) as usize] {
                    row.1 = day;
                }
                budget -= run;
            }
            let mut budget = (n as f64 * deleted) as u64;
            while budget > 0 && !table.is_empty() {
                let run = (50 + rng.below(951)).min(budget).min(table.len() as u64);
                let start = rng.below(table.len() as u64 - run + 1) as usize;
                table.drain(start..start + run as usize);
                budget -= run;
            }
            for _ in 0..(n as f64 * appended) as u64 {
                table.push((self.next_id, day));
                self.next_id += 1;
            }
        }
    }

    /// One day of the given series' changes (`updated`, `deleted`, `appended` are fractions of
    /// each table's live rows).
    pub fn mutate_series(
        &mut self,
        series: Series,
        day: u64,
        updated: f64,
        deleted: f64,
        appended: f64,
    ) {
        match series {
            Series::Runs => self.mutate(day, updated, deleted, appended),
            Series::Uniform => self.mutate_uniform(day, updated, deleted, appended),
        }
    }

    /// One day of changes spread uniformly, modelling PostgreSQL's heap (MVCC): `deleted` of the
    /// live rows are deleted one by one at random positions, leaving free slots; then `updated`
    /// of them, one by one at random positions, get a new version that is written elsewhere in
    /// the heap: into a random free slot if there is one (left by a delete or an earlier update,
    /// today or before: as if vacuum kept the free space map current), else at the table's end.
    /// The old version's slot becomes free. Since a plain dump follows heap order, an updated
    /// row's line disappears from where it was and its new line appears at an unrelated place.
    /// Last, `appended` new rows go to the table's end (new rows do not reuse free slots here,
    /// so that "appended" stays at the end as in [`Self::mutate`]). The same row may be picked
    /// twice in a day (negligible at these rates). Cost: O(changed rows) plus the dump.
    pub fn mutate_uniform(&mut self, day: u64, updated: f64, deleted: f64, appended: f64) {
        let mut rng = Rng::new(0x0001_F0A1 ^ (day << 24));
        for (table, free) in self.tables.iter_mut().zip(&mut self.free) {
            let live = (table.len() - free.len()) as f64;
            if live == 0.0 {
                continue;
            }
            // A random live slot: free slots are a small fraction, so retries are rare.
            let pick = |table: &[(u64, u64)], rng: &mut Rng| loop {
                let at = rng.below(table.len() as u64) as usize;
                if table[at] != FREE {
                    return at;
                }
            };
            for _ in 0..(live * deleted) as u64 {
                let at = pick(table, &mut rng);
                table[at] = FREE;
                free.push(at);
            }
            for _ in 0..(live * updated) as u64 {
                let at = pick(table, &mut rng);
                let new = (table[at].0, day);
                if free.is_empty() {
                    table.push(new);
                } else {
                    let slot = free.swap_remove(rng.below(free.len() as u64) as usize);
                    table[slot] = new;
                }
                table[at] = FREE;
                free.push(at);
            }
            for _ in 0..(live * appended) as u64 {
                table.push((self.next_id, day));
                self.next_id += 1;
            }
        }
    }

    /// The plain-SQL dump, written to `out`. Row text depends only on (id, version).
    pub fn dump(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "-- PostgreSQL database dump\nSET statement_timeout = 0;\n"
        )?;
        for (t, table) in self.tables.iter().enumerate() {
            writeln!(out, "CREATE TABLE public.t{t} (id bigint, email text, word text, at timestamp, version text, body text);")?;
            writeln!(
                out,
                "COPY public.t{t} (id, email, word, at, version, body) FROM stdin;"
            )?;
            for &(id, version) in table.iter().filter(|&&slot| slot != FREE) {
                let mut rng = Rng::new(id ^ (version << 40));
                out.write_all(row(id, version, &mut rng).as_bytes())?;
            }
            writeln!(out, "\\.\n")?;
        }
        Ok(())
    }

    pub fn dump_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.dump(&mut out).expect("writing to memory");
        out
    }
}

/// The lines of `new` that are not lines of `old`, counted as a multiset, concatenated in
/// `new`'s order: the lines that `diff old new | grep '^>'` prints (without the "> " prefixes).
///
/// diff prints as added the lines of `new` outside a longest common subsequence of the two
/// line sequences. The multiset difference removes the multiset intersection instead, which is
/// at least as large as any common subsequence, so this is never more than a minimal diff adds;
/// the two are equal when the lines common to both keep their relative order. They do for
/// [`Database`]'s dumps of consecutive days: a row's line depends only on (id, version), an
/// update changes the version (so a moved row is a new line, never a moved old one), and
/// deletes and appends do not reorder the other slots. The repeated lines (table headers,
/// `\.`) are in the same order every day. GNU diff without `--minimal` may print a little more
/// on large inputs (its heuristics give up on an optimal alignment); this is the minimal one.
pub fn added_lines(old: &[u8], new: &[u8]) -> Vec<u8> {
    use std::collections::HashMap;
    let mut seen: HashMap<&[u8], u32> = HashMap::new();
    for line in old.split_inclusive(|&b| b == b'\n') {
        *seen.entry(line).or_default() += 1;
    }
    let mut added = Vec::new();
    for line in new.split_inclusive(|&b| b == b'\n') {
        match seen.get_mut(line) {
            Some(count) if *count > 0 => *count -= 1,
            _ => added.extend_from_slice(line),
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dump: &[u8]) -> usize {
        dump.split_inclusive(|&b| b == b'\n').count()
    }

    #[test]
    fn uniform_series_moves_updated_rows_and_is_deterministic() {
        let mut a = Database::new(1 << 20);
        let rows: usize = a.tables.iter().map(Vec::len).sum();
        let day0 = a.dump_bytes();
        a.mutate_uniform(1, 0.02, 0.003, 0.01);
        let mut b = Database::new(1 << 20);
        b.mutate_uniform(1, 0.02, 0.003, 0.01);
        let day1 = a.dump_bytes();
        assert_eq!(day1, b.dump_bytes());
        // 0.3% deleted, 1% appended; updates keep the count.
        let live: usize = a
            .tables
            .iter()
            .zip(&a.free)
            .map(|(t, f)| t.len() - f.len())
            .sum();
        let expected = rows as f64 * (1.0 - 0.003 + 0.01);
        assert!((live as f64 - expected).abs() < 8.0, "{live} vs {expected}");
        // Updates went into free slots, not to the end: the heap grew by the appends only.
        let slots: usize = a.tables.iter().map(Vec::len).sum();
        assert!(slots - rows <= rows / 100 + 4);
        // Added lines: the new versions and the appended rows (~3% of the rows).
        let added = lines(&added_lines(&day0, &day1)) as f64;
        assert!((added - rows as f64 * 0.03).abs() < 16.0, "{added}");
        // A second day still finds the day-1 heap consistent.
        a.mutate_uniform(2, 0.02, 0.003, 0.01);
        let day2 = lines(&a.dump_bytes()) as f64;
        let expected = lines(&day1) as f64 + live as f64 * 0.007;
        assert!((day2 - expected).abs() < 8.0, "{day2} vs {expected}");
    }

    #[test]
    fn added_lines_is_a_multiset_difference_in_new_order() {
        let old = b"h\na\nb\nc\nh\n";
        let new = b"h\nb\nx\nc\nh\nh\ny\n";
        assert_eq!(added_lines(old, new), b"x\nh\ny\n");
    }

    #[test]
    fn runs_series_adds_about_three_percent() {
        let mut db = Database::new(1 << 20);
        let day0 = db.dump_bytes();
        db.mutate_series(Series::Runs, 1, 0.02, 0.003, 0.01);
        let added = lines(&added_lines(&day0, &db.dump_bytes()));
        let rows: usize = db.tables.iter().map(Vec::len).sum();
        assert!(
            added > rows * 2 / 100 && added < rows * 4 / 100,
            "{added} of {rows}"
        );
    }
}
