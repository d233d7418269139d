//! Choosing what to restore: `SNAPSHOT:SUBPATH`, `--include`, and `latest` with filters.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::util::*;

/// A small tree with files at several depths, a symlink, a hard-link pair, an empty directory
/// and a directory whose name looks like a file pattern.
fn build(src: &Path) {
    write(&src.join("top.txt"), b"top\n");
    write(&src.join("top.bin"), &random_bytes(1, 5000));
    write(&src.join("sub/a.txt"), b"a\n");
    write(&src.join("sub/b.bin"), &random_bytes(2, 70_000));
    write(&src.join("sub/deeper/c.txt"), b"c\n");
    write(&src.join("sub/deeper/d.png"), &random_bytes(3, 1234));
    write(&src.join("sub/deeper/deepest/e.txt"), b"e\n");
    write(&src.join("sub/h1"), b"hard\n");
    fs::hard_link(src.join("sub/h1"), src.join("sub/deeper/h2")).unwrap();
    symlink("a.txt", src.join("sub/link.txt")).unwrap();
    fs::create_dir_all(src.join("sub/empty")).unwrap();
    write(
        &src.join("sub/notes.txt/inside.bin"),
        b"in a directory named *.txt\n",
    );
    write(&src.join("other/x.txt"), b"x\n");
    write(&src.join("other/y.bin"), b"y\n");
    chmod(&src.join("sub"), 0o750);
    chmod(&src.join("sub/deeper"), 0o705);
    let mut n = 0;
    for (rel, _) in scan(src).into_iter().rev() {
        n += 1;
        set_mtime(
            &bytes_path(src, &rel),
            1_700_000_000 + n * 61,
            n * 1_000_003,
        );
    }
}

#[test]
fn subpath_restore_puts_directory_contents_in_target() {
    let env = Env::init();
    let src = env.path("src");
    build(&src);
    let snap = env.snapshot([&src]);
    let id = id_of(&snap);
    let sub = src.join("sub");

    let d = env.path("d");
    env.restore(&format!("{id}:{}", sub.display()), &d, Vec::<&str>::new())
        .ok();
    // The target itself takes sub's metadata (mode 0750, mtime).
    assert_same_tree(&sub, &d, Compare::default());

    // Trailing slash, no leading slash, `latest`, a deeper directory.
    let d2 = env.path("d2");
    let rel = sub.to_str().unwrap().trim_start_matches('/');
    env.restore(&format!("latest:{rel}/"), &d2, Vec::<&str>::new())
        .ok();
    assert_same_tree(&sub, &d2, Compare::default());
    let d3 = env.path("d3");
    env.restore(
        &format!("{}:{}", &id[..8], sub.join("deeper").display()),
        &d3,
        Vec::<&str>::new(),
    )
    .ok();
    assert_same_tree(
        &sub.join("deeper"),
        &d3,
        Compare {
            hardlinks: false,
            ..Compare::default()
        },
    );

    // A file subpath lands as target/<name>.
    let f = env.path("f");
    env.restore(
        &format!("{id}:{}", src.join("top.txt").display()),
        &f,
        Vec::<&str>::new(),
    )
    .ok();
    assert_eq!(names(&f), vec!["top.txt"]);
    assert_eq!(fs::read(f.join("top.txt")).unwrap(), b"top\n");

    // A symlink subpath lands as the symlink.
    let l = env.path("l");
    env.restore(
        &format!("{id}:{}", sub.join("link.txt").display()),
        &l,
        Vec::<&str>::new(),
    )
    .ok();
    assert_eq!(
        fs::read_link(l.join("link.txt")).unwrap(),
        Path::new("a.txt")
    );

    // A missing subpath is a usage error and writes nothing.
    let m = env.path("m");
    env.restore(
        &format!("{id}:{}", src.join("nope").display()),
        &m,
        Vec::<&str>::new(),
    )
    .code(2)
    .stderr_has("does not exist");
    assert!(names(&m).is_empty());
    // A subpath through a file or a symlink does not exist either.
    env.restore(
        &format!("{id}:{}", src.join("top.txt/x").display()),
        &m,
        Vec::<&str>::new(),
    )
    .code(2);
    env.restore(
        &format!("{id}:{}", sub.join("link.txt/x").display()),
        &m,
        Vec::<&str>::new(),
    )
    .code(2);
    assert!(names(&m).is_empty());
}

