//! Human and JSON renderings of engine reports.

use indicatif::HumanBytes;
use serde_json::{json, Value};
use vault_engine::{Manifest, SnapshotId};

/// The JSON object for one snapshot, as `list --json` and `snapshot --json` print it.
pub fn snapshot_json(
    id: &SnapshotId,
    manifest: &Manifest,
    protected: bool,
    forgotten: bool,
) -> Value {
    json!({
        "protected": protected,
        "forgotten": forgotten,
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": manifest.time,
        "host": manifest.host,
        "paths": manifest.paths,
        "sources": manifest.sources,
        "tags": manifest.tags,
        "labels": manifest.labels,
        "tree": manifest.tree,
        "parent": manifest.parent,
        "complete": manifest.complete,
        "summary": manifest.summary,
        "program_version": manifest.program_version,
    })
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

pub fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}

/// Renders rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{:width$}  ", cell, width = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}
