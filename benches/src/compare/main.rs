//! End-to-end comparison of vault (unencrypted, and encrypted as "vault-enc") with restic and
//! borg on a deterministic application backup: a plain-SQL dump series fed over stdin plus an
//! asset store of mixed files, through the same steps (initial snapshot, daily snapshots, restore
//! of the latest, full data verification, forget + prune). Prints a Markdown table: wall time,
//! CPU time, peak RSS and repository size per step and tool, with vault-enc/vault and vault/peer
//! (and vault-enc/peer) ratios, and the dedup ratio; then, with vault and vault-enc, their
//! snapshot and restore throughput. Last, per day, the bytes each tool added against the dump's
//! physical floor (issue 19): the zstd -19 size of the lines the day's diff adds.
//!
//! Usage: `compare [--preset quick|full] [--dump-mib N] [--blobs-mib N] [--days N] [--keep K]
//! [--dump-as stream|file] [--series runs|uniform] [--blobs-static]
//! [--tools vault,vault-enc,restic,borg] [--work DIR] [--keep-work] [--vault PATH] [--out FILE]`.
//! With `--dump-as file` the dump is written to `corpus/db/app.sql` each day and backed up as a
//! file with the asset store, as a nightly dump job leaves it. `--series` picks the dump's daily
//! changes (`dumpgen::Series`). `--blobs-static` leaves the asset store as it is after day 0, so
//! that the bytes a tool adds on later days are the dump's (and its own metadata's).
//! See benches/README.md.

mod measure;
mod tools;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use measure::Cost;
use tools::{DumpAs, Kind, Tool};
use vault_benches::blobstore::BlobStore;
use vault_benches::dumpgen::{added_lines, Database, Series};

struct Settings {
    dump_mib: u64,
    blobs_mib: u64,
    days: u64,
    keep: u64,
    dump_as: DumpAs,
    series: Series,
    blobs_static: bool,
    tools: Vec<Kind>,
    work: Option<PathBuf>,
    keep_work: bool,
    vault: Option<PathBuf>,
    out: Option<PathBuf>,
    preset: String,
}

fn usage() -> ! {
    eprintln!("usage: compare [--preset quick|full] [--dump-mib N] [--blobs-mib N] [--days N] [--keep K] [--dump-as stream|file] [--series runs|uniform] [--blobs-static] [--tools vault,vault-enc,restic,borg] [--work DIR] [--keep-work] [--vault PATH] [--out FILE]");
    std::process::exit(2)
}

fn settings() -> Settings {
    let mut s = Settings {
        dump_mib: 64,
        blobs_mib: 128,
        days: 3,
        keep: 2,
        dump_as: DumpAs::Stream,
        series: Series::Runs,
        blobs_static: false,
        tools: vec![Kind::Vault, Kind::VaultEnc, Kind::Restic, Kind::Borg],
        work: None,
        keep_work: false,
        vault: None,
        out: None,
        preset: "quick".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The preset first, so that explicit sizes override it wherever they stand.
    if let Some(i) = args.iter().position(|a| a == "--preset") {
        match args.get(i + 1).map(String::as_str) {
            Some("quick") => {}
            Some("full") => {
                (s.dump_mib, s.blobs_mib, s.days, s.keep) = (1024, 2048, 7, 3);
                s.preset = "full".into();
            }
            _ => usage(),
        }
    }
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        let number = |v: String| v.parse::<u64>().unwrap_or_else(|_| usage());
        match arg.as_str() {
            "--preset" => {
                value();
            }
            "--dump-mib" => s.dump_mib = number(value()),
            "--blobs-mib" => s.blobs_mib = number(value()),
            "--days" => s.days = number(value()),
            "--keep" => s.keep = number(value()),
            "--dump-as" => {
                s.dump_as = match value().as_str() {
                    "stream" => DumpAs::Stream,
                    "file" => DumpAs::File,
                    _ => usage(),
                }
            }
            "--series" => {
                s.series = match value().as_str() {
                    "runs" => Series::Runs,
                    "uniform" => Series::Uniform,
                    _ => usage(),
                }
            }
            "--blobs-static" => s.blobs_static = true,
            "--tools" => {
                s.tools = value()
                    .split(',')
                    .map(|t| match t {
                        "vault" => Kind::Vault,
                        "vault-enc" => Kind::VaultEnc,
                        "restic" => Kind::Restic,
                        "borg" => Kind::Borg,
                        _ => usage(),
                    })
                    .collect()
            }
            "--work" => s.work = Some(value().into()),
            "--keep-work" => s.keep_work = true,
            "--vault" => s.vault = Some(value().into()),
            "--out" => s.out = Some(value().into()),
            _ => usage(),
        }
    }
    let listed_twice = |k: &Kind| s.tools.iter().filter(|&t| t == k).count() > 1;
    if s.days == 0 || s.keep == 0 || s.tools.is_empty() || s.tools.iter().any(listed_twice) {
        usage();
    }
    s
}