/// The paths of `src` (relative) that a restore with includes matching `matches` must hold:
/// matching entries, everything below a matching directory, and the directories leading to
/// them. Directories with nothing included are not restored.
fn expected_selection(src: &Path, matches: impl Fn(&[u8]) -> bool) -> BTreeSet<Vec<u8>> {
    let all = scan(src);
    let mut keep = BTreeSet::new();
    for rel in all.keys() {
        if rel.is_empty() {
            continue;
        }
        // Matching itself or below a matching directory.
        let mut ancestors = vec![rel.as_slice()];
        for (i, &b) in rel.iter().enumerate() {
            if b == b'/' {
                ancestors.push(&rel[..i]);
            }
        }
        if ancestors.iter().any(|a| matches(a)) {
            keep.insert(rel.clone());
            for a in ancestors.iter().skip(1) {
                keep.insert(a.to_vec());
            }
        }
    }
    keep.insert(Vec::new());
    keep
}

fn restored_set(root: &Path) -> BTreeSet<Vec<u8>> {
    scan(root).into_keys().collect()
}

#[test]
fn include_restores_only_matching_files_and_their_directories() {
    let env = Env::init();
    let src = env.path("src");
    build(&src);
    env.snapshot([&src]);
    let ends_txt = |rel: &[u8]| {
        let name = rel.rsplit(|&b| b == b'/').next().unwrap();
        name.ends_with(b".txt")
    };

    let t = env.path("t");
    env.restore("latest", &t, ["--include", "**/*.txt"]).ok();
    let restored = Env::restored(&t, &src);
    let want = expected_selection(&src, ends_txt);
    assert_eq!(
        restored_set(&restored)
            .iter()
            .map(|p| show(p))
            .collect::<Vec<_>>(),
        want.iter().map(|p| show(p)).collect::<Vec<_>>(),
    );
    // What is restored is exact (content and metadata, including the kept directories).
    let diffs = compare_trees(
        &src,
        &restored,
        Compare {
            hardlinks: false,
            ..Compare::default()
        },
    );
    let unexpected: Vec<&String> = diffs
        .iter()
        .filter(|d| !d.contains("missing in restore"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    // Spot checks of the rule.
    assert!(
        restored.join("sub/notes.txt/inside.bin").is_file(),
        "below a matching directory"
    );
    assert!(!restored.join("sub/b.bin").exists());
    assert!(
        !restored.join("sub/empty").exists(),
        "empty directory without matches restored"
    );

    // An absolute pattern for one subtree, several patterns at once.
    let t2 = env.path("t2");
    let other = src.join("other");
    env.restore(
        "latest",
        &t2,
        [
            "--include",
            &format!("{}/**", other.display()),
            "--include",
            "**/d.png",
        ],
    )
    .ok();
    let mut got: Vec<String> = Vec::new();
    for (rel, node) in scan(&Env::restored(&t2, &src)) {
        if node.kind != Kind::Dir {
            got.push(show(&rel));
        }
    }
    assert_eq!(
        got,
        ["\"other/x.txt\"", "\"other/y.bin\"", "\"sub/deeper/d.png\""]
    );

    // --include together with a subpath: patterns still match full snapshot paths.
    let t3 = env.path("t3");
    env.restore(
        &format!("latest:{}", src.join("sub").display()),
        &t3,
        ["--include", "**/*.png"],
    )
    .ok();
    let files: Vec<String> = scan(&t3)
        .into_iter()
        .filter(|(_, n)| n.kind != Kind::Dir)
        .map(|(r, _)| show(&r))
        .collect();
    assert_eq!(files, ["\"deeper/d.png\""]);

    // A pattern matching nothing restores nothing (and succeeds).
    let t4 = env.path("t4");
    env.restore("latest", &t4, ["--include", "**/*.nothing"])
        .ok();
    assert!(names(&t4).is_empty(), "{:?}", names(&t4));
    // A broken pattern is a usage error.
    env.restore("latest", &env.path("t5"), ["--include", "a[b"])
        .code(2);
}

fn snapshot_with(env: &Env, src: &Path, content: &str, args: &[&str]) -> String {
    write(&src.join("data.txt"), content.as_bytes());
    let mut all: Vec<&std::ffi::OsStr> = vec![src.as_os_str()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    id_of(&env.snapshot(all))
}

#[test]
fn latest_honours_tag_label_and_host_filters() {
    let env = Env::init();
    let src = env.path("src");
    let data = src.join("data.txt");
    let a = snapshot_with(
        &env,
        &src,
        "web\n",
        &[
            "--tag",
            "web",
            "--tag",
            "daily",
            "--label",
            "app=web",
            "--label",
            "env=prod",
            "--host",
            "h-web",
            "--time",
            "2026-01-01T00:00:00Z",
        ],
    );
    let b = snapshot_with(
        &env,
        &src,
        "db\n",
        &[
            "--tag",
            "db",
            "--label",
            "app=db",
            "--label",
            "env=prod",
            "--host",
            "h-db",
            "--time",
            "2026-02-01T00:00:00Z",
        ],
    );
    // Taken last but recorded as the oldest: `latest` goes by recorded time.
    let c = snapshot_with(
        &env,
        &src,
        "old web\n",
        &[
            "--tag",
            "web",
            "--label",
            "app=web",
            "--host",
            "h-web",
            "--time",
            "2025-12-01T00:00:00Z",
        ],
    );

    let content_of = |spec: &str, filter: &[&str]| -> (i32, Vec<u8>) {
        let mut args = vec!["dump", spec, data.to_str().unwrap()];
        args.extend_from_slice(filter);
        let out = env.run(args);
        (out.code, out.stdout)
    };
    assert_eq!(content_of("latest", &[]), (0, b"db\n".to_vec()));
    assert_eq!(
        content_of("latest", &["--tag", "web"]),
        (0, b"web\n".to_vec())
    );
    assert_eq!(
        content_of("latest", &["--tag", "daily"]),
        (0, b"web\n".to_vec())
    );
    assert_eq!(
        content_of("latest", &["--label", "app=web"]),
        (0, b"web\n".to_vec())
    );
    assert_eq!(
        content_of("latest", &["--host", "h-web"]),
        (0, b"web\n".to_vec())
    );
    assert_eq!(
        content_of("latest", &["--host", "h-db"]),
        (0, b"db\n".to_vec())
    );
    assert_eq!(
        content_of("latest", &["--label", "env=prod"]),
        (0, b"db\n".to_vec())
    );
    assert_eq!(content_of(&c, &[]), (0, b"old web\n".to_vec()));
    assert_eq!(
        content_of("latest", &["--tag", "web", "--host", "h-db"]).0,
        2
    );
    assert_eq!(
        content_of("latest", &["--label", "app"]).0,
        2,
        "label without ="
    );

    // restore latest --tag picks the right one.
    let t = env.path("t");
    env.restore("latest", &t, ["--tag", "web"]).ok();
    assert_eq!(fs::read(Env::restored(&t, &data)).unwrap(), b"web\n");
    let t2 = env.path("t2");
    env.restore("latest", &t2, ["--label", "app=db"]).ok();
    assert_eq!(fs::read(Env::restored(&t2, &data)).unwrap(), b"db\n");

    // list filters; results oldest first by recorded time.
    let ids =
        |args: &[&str]| -> Vec<String> { env.list(args.to_vec()).iter().map(id_of).collect() };
    assert_eq!(ids(&[]), [c.clone(), a.clone(), b.clone()]);
    assert_eq!(ids(&["--label", "app=web"]), [c.clone(), a.clone()]);
    assert_eq!(
        ids(&["--label", "app=web", "--label", "env=prod"]),
        vec![a.clone()]
    );
    assert_eq!(ids(&["--label", "env=prod"]), [a.clone(), b.clone()]);
    assert_eq!(ids(&["--tag", "db"]), vec![b.clone()]);
    assert_eq!(ids(&["--tag", "web", "--tag", "daily"]), vec![a.clone()]);
    assert_eq!(ids(&["--host", "h-web"]), [c.clone(), a.clone()]);
    assert!(ids(&["--label", "app=db", "--tag", "web"]).is_empty());

    let listed = env.list(["--label", "app=web", "--label", "env=prod"]);
    let v = &listed[0];
    assert_eq!(v["tags"], serde_json::json!(["web", "daily"]));
    assert_eq!(
        v["labels"],
        serde_json::json!({"app": "web", "env": "prod"})
    );
    assert_eq!(v["host"], "h-web");
    assert_eq!(v["time"], "2026-01-01T00:00:00Z");
    assert_eq!(v["paths"], serde_json::json!([src.to_str().unwrap()]));
}

/// `latest` is the newest by recorded instant. Regression test: times are stored as RFC 3339
/// text with trimmed fractions, which do not sort as text ("12:00:00Z" > "12:00:00.25Z").
#[test]
fn latest_orders_by_instant_not_by_text() {
    let env = Env::init();
    let src = env.path("src");
    let order = [
        ("2026-03-01T12:00:00.55Z", "newest\n"),
        ("2026-03-01T12:00:00Z", "oldest\n"),
        ("2026-03-01T12:00:00.5Z", "third\n"),
        ("2026-03-01T14:00:00.1+02:00", "second\n"), // 12:00:00.1Z, given with an offset
    ];
    let mut ids = BTreeSet::new();
    for (time, content) in order {
        ids.insert(snapshot_with(&env, &src, content, &["--time", time]));
    }
    let data = src.join("data.txt");
    let newest = env.run(["dump", "latest", data.to_str().unwrap()]);
    newest.ok();
    assert_eq!(
        newest.stdout, b"newest\n",
        "latest is not the newest instant"
    );
    let listed: Vec<String> = env
        .list(Vec::<&str>::new())
        .iter()
        .map(|v| v["time"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed,
        [
            "2026-03-01T12:00:00Z",
            "2026-03-01T12:00:00.1Z",
            "2026-03-01T12:00:00.5Z",
            "2026-03-01T12:00:00.55Z"
        ],
        "list is not oldest first (or times are not stored in UTC)"
    );
    assert_eq!(ids.len(), 4);
}

/// A prefix shared by two snapshots is refused as ambiguous (usage error); one more character
/// makes it unique. Two manifests whose ids share 4 hex digits are found by crafting manifests
/// for one tree with different tags until two collide (about 300 tries).
#[test]
fn ambiguous_prefix_is_refused() {
    use crate::hostile::{manifest_file, Craft};
    let env = Env::init();
    let mut craft = Craft::new();
    let file = craft.file(b"f.txt", b"crafted\n");
    let root = craft.tree(vec![file]);
    craft.write_pack(&env.repo);
    let mut seen: std::collections::HashMap<String, (String, Vec<u8>)> = Default::default();
    let (a, b) = (0..100_000)
        .find_map(|i| {
            let (id, bytes) = manifest_file(root, "h", "2026-01-01T00:00:00Z", &format!("t{i}"));
            seen.insert(id[..4].to_string(), (id.clone(), bytes.clone()))
                .map(|other| (other, (id, bytes)))
        })
        .expect("a 4-digit collision");
    for (id, bytes) in [&a, &b] {
        fs::write(env.repo.join("snapshots").join(id), bytes).unwrap();
    }
    let prefix = &a.0[..4];
    let t = env.path("t");
    env.restore(prefix, &t, Vec::<&str>::new())
        .code(2)
        .stderr_has("ambiguous");
    assert!(names(&t).is_empty());
    env.run(["dump", prefix, "/f.txt"])
        .code(2)
        .stderr_has("ambiguous");
    // The shortest unique prefix of each works.
    for (id, _) in [&a, &b] {
        let n = (4..=64)
            .find(|&n| a.0[..n] != b.0[..n])
            .expect("distinct ids");
        let out = env.run(["dump", &id[..n], "/f.txt"]);
        out.ok();
        assert_eq!(out.stdout, b"crafted\n");
    }
}

/// `verify --snapshot latest` takes `--tag`, `--label` and `--host` like every other command
/// that takes `latest`: it checks the newest snapshot they select. (It used to refuse them.)
#[test]
fn verify_latest_honours_tag_label_and_host_filters() {
    let env = Env::init();
    let deep = env.path("deep");
    write(&deep.join("a/b/c/file.txt"), b"three levels down\n");
    let tagged = snapshot_with(
        &env,
        &deep,
        "web\n",
        &["--tag", "web", "--label", "app=web", "--host", "h-web"],
    );
    let flat = env.path("flat");
    let newest = snapshot_with(&env, &flat, "db\n", &[]);
    let trees = |args: &[&str]| {
        let v = env
            .run(["verify", "--json", "--snapshot"].iter().chain(args))
            .ok()
            .json();
        assert_eq!(v["report"]["snapshots"], 1, "{v}");
        v["report"]["trees"].as_u64().unwrap()
    };
    // `deep` has three more directories than `flat`, so the tree counts tell them apart.
    assert_eq!(trees(&[&tagged]), trees(&[&newest]) + 3);
    assert_eq!(trees(&["latest"]), trees(&[&newest]));
    for filter in [
        ["--tag", "web"],
        ["--label", "app=web"],
        ["--host", "h-web"],
    ] {
        let args: Vec<&str> = ["latest"].iter().chain(&filter).copied().collect();
        assert_eq!(trees(&args), trees(&[&tagged]), "{filter:?}");
    }
    env.run(["verify", "--snapshot", "latest", "--tag", "nothing"])
        .code(2)
        .stderr_has("no snapshot matches");
    // Without --snapshot a filter would be ignored: refused instead.
    env.run(["verify", "--tag", "web"])
        .code(2)
        .stderr_has("--snapshot latest");
}
