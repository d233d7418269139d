//! `vault serve` in a real headless browser (Debian's `chromium`, no WebDriver): the DOM after
//! the page's script ran (`--dump-dom`) is checked the way a person reads the page, and each
//! page is kept as a screenshot under `$CARGO_TARGET_TMPDIR/serve-screenshots/` (printed).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// The browser, or a skip (a failure under CI, where .ci/run installs it).
fn chromium() -> Option<PathBuf> {
    required(
        "chromium",
        "apt-get install chromium",
        find_in_path("chromium").ok_or_else(|| "chromium is not on PATH".to_string()),
    )
}

/// Common flags: headless, as root without the sandbox, a private profile.
fn browser(chromium: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(chromium)
        .arg("--headless=new")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.display()))
        .env("HOME", profile);
    cmd
}

/// The DOM of `url` after its scripts ran.
fn dom(chromium: &Path, profile: &Path, url: &str) -> String {
    let out = browser(chromium, profile)
        .arg("--virtual-time-budget=2000")
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A screenshot of `url` into `dir/name.png`.
fn screenshot(chromium: &Path, profile: &Path, url: &str, dir: &Path, name: &str) -> PathBuf {
    let png = dir.join(format!("{name}.png"));
    let _ = fs::remove_file(&png);
    let out = browser(chromium, profile)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1280,900")
        .arg(url)
        .output()
        .unwrap();
    let data = fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot of {url} ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(&data[1..4], b"PNG", "{}", png.display());
    png
}

/// The part of `html` from `start` to the next `end`.
fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in the page:\n{html}"));
    let rest = &html[from..];
    &rest[..rest.find(end).map(|i| i + end.len()).unwrap_or(rest.len())]
}

/// The `<tr …>` row whose opening tag contains `marker`.
fn row<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in the page:\n{html}"));
    let start = html[..at].rfind("<tr").unwrap();
    let rest = &html[start..];
    &rest[..rest.find("</tr>").unwrap() + 5]
}

/// The `href` of the first link whose tag contains `marker`, HTML entities undone.
fn href(html: &str, marker: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in the page"));
    let start = html[..at].rfind("<a ").unwrap();
    let tag = &html[start..start + html[start..].find('>').unwrap()];
    let h = tag.split("href=\"").nth(1).unwrap();
    h[..h.find('"').unwrap()].replace("&amp;", "&")
}

/// Pack files of the repository.
fn packs(repo: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![repo.join("packs")];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                out.insert(e.path());
            }
        }
    }
    out
}