/// The vault binary next to this one (`target/release/vault`), unless given.
fn vault_binary(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("own path");
        exe.with_file_name("vault")
    })
}

fn version(tool: &Tool) -> String {
    Command::new(&tool.program)
        .args(tool.version_args())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|| "?".into())
}

const STEPS: [&str; 5] = [
    "initial snapshot",
    "daily snapshot (mean per day)",
    "restore latest",
    "verify all data",
    "forget + prune",
];

/// What one tool measured: per step its cost and the repository's bytes after it.
#[derive(Default, Clone)]
struct Results {
    steps: [(Cost, u64); 5],
    cache_bytes: u64,
    /// vault and vault-enc: the cost of `vault list` (opening the repository), after the steps.
    open: Cost,
    /// The repository's bytes after each day's snapshot (day 0 first).
    days: Vec<u64>,
}

/// What day `d` changed in the corpus, tool-independent.
struct DayInput {
    /// zstd -19 bytes of the lines the dump's diff from the day before adds (the dump's floor).
    floor: u64,
    /// Uncompressed bytes of those lines.
    added: u64,
    /// Bytes of the asset store's new files (0 with `--blobs-static`).
    assets_new: u64,
}

/// The dump's physical floor for one day: the lines of `new` that `old` does not have
/// ([`added_lines`]: the multiset difference, equal here to what a minimal `diff old new` marks
/// with `>`), compressed together with zstd at level 19. That is what
/// `diff old new | grep '^>' | zstd -19 | wc -c` measures, less the "> " prefixes and diff's
/// heuristics. It is a floor for storing the day's new content without a delta against earlier
/// text; it counts nothing for where the lines go or which lines went away.
fn floor(old: &[u8], new: &[u8]) -> (u64, u64) {
    let added = added_lines(old, new);
    let packed = zstd::bulk::compress(&added, 19).expect("zstd in memory");
    (packed.len() as u64, added.len() as u64)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn main() {
    let s = settings();
    let work = match &s.work {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("work directory");
            dir.clone()
        }
        None => std::env::temp_dir().join(format!("vault-compare-{}", std::process::id())),
    };
    let work = std::fs::canonicalize({
        std::fs::create_dir_all(&work).expect("work directory");
        &work
    })
    .expect("work directory");
    let vault = vault_binary(s.vault.clone());
    let tools: Vec<Tool> = s
        .tools
        .iter()
        .map(|&kind| {
            let program = match kind {
                Kind::Vault | Kind::VaultEnc => vault.clone(),
                Kind::Restic => "restic".into(),
                Kind::Borg => "borg".into(),
            };
            Tool::new(kind, program, &work)
        })
        .collect();
    let log = work.join("commands.log");
    let fail = |e: std::io::Error| -> ! {
        eprintln!("compare: {e}");
        std::process::exit(1)
    };
    for tool in &tools {
        std::fs::create_dir_all(&tool.dir).unwrap_or_else(|e| fail(e));
        measure::run_all(tool, &tool.init(), &log).unwrap_or_else(|e| fail(e));
    }

    // Day 0: the corpus, then each day's change; every tool snapshots each day's state.
    let corpus = work.join("corpus");
    let blobs = corpus.join("blobs");
    let dump = match s.dump_as {
        DumpAs::Stream => corpus.join("app.sql"),
        DumpAs::File => corpus.join("db/app.sql"),
    };
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap_or_else(|e| fail(e));
    eprintln!("compare: generating the corpus in {}", corpus.display());
    let mut store = BlobStore::create(&blobs, s.blobs_mib << 20).unwrap_or_else(|e| fail(e));
    let mut db = Database::with_dump_size(s.dump_mib << 20);
    let mut results = vec![Results::default(); tools.len()];
    let mut input_bytes = 0u64;
    let mut last_dump = 0;
    let mut previous = db.dump_bytes();
    std::fs::write(&dump, &previous).unwrap_or_else(|e| fail(e));
    let first_dump = previous.len() as u64;
    let mut inputs: Vec<DayInput> = Vec::new();
    let (first_files, first_store) = (store.files(), store.bytes());
    let mut daily = vec![Cost::default(); tools.len()];
    for day in 0..=s.days {
        if day > 0 {
            let assets_new = if s.blobs_static {
                0
            } else {
                store.advance(day).unwrap_or_else(|e| fail(e)).added_bytes
            };
            db.mutate_series(s.series, day, 0.02, 0.003, 0.01);
            let bytes = db.dump_bytes();
            std::fs::write(&dump, &bytes).unwrap_or_else(|e| fail(e));
            last_dump = bytes.len() as u64;
            eprintln!("compare: day {day} floor (zstd -19 of the added lines)");
            let (floor, added) = floor(&previous, &bytes);
            inputs.push(DayInput {
                floor,
                added,
                assets_new,
            });
            previous = bytes;
        }
        input_bytes += std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0) + store.bytes();
        for (i, (tool, result)) in tools.iter().zip(&mut results).enumerate() {
            eprintln!("compare: {} day {day}", tool.name);
            let cost = measure::run_all(tool, &tool.snapshot(day, &dump, &blobs, s.dump_as), &log)
                .unwrap_or_else(|e| fail(e));
            let step = usize::from(day > 0);
            result.days.push(measure::tree_bytes(&tool.repo()));
            if day > 0 {
                daily[i].add(cost);
                let mean = Cost {
                    wall: daily[i].wall / day as f64,
                    cpu: daily[i].cpu / day as f64,
                    rss_kib: daily[i].rss_kib,
                };
                result.steps[step] = (mean, measure::tree_bytes(&tool.repo()));
            } else {
                result.steps[step] = (cost, measure::tree_bytes(&tool.repo()));
            }
        }
    }

    for (tool, result) in tools.iter().zip(&mut results) {
        eprintln!("compare: {} restore, verify, prune", tool.name);
        let target = work.join(format!("restore-{}", tool.name));
        std::fs::create_dir_all(&target).unwrap_or_else(|e| fail(e));
        let cost = measure::run_all(tool, &tool.restore(s.days, &target, s.dump_as), &log)
            .unwrap_or_else(|e| fail(e));
        result.steps[2] = (cost, measure::tree_bytes(&tool.repo()));
        let (restored_dump, restored_store) = tool.restored(&target, &dump, &blobs, s.dump_as);
        measure::same_file(&dump, &restored_dump).unwrap_or_else(|e| fail(e));
        measure::same_tree(&blobs, &restored_store).unwrap_or_else(|e| fail(e));
        std::fs::remove_dir_all(&target).unwrap_or_else(|e| fail(e));

        let cost = measure::run_all(tool, &tool.verify(), &log).unwrap_or_else(|e| fail(e));
        result.steps[3] = (cost, measure::tree_bytes(&tool.repo()));
        let cost = measure::run_all(tool, &tool.prune(s.keep, s.dump_as), &log)
            .unwrap_or_else(|e| fail(e));
        result.steps[4] = (cost, measure::tree_bytes(&tool.repo()));
        result.cache_bytes = measure::tree_bytes(&tool.cache());
        result.open = measure::run_all(tool, &tool.open_only(), &log).unwrap_or_else(|e| fail(e));
    }

    // The report.
    let mut out = String::new();
    let today = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    out += &format!(
        "Preset `{}`, {today}, 2 shared cores. Corpus: dump ({}) {:.0} MiB on day 0 ({:.0} MiB on day {}; series `{}`: each day 2% of rows updated, 0.3% deleted, 1% appended, {}), asset store {} files / {:.0} MiB on day 0 ({} files / {:.0} MiB on day {}; {}); {} daily snapshots after the initial one, keep-last {}; {:.0} MiB input over all snapshots.\n\n",
        s.preset,
        match s.dump_as {
            DumpAs::Stream => "streamed to the tool's stdin",
            DumpAs::File => "written to db/app.sql and backed up as a file",
        },
        mib(first_dump),
        mib(last_dump),
        s.days,
        match s.series {
            Series::Runs => "runs",
            Series::Uniform => "uniform",
        },
        match s.series {
            Series::Runs => "updates and deletes in runs of 50-1,000 consecutive rows",
            Series::Uniform => "single rows at random places, an updated row moved to a free slot of the heap (MVCC)",
        },
        first_files,
        mib(first_store),
        store.files(),
        mib(store.bytes()),
        s.days,
        if s.blobs_static {
            "static after day 0: `--blobs-static`"
        } else {
            "each day ~1% new files, 0.2% deleted"
        },
        s.days,
        s.keep,
        mib(input_bytes)
    );
    out += "Tools: ";
    out += &tools
        .iter()
        .map(|t| format!("{} ({})", t.name, version(t)))
        .collect::<Vec<_>>()
        .join(", ");
    out += "\n\n";
    // Ratio columns, each (numerator, denominator) by position in `tools`: the encryption cost
    // (vault-enc / vault) first, then vault / peer as before, then vault-enc / peer.
    let vault_at = tools.iter().position(|t| t.kind == Kind::Vault);
    let enc_at = tools.iter().position(|t| t.kind == Kind::VaultEnc);
    let peers: Vec<usize> = (0..tools.len()).filter(|&i| !tools[i].is_vault()).collect();
    let mut ratios: Vec<(usize, usize)> = Vec::new();
    if let (Some(v), Some(e)) = (vault_at, enc_at) {
        ratios.push((e, v));
    }
    for mine in [vault_at, enc_at].into_iter().flatten() {
        ratios.extend(peers.iter().map(|&p| (mine, p)));
    }
    out += "| step | metric |";
    for t in &tools {
        out += &format!(" {} |", t.name);
    }
    for &(a, b) in &ratios {
        out += &format!(" {}/{} |", tools[a].name, tools[b].name);
    }
    out += "\n|---|---|";
    for _ in 0..tools.len() + ratios.len() {
        out += "---:|";
    }
    out += "\n";
    let row = |out: &mut String, step: &str, metric: &str, values: &[f64], digits: usize| {
        *out += &format!("| {step} | {metric} |");
        for v in values {
            *out += &format!(" {v:.digits$} |");
        }
        for &(a, b) in &ratios {
            let ratio = values[a] / values[b];
            *out += &format!(" {ratio:.2} |");
        }
        *out += "\n";
    };
    for (i, step) in STEPS.iter().enumerate() {
        let pick = |f: &dyn Fn(&(Cost, u64)) -> f64| -> Vec<f64> {
            results.iter().map(|r| f(&r.steps[i])).collect()
        };
        row(&mut out, step, "wall s", &pick(&|c| c.0.wall), 2);
        row(&mut out, "", "CPU s", &pick(&|c| c.0.cpu), 2);
        row(
            &mut out,
            "",
            "peak RSS MiB",
            &pick(&|c| c.0.rss_kib as f64 / 1024.0),
            0,
        );
        row(&mut out, "", "repo MiB after", &pick(&|c| mib(c.1)), 1);
        if i == 1 {
            // What one rotation costs in space: the growth from day 0 to the last day, per day.
            let added: Vec<f64> = results
                .iter()
                .map(|r| mib(r.steps[1].1.saturating_sub(r.steps[0].1)) / s.days as f64)
                .collect();
            row(&mut out, "", "repo MiB added per day", &added, 1);
        }
    }
    let dedup: Vec<f64> = results
        .iter()
        .map(|r| input_bytes as f64 / r.steps[1].1 as f64)
        .collect();
    row(
        &mut out,
        "all snapshots",
        "dedup ratio (input / repo, higher is better)",
        &dedup,
        1,
    );
    let cache: Vec<f64> = results.iter().map(|r| mib(r.cache_bytes)).collect();
    row(&mut out, "end", "local cache MiB (not in repo)", &cache, 1);
    if let (Some(v), Some(e)) = (vault_at, enc_at) {
        // Issue 8: snapshot and restore throughput, encrypted against unencrypted, same run.
        let day0 = first_dump + first_store;
        let restored = last_dump + store.bytes();
        let moved = [
            (STEPS[0], day0 as f64, "input"),
            (
                STEPS[1],
                (input_bytes - day0) as f64 / s.days as f64,
                "input per day",
            ),
            (STEPS[2], restored as f64, "restored"),
        ];
        let (open_v, open_e) = (results[v].open.wall, results[e].open.wall);
        out += &format!(
            "\nEncryption cost, same run: snapshot and restore throughput (MiB / wall s). \
             Every vault-enc command first derives its key from the password (Argon2id, \
             default cost): `vault list`, which opens the repository and does little else, \
             took {open_e:.2} s for vault-enc, {open_v:.2} s for vault (peak RSS {} / {} MiB). \
             The last column subtracts that open time from both walls (one command per step). \
             The wall and CPU ratios of every step are in the vault-enc/vault column above.\n\n",
            results[e].open.rss_kib / 1024,
            results[v].open.rss_kib / 1024
        );
        out += "| step | MiB | vault MiB/s | vault-enc MiB/s | vault-enc / vault \
                | vault-enc / vault without the open time |\n";
        out += "|---|---:|---:|---:|---:|---:|\n";
        for (i, (step, bytes, what)) in moved.iter().enumerate() {
            let data = mib(*bytes as u64);
            let (wall_v, wall_e) = (results[v].steps[i].0.wall, results[e].steps[i].0.wall);
            let (plain, enc) = (data / wall_v, data / wall_e);
            let net = if wall_e > open_e && wall_v > open_v {
                format!("{:.2}", (wall_v - open_v) / (wall_e - open_e))
            } else {
                "n/a".into()
            };
            out += &format!(
                "| {step} | {data:.0} ({what}) | {plain:.1} | {enc:.1} | {:.2} | {net} |\n",
                enc / plain
            );
        }
    }
    out += &floor_table(&s, &tools, &results, &inputs, &ratios);
    println!("{out}");
    if let Some(path) = &s.out {
        let mut file = std::fs::File::create(path).unwrap_or_else(|e| fail(e));
        file.write_all(out.as_bytes()).unwrap_or_else(|e| fail(e));
    }
    if s.keep_work || s.work.is_some() {
        eprintln!("compare: work directory kept: {}", work.display());
    } else if let Err(e) = std::fs::remove_dir_all(&work) {
        eprintln!("compare: could not remove {}: {e}", work.display());
    }
}

