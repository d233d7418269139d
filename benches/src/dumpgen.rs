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

/// The state of a database: per table, the row ids present and their versions.
#[derive(Clone)]
pub struct Database {
    pub tables: Vec<Vec<(u64, u64)>>,
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
            for &(id, version) in table {
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