#[test]
fn serve_pages_in_a_headless_browser() {
    let Some(chromium) = chromium() else {
        return;
    };
    let env = Env::init();
    // website: three releases; shop: one snapshot; wiki: two, whose first pack is then damaged.
    let website = env.path("website");
    fs::create_dir_all(website.join("uploads")).unwrap();
    write(&website.join("index.html"), b"<h1>welcome</h1>\n");
    let mut website_ids = Vec::new();
    for (i, release) in ["4.1.0", "4.1.1", "4.2.0"].iter().enumerate() {
        write_generated(
            &website.join(format!("uploads/photo-{i}.jpg")),
            100 + i as u64,
            (i as u64 + 1) * MIB + 17,
            random_bytes,
        );
        let v = env.snapshot([
            "--label",
            "app=website",
            "--label",
            &format!("release={release}"),
            website.to_str().unwrap(),
        ]);
        website_ids.push(snapshot_id(&v));
    }
    let shop = env.path("shop");
    fs::create_dir_all(&shop).unwrap();
    write_generated(&shop.join("catalog.db"), 7, 2 * MIB, random_bytes);
    env.snapshot(["--label", "app=shop", shop.to_str().unwrap()]);
    let wiki = env.path("wiki");
    fs::create_dir_all(&wiki).unwrap();
    write_generated(&wiki.join("pages.db"), 8, 3 * MIB, random_bytes);
    let before = packs(&env.repo);
    let wiki_first = snapshot_id(&env.snapshot(["--label", "app=wiki", wiki.to_str().unwrap()]));
    let wiki_packs: Vec<PathBuf> = packs(&env.repo).difference(&before).cloned().collect();
    write(&wiki.join("notes.txt"), b"more\n");
    env.snapshot(["--label", "app=wiki", wiki.to_str().unwrap()]);
    // Damage: the largest pack the wiki's first snapshot wrote loses its second half (and
    // with it the trailer).
    let damaged = wiki_packs
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .expect("the wiki's snapshot wrote a pack");
    let len = fs::metadata(damaged).unwrap().len();
    chmod(damaged, 0o644);
    fs::OpenOptions::new()
        .write(true)
        .open(damaged)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let server = Server::start(&env, &[]);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-screenshots");
    fs::create_dir_all(&shots).unwrap();
    let profile = env.path("chromium-profile");
    fs::create_dir_all(&profile).unwrap();

    // Overview: one row per application, red for the damaged wiki with the reason in words.
    let overview = dom(&chromium, &profile, &server.url("/"));
    let health = |app: &str| {
        let r = row(&overview, &format!("data-app=\"{app}\""));
        r.split("data-health=\"")
            .nth(1)
            .map(|h| h[..h.find('"').unwrap()].to_string())
            .unwrap_or_else(|| panic!("no state in {r}"))
    };
    assert_eq!(health("website"), "green");
    assert_eq!(health("shop"), "green");
    assert_eq!(health("wiki"), "red");
    let wiki_row = row(&overview, "data-app=\"wiki\"");
    assert!(wiki_row.contains("damaged"), "{wiki_row}");
    assert!(wiki_row.contains(&wiki_first[..8]), "{wiki_row}");
    // The embedded script ran (it fills in when the page was loaded).
    assert!(
        section(&overview, "<span id=\"updated\"", "</span>").contains("loaded"),
        "the page's script did not run"
    );
    screenshot(&chromium, &profile, &server.url("/"), &shots, "overview");

    // Application: its snapshots with labels, and one plot point per snapshot.
    let app = dom(&chromium, &profile, &server.url("/apps/website"));
    for plot in ["plot-added", "plot-growth", "plot-duration"] {
        let svg = section(&app, &format!("id=\"{plot}\""), "</svg>");
        assert_eq!(svg.matches("class=\"point\"").count(), 3, "{plot}: {svg}");
    }
    for (id, release) in website_ids.iter().zip(["4.1.0", "4.1.1", "4.2.0"]) {
        let r = row(&app, &format!("data-id=\"{id}\""));
        assert!(r.contains(&format!("release={release}")), "{r}");
        assert!(!r.contains("DAMAGED"), "{r}");
    }
    screenshot(
        &chromium,
        &profile,
        &server.url("/apps/website"),
        &shots,
        "application",
    );
    let wiki_page = dom(&chromium, &profile, &server.url("/apps/wiki"));
    assert!(
        row(&wiki_page, &format!("data-id=\"{wiki_first}\"")).contains("DAMAGED"),
        "the damaged snapshot is not flagged"
    );
    screenshot(
        &chromium,
        &profile,
        &server.url("/apps/wiki"),
        &shots,
        "application-damaged",
    );

    // Snapshot: browse into uploads, download a file through the page's link.
    let newest = &website_ids[2];
    let root = dom(
        &chromium,
        &profile,
        &server.url(&format!("/snapshots/{newest}")),
    );
    assert!(root.contains("id=\"download-snapshot\""));
    let dir = in_snapshot(&website.join("uploads"));
    let listing = dom(
        &chromium,
        &profile,
        &server.url(&format!("/snapshots/{newest}/tree/{}", url_tail(&dir))),
    );
    let link = href(&listing, "photo-1.jpg\">download");
    let fetched = server.get(&link);
    assert_eq!(fetched.status, 200, "{link}");
    assert!(
        fetched.body == fs::read(website.join("uploads/photo-1.jpg")).unwrap(),
        "the file downloaded through the page differs from the source"
    );
    screenshot(
        &chromium,
        &profile,
        &server.url(&format!("/snapshots/{newest}/tree/{}", url_tail(&dir))),
        &shots,
        "snapshot",
    );
    // The snapshot's .tar.zst link, unpacked by GNU tar, equals the source.
    let archive = server.get(&href(&root, "id=\"download-snapshot\""));
    assert_eq!(archive.status, 200);
    let out = unpack(&env, "website-archive", &archive.body);
    diff_r(
        &website,
        &out.join(in_snapshot(&website).trim_start_matches('/')),
    );

    let diff = dom(
        &chromium,
        &profile,
        &server.url(&format!("/snapshots/{newest}/diff")),
    );
    assert!(diff.contains("photo-2.jpg"), "{diff}");
    screenshot(
        &chromium,
        &profile,
        &server.url(&format!("/snapshots/{newest}/diff")),
        &shots,
        "diff",
    );

    // Verify: the problem with its impact on the wiki's snapshot.
    let verify = dom(&chromium, &profile, &server.url("/verify"));
    let problems = section(&verify, "id=\"problems\"", "</table>");
    assert!(problems.contains("pack_unreadable"), "{problems}");
    assert!(problems.contains(&wiki_first[..8]), "{problems}");
    for id in &website_ids {
        assert!(!problems.contains(&id[..8]), "{problems}");
    }
    screenshot(
        &chromium,
        &profile,
        &server.url("/verify"),
        &shots,
        "verify",
    );
    eprintln!("screenshots of every page: {}", shots.display());
}