/// Per day: the dump's floor, what each tool's repository grew by, their ratios to the floor,
/// and vault (or vault-enc) over each peer.
fn floor_table(
    s: &Settings,
    tools: &[Tool],
    results: &[Results],
    inputs: &[DayInput],
    ratios: &[(usize, usize)],
) -> String {
    let mut out = String::new();
    out += &format!(
        "\nBytes added per day against the dump's floor (MiB; the floor is the zstd -19 size of \
         the lines the day's diff adds to the dump, `diff old new | grep '^>' | zstd -19`). A \
         tool's bytes are its repository's growth that day: the dump's share, its own metadata{}.\n\n",
        if s.blobs_static {
            ", nothing for the asset store (static after day 0)"
        } else {
            ", and the asset store's new files (their raw size is listed; most are incompressible)"
        }
    );
    out += "| day | added lines MiB | floor MiB |";
    if !s.blobs_static {
        out += " asset store new MiB |";
    }
    for t in tools {
        out += &format!(" {} | {}/floor |", t.name, t.name);
    }
    for &(a, b) in ratios {
        out += &format!(" {}/{} |", tools[a].name, tools[b].name);
    }
    out += "\n|---|---:|---:|";
    let columns = usize::from(!s.blobs_static) + 2 * tools.len() + ratios.len();
    out += &"---:|".repeat(columns);
    out += "\n";
    let mut total = DayInput {
        floor: 0,
        added: 0,
        assets_new: 0,
    };
    let mut grown = vec![0u64; tools.len()];
    let line = |label: String, input: &DayInput, grown: &[u64]| {
        let mut row = format!(
            "| {label} | {:.2} | {:.2} |",
            mib(input.added),
            mib(input.floor)
        );
        if !s.blobs_static {
            row += &format!(" {:.2} |", mib(input.assets_new));
        }
        for &g in grown {
            row += &format!(" {:.2} | {:.2} |", mib(g), g as f64 / input.floor as f64);
        }
        for &(a, b) in ratios {
            row += &format!(" {:.2} |", grown[a] as f64 / grown[b] as f64);
        }
        row + "\n"
    };
    for (d, input) in inputs.iter().enumerate() {
        let day: Vec<u64> = results
            .iter()
            .map(|r| r.days[d + 1].saturating_sub(r.days[d]))
            .collect();
        out += &line(format!("{}", d + 1), input, &day);
        total.floor += input.floor;
        total.added += input.added;
        total.assets_new += input.assets_new;
        for (g, b) in grown.iter_mut().zip(&day) {
            *g += b;
        }
    }
    out += &line(format!("days 1-{}", inputs.len()), &total, &grown);
    out
}
