//! HTML rendering of the data structs ([`crate::data`]): pure functions from a struct to a
//! page. Every value from the repository (names, labels, paths, messages) goes through
//! [`escape`]; every path put in a link goes through [`url_path`].

use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use vault_engine::browse::LsReport;

use crate::data::{AppDetail, DiffView, Health, Overview, SnapshotDetail, SnapshotRow, VerifyView};
use crate::escape::escape;
use crate::plot::{line_plot, Marker};

/// Characters left as they are in a path segment of a link.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A snapshot path (`/srv/cms/a b`) as the tail of a URL (`srv/cms/a%20b`), each segment
/// percent-encoded (a `/` inside a name cannot occur; `%2F` would be refused anyway).
pub fn url_path(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn short_time(time: &str) -> String {
    time.get(..19).unwrap_or(time).replacen('T', " ", 1)
}

/// The page around `body`; `refresh` makes the embedded script reload it every that many
/// seconds.
fn page(title: &str, body: &str, refresh: Option<u32>) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · vault</title><link rel="stylesheet" href="/assets/style.css"></head>
<body{refresh}><header><a class="brand" href="/">vault</a><nav><a href="/">Overview</a><a href="/verify">Verify</a><a href="/metrics">Metrics</a></nav><span id="updated"></span></header>
<main><h1>{title}</h1>
{body}</main><script src="/assets/app.js"></script></body></html>
"#,
        title = escape(title),
        refresh = refresh
            .map(|s| format!(r#" data-refresh="{s}""#))
            .unwrap_or_default(),
    )
}

fn badge(health: Health) -> String {
    let word = match health {
        Health::Green => "OK",
        Health::Amber => "WARNING",
        Health::Red => "PROBLEM",
    };
    format!(
        r#"<span class="badge {}" data-health="{}">{word}</span>"#,
        health.name(),
        health.name()
    )
}

fn snapshot_state(r: &SnapshotRow) -> String {
    let mut words = vec![if r.complete { "complete" } else { "incomplete" }];
    if r.protected {
        words.push("protected");
    }
    if r.forgotten {
        words.push("forgotten");
    }
    let mut out = escape(&words.join(", "));
    if r.damaged {
        out.push_str(r#" <span class="badge red damaged">DAMAGED</span>"#);
    }
    out
}

fn labels(r: &SnapshotRow) -> String {
    r.labels
        .iter()
        .map(|(k, v)| format!(r#"<span class="label">{}={}</span>"#, escape(k), escape(v)))
        .chain(
            r.tags
                .iter()
                .map(|t| format!(r#"<span class="label tag">{}</span>"#, escape(t))),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn overview(o: &Overview) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<p class="summary">Repository <code>{}</code>: {} snapshots, {} in {} packs. Verify checked {}: {}.</p>"#,
        escape(&o.repository),
        o.snapshots,
        bytes(o.repository_size_bytes),
        o.packs,
        escape(&short_time(&o.verify_checked)),
        if o.verify_clean {
            "clean".to_string()
        } else {
            r#"<a class="problem" href="/verify">problems found</a>"#.to_string()
        }
    );
    body.push_str(r#"<table id="apps"><thead><tr><th>Application</th><th>State</th><th>Newest complete snapshot</th><th>Snapshots</th><th>Last run</th><th>Last verify</th><th>Last restore test</th><th>Repository</th></tr></thead><tbody>"#);
    for a in &o.apps {
        let newest = match (&a.newest_complete, a.newest_age_secs) {
            (Some(s), Some(secs)) => format!(
                r#"<a href="/snapshots/{id}">{short}</a> {time}<br><span class="age">{age} ago</span>"#,
                id = escape(&s.id),
                short = escape(&s.short_id),
                time = escape(&short_time(&s.time)),
                age = age(secs)
            ),
            _ => "none".into(),
        };
        let run = a
            .last_run
            .as_ref()
            .map(|r| {
                format!(
                    "{} {}",
                    escape(&short_time(&r.started)),
                    escape(&format!("{:?}", r.result).to_lowercase())
                )
            })
            .unwrap_or_else(|| "not recorded".into());
        let verify = match (&a.verify, a.verify_cycle_coverage) {
            (Some(v), coverage) => format!(
                "{} {}{}",
                escape(&short_time(v.last_time.as_deref().unwrap_or("never"))),
                match v.last_clean {
                    Some(true) => "clean",
                    Some(false) => "PROBLEMS",
                    None => "",
                },
                coverage
                    .map(|c| format!(", {:.0}% of cycle", c * 100.0))
                    .unwrap_or_default()
            ),
            _ => "not recorded".into(),
        };
        let restore = a
            .last_restore_test
            .as_ref()
            .map(|t| {
                format!(
                    r#"<span class="{class}">{result}</span> {time} ({secs:.1}s)"#,
                    class = if t.ok {
                        "restore-test"
                    } else {
                        "restore-test problem"
                    },
                    result = if t.ok { "passed" } else { "FAILED" },
                    time = escape(&short_time(&t.started)),
                    secs = t.duration_secs,
                )
            })
            .unwrap_or_else(|| "never".into());
        let _ = write!(
            body,
            r#"<tr class="app {health}" data-app="{app}"><td><a href="/apps/{link}">{app}</a></td><td>{badge}<ul class="reasons">{reasons}</ul></td><td>{newest}</td><td>{count}</td><td>{run}</td><td>{verify}</td><td>{restore}</td><td>{size}</td></tr>"#,
            health = a.health.name(),
            app = escape(&a.app),
            link = url_path(&a.app),
            badge = badge(a.health),
            reasons = a
                .reasons
                .iter()
                .map(|r| format!("<li>{}</li>", escape(r)))
                .collect::<String>(),
            count = a.snapshots,
            size = bytes(a.repository_size_bytes),
        );
    }
    body.push_str("</tbody></table>");
    page("Backups", &body, Some(30))
}

pub fn app(a: &AppDetail) -> String {
    let row = &a.row;
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<p>{badge} <ul class="reasons">{reasons}</ul></p>"#,
        badge = badge(row.health),
        reasons = row
            .reasons
            .iter()
            .map(|r| format!("<li>{}</li>", escape(r)))
            .collect::<String>()
    );
    body.push_str(r#"<section class="plots">"#);
    body.push_str(&line_plot(
        "plot-added",
        "Bytes added per snapshot",
        &a.bytes_added,
        Marker::Circle,
        &|v| bytes(v as u64),
    ));
    body.push_str(&line_plot(
        "plot-growth",
        "Repository: stored bytes written up to each snapshot (before prunes)",
        &a.repository_growth,
        Marker::Square,
        &|v| bytes(v as u64),
    ));
    body.push_str(&line_plot(
        "plot-duration",
        "Snapshot duration",
        &a.duration_secs,
        Marker::Triangle,
        &|v| {
            if v < 10.0 {
                format!("{v:.2} s")
            } else {
                format!("{v:.0} s")
            }
        },
    ));
    body.push_str("</section>");
    match &a.retention {
        Some(r) => {
            let _ = write!(
                body,
                "<h2>Retention</h2><p>Policy: {}.</p>",
                escape(&r.policy)
            );
        }
        None => body.push_str("<h2>Retention</h2><p>No retention policy configured.</p>"),
    }
    body.push_str(r#"<h2>Snapshots</h2><table id="snapshots"><thead><tr><th>Snapshot</th><th>Time</th><th>Labels</th><th>Files</th><th>Logical size</th><th>Added</th><th>Duration</th><th>State</th><th>Retention</th></tr></thead><tbody>"#);
    for s in &a.list {
        let fate = a
            .retention
            .as_ref()
            .and_then(|r| r.decisions.iter().find(|d| d.id == s.id))
            .map(|d| {
                if d.keep {
                    format!("keep ({})", escape(&d.reasons.join(", ")))
                } else {
                    "forget next".into()
                }
            })
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            body,
            r#"<tr class="snapshot{damaged}" data-id="{id}"><td><a href="/snapshots/{id}">{short}</a></td><td>{time}</td><td>{labels}</td><td>{files}</td><td>{total}</td><td>{added}</td><td>{duration:.1} s</td><td>{state}</td><td>{fate}</td></tr>"#,
            damaged = if s.damaged { " damaged" } else { "" },
            id = escape(&s.id),
            short = escape(&s.short_id),
            time = escape(&short_time(&s.time)),
            labels = labels(s),
            files = s.files,
            total = bytes(s.bytes_total),
            added = bytes(s.bytes_added),
            duration = s.duration_secs,
            state = snapshot_state(s),
        );
    }
    body.push_str("</tbody></table>");
    if !a.history.is_empty() {
        body.push_str("<h2>Runs</h2><table><thead><tr><th>Started</th><th>Result</th><th>Message</th></tr></thead><tbody>");
        for r in &a.history {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&short_time(&r.started)),
                escape(&format!("{:?}", r.result).to_lowercase()),
                escape(&r.message)
            );
        }
        body.push_str("</tbody></table>");
    }
    page(&format!("Application {}", row.app), &body, Some(60))
}

pub fn snapshot(s: &SnapshotDetail, tree: &LsReport) -> String {
    let r = &s.row;
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<p>Application <a href="/apps/{app_link}">{app}</a> · {time} · host {host} · {labels}</p><p>{files} files, {total} logical, {added} added · {state}</p><p class="actions"><a class="download" id="download-snapshot" href="/download/{id}/tar">Download snapshot (.tar.zst)</a>{diff}</p>"#,
        app_link = url_path(&r.app),
        app = escape(&r.app),
        time = escape(&short_time(&r.time)),
        host = escape(&r.host),
        labels = labels(r),
        files = r.files,
        total = bytes(r.bytes_total),
        added = bytes(r.bytes_added),
        state = snapshot_state(r),
        id = escape(&r.id),
        diff = s
            .previous
            .as_ref()
            .map(|p| format!(
                r#" · <a href="/snapshots/{id}/diff">Changes since {short}</a>"#,
                id = escape(&r.id),
                short = escape(p.get(..8).unwrap_or(p))
            ))
            .unwrap_or_default(),
    );
    if !s.problems.is_empty() {
        body.push_str(r#"<div class="problems"><h2>Damage</h2><ul>"#);
        for (kind, paths) in &s.problems {
            let _ = write!(
                body,
                "<li>{}: {}</li>",
                escape(kind),
                escape(&paths.join(", "))
            );
        }
        body.push_str("</ul></div>");
    }
    // Breadcrumbs of the directory shown.
    let mut crumbs = format!(r#"<a href="/snapshots/{}">/</a>"#, escape(&r.id));
    let mut so_far = String::new();
    for part in tree.path.split('/').filter(|p| !p.is_empty()) {
        so_far.push('/');
        so_far.push_str(part);
        let _ = write!(
            crumbs,
            r#" <a href="/snapshots/{}/tree/{}">{}</a> /"#,
            escape(&r.id),
            url_path(&so_far),
            escape(part)
        );
    }
    let _ = write!(
        body,
        r#"<h2>Files</h2><p class="crumbs">{crumbs}{dir}</p><table id="tree"><thead><tr><th>Name</th><th>Type</th><th>Mode</th><th>Owner</th><th>Size</th><th>Modified</th><th></th></tr></thead><tbody>"#,
        dir = if tree.path != "/" {
            format!(
                r#" · <a class="download" href="/download/{}/tar/{}">Download this directory (.tar.zst)</a>"#,
                escape(&r.id),
                url_path(&tree.path)
            )
        } else {
            String::new()
        }
    );
    for e in &tree.entries {
        let name = e.path.rsplit('/').next().unwrap_or(&e.path);
        let link = url_path(&e.path);
        let (name_cell, action) = match e.kind {
            "dir" => (
                format!(
                    r#"<a href="/snapshots/{}/tree/{link}">{}/</a>"#,
                    escape(&r.id),
                    escape(name)
                ),
                format!(
                    r#"<a class="download" href="/download/{}/tar/{link}">.tar.zst</a>"#,
                    escape(&r.id)
                ),
            ),
            "file" => (
                escape(name),
                format!(
                    r#"<a class="download file" href="/download/{}/file/{link}">download</a>"#,
                    escape(&r.id)
                ),
            ),
            "symlink" => (
                format!(
                    "{} → {}",
                    escape(name),
                    escape(e.target.as_deref().unwrap_or(""))
                ),
                String::new(),
            ),
            _ => (escape(name), String::new()),
        };
        let owner = if e.user.is_empty() {
            e.uid.to_string()
        } else {
            e.user.clone()
        };
        let _ = write!(
            body,
            r#"<tr class="entry {kind}"><td>{name_cell}</td><td>{kind}</td><td><code>{mode:04o}</code></td><td>{owner}</td><td>{size}</td><td>{mtime}</td><td>{action}</td></tr>"#,
            kind = e.kind,
            mode = e.mode,
            owner = escape(&owner),
            size = if e.kind == "file" {
                bytes(e.size)
            } else {
                String::new()
            },
            mtime = escape(&short_time(&e.mtime)),
        );
    }
    body.push_str("</tbody></table>");
    page(&format!("Snapshot {}", r.short_id), &body, None)
}

pub fn diff(d: &DiffView) -> String {
    let mut body = String::new();
    match (&d.previous, &d.diff) {
        (Some(previous), Some(diff)) => {
            let s = &diff.summary;
            let _ = write!(
                body,
                r#"<p>From <a href="/snapshots/{p}">{ps}</a> to <a href="/snapshots/{n}">{ns}</a>: {} added, {} removed, {} modified, {} metadata only, {} type changed; +{} −{} ~{}.</p><table id="diff"><thead><tr><th></th><th>Path</th><th>Change</th><th>Size before</th><th>Size after</th><th>Bytes</th></tr></thead><tbody>"#,
                s.added,
                s.removed,
                s.modified,
                s.metadata,
                s.type_changed,
                bytes(s.bytes_added),
                bytes(s.bytes_removed),
                bytes(s.bytes_modified),
                p = escape(previous),
                ps = escape(previous.get(..8).unwrap_or(previous)),
                n = escape(&d.snapshot),
                ns = escape(d.snapshot.get(..8).unwrap_or(&d.snapshot)),
            );
            for c in &diff.changes {
                let _ = write!(
                    body,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    c.change.symbol(),
                    escape(&c.path),
                    escape(&format!("{:?}", c.change).to_lowercase()),
                    c.size_before.map(bytes).unwrap_or_default(),
                    c.size_after.map(bytes).unwrap_or_default(),
                    bytes(c.bytes)
                );
            }
            body.push_str("</tbody></table>");
        }
        _ => body
            .push_str("<p>This is the application's first snapshot: nothing to compare with.</p>"),
    }
    page(
        &format!("Changes in {}", d.snapshot.get(..8).unwrap_or(&d.snapshot)),
        &body,
        None,
    )
}

pub fn verify(v: &VerifyView) -> String {
    let mut body = String::new();
    let r = &v.report;
    let _ = write!(
        body,
        r#"<p>{badge} Structural verify run by this server at {checked}: {snap} snapshots, {trees} trees, {packs} packs ({read} read whole, the ones recorded as damaged). Packs are read whole by <code>vault verify --read-data</code> or the verify step of <code>vault run</code>.</p>"#,
        badge = badge(if v.clean { Health::Green } else { Health::Red }),
        checked = escape(&short_time(&v.checked)),
        snap = r.snapshots,
        trees = r.trees,
        packs = r.packs,
        read = r.packs_read,
    );
    if r.problems.is_empty() {
        body.push_str(r#"<p id="no-problems">No problem found.</p>"#);
    } else {
        body.push_str(r#"<table id="problems"><thead><tr><th>Problem</th><th>Object</th><th>Detail</th><th>Affected snapshots and paths</th></tr></thead><tbody>"#);
        for p in &r.problems {
            let object = p
                .pack
                .map(|id| format!("pack {}", id.to_hex()))
                .or_else(|| p.blob.map(|b| format!("blob {}", b.to_hex())))
                .unwrap_or_default();
            let affected: String = p
                .affected
                .iter()
                .map(|(id, a)| {
                    format!(
                        r#"<li><a href="/snapshots/{id}">{short}</a>: {paths}{more}</li>"#,
                        id = id.to_hex(),
                        short = id.short(),
                        paths = escape(&a.paths.join(", ")),
                        more = if a.more > 0 {
                            format!(" and {} more", a.more)
                        } else {
                            String::new()
                        }
                    )
                })
                .collect();
            let _ = write!(
                body,
                r#"<tr class="problem-row"><td class="problem">{kind}</td><td><code>{object}</code></td><td>{detail}</td><td><ul>{affected}</ul></td></tr>"#,
                kind = escape(p.kind.name()),
                object = escape(&object),
                detail = escape(&p.detail),
            );
        }
        body.push_str("</tbody></table>");
    }
    if !v.unreadable_snapshots.is_empty() {
        let _ = write!(
            body,
            "<p>Unreadable snapshot manifests: {}</p>",
            escape(&v.unreadable_snapshots.join(", "))
        );
    }
    body.push_str("<h2>History</h2>");
    if v.history.is_empty() {
        body.push_str("<p>No verify run recorded (pass <code>--config</code> to show the verify steps of <code>vault run</code>).</p>");
    } else {
        body.push_str("<table><thead><tr><th>Started</th><th>Application</th><th>Result</th><th>Message</th></tr></thead><tbody>");
        for h in &v.history {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&short_time(&h.started)),
                escape(&h.app),
                escape(&h.status),
                escape(&h.message)
            );
        }
        body.push_str("</tbody></table>");
    }
    page("Verify", &body, Some(60))
}

pub fn login(message: Option<&str>) -> String {
    let body = format!(
        r#"{}<form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label> <button type="submit">Sign in</button></form>"#,
        message
            .map(|m| format!(r#"<p class="problem">{}</p>"#, escape(m)))
            .unwrap_or_default()
    );
    page("Sign in", &body, None)
}

/// A page saying what went wrong with a request.
pub fn error(status: u16, message: &str) -> String {
    page(
        &format!("Error {status}"),
        &format!("<p>{}</p>", escape(message)),
        None,
    )
}
