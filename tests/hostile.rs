//! Hostile repositories: snapshots crafted byte by byte (with `vault_engine::format`) to make a
//! restore write outside its target. Each restore must fail or skip with an error, and nothing
//! outside the target may change.
//!
//! Layout of every test: `<tmp>/sandbox/outside/` holds a victim file and is fingerprinted;
//! the restore target is `<tmp>/sandbox/l1/l2/target`, so `..` steps land in directories the
//! test also watches.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use vault_engine::format::manifest::{self, Manifest, SourceRecord};
use vault_engine::format::pack::{BlobKind, Encoding, PackBuilder};
use vault_engine::format::tree::{
    encode_tree, ChunkRef, Content, Entry, EntryKind, FileData, Metadata, Tree,
};
use vault_engine::format::OBJECT_VERSION;
use vault_engine::id::BlobId;
use vault_engine::{ChunkId, SnapshotSummary, TreeId};

use crate::util::*;

/// Builds blobs into one pack and commits snapshots that reference them.
pub(crate) struct Craft {
    pack: PackBuilder,
    have: HashSet<[u8; 32]>,
}

impl Craft {
    pub(crate) fn new() -> Craft {
        Craft {
            pack: PackBuilder::new(),
            have: HashSet::new(),
        }
    }

    /// Adds a blob (stored raw) under the id the engine gives that kind of blob (format v2:
    /// trees and chunk lists are hashed in their own BLAKE3 domains).
    fn blob(&mut self, kind: BlobKind, raw: &[u8]) -> [u8; 32] {
        let id: BlobId = kind.digest(raw);
        if self.have.insert(id.0) {
            self.pack
                .add(id, kind, Encoding::Raw, raw.len() as u32, raw);
        }
        id.0
    }

    /// A file entry holding `content` in one chunk.
    pub(crate) fn file(&mut self, name: &[u8], content: &[u8]) -> Entry {
        let chunks = if content.is_empty() {
            Vec::new()
        } else {
            vec![ChunkRef {
                id: ChunkId(self.blob(BlobKind::Chunk, content)),
                len: content.len() as u32,
            }]
        };
        Entry {
            name: name.to_vec(),
            meta: meta(0o644),
            kind: EntryKind::File(FileData {
                size: content.len() as u64,
                profile: 1,
                hardlinked: false,
                content: Content::Inline(chunks),
            }),
        }
    }

    fn symlink(&mut self, name: &[u8], target: &[u8]) -> Entry {
        Entry {
            name: name.to_vec(),
            meta: meta(0o777),
            kind: EntryKind::Symlink(target.to_vec()),
        }
    }

    fn dir(&mut self, name: &[u8], entries: Vec<Entry>) -> Entry {
        let id = self.tree(entries);
        Entry {
            name: name.to_vec(),
            meta: meta(0o755),
            kind: EntryKind::Dir(id),
        }
    }

    /// Stores a tree of valid entries (sorted here).
    pub(crate) fn tree(&mut self, mut entries: Vec<Entry>) -> TreeId {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let raw = encode_tree(&Tree { entries });
        TreeId(self.blob(BlobKind::Tree, &raw))
    }

    /// Stores already encoded (possibly invalid) tree bytes.
    fn raw_tree(&mut self, raw: &[u8]) -> TreeId {
        TreeId(self.blob(BlobKind::Tree, raw))
    }

    /// Writes the pack into the repository (the index cache picks it up from its trailer) and
    /// one snapshot per root. Returns the snapshot ids.
    pub(crate) fn commit(self, repo: &Path, roots: &[TreeId]) -> Vec<String> {
        self.write_pack(repo);
        roots
            .iter()
            .enumerate()
            .map(|(i, root)| {
                let (id, file) = manifest_file(
                    *root,
                    "hostile",
                    &format!("2026-01-0{}T00:00:00Z", i + 1),
                    &format!("s{i}"),
                );
                fs::write(repo.join("snapshots").join(&id), file).unwrap();
                id
            })
            .collect()
    }

    /// Writes the pack at `<repo>/packs/<first 2 hex>/<pack id hex>`.
    pub(crate) fn write_pack(self, repo: &Path) {
        let (pack_id, bytes, _) = self.pack.finish(&vault_engine::keys::Encryption::none());
        let hex = pack_id.to_hex();
        let dir = repo.join("packs").join(&hex[..2]);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(&hex), bytes).unwrap();
    }
}

/// A snapshot manifest file for `root` and its id (hex).
pub(crate) fn manifest_file(root: TreeId, host: &str, time: &str, tag: &str) -> (String, Vec<u8>) {
    let m = Manifest {
        version: OBJECT_VERSION,
        time: time.into(),
        host: host.into(),
        paths: vec!["/".into()],
        sources: vec![SourceRecord {
            kind: "path".into(),
            path: "/".into(),
            command: None,
        }],
        tags: vec![tag.into()],
        labels: BTreeMap::new(),
        tree: root.to_hex(),
        parent: None,
        complete: true,
        origin: None,
        replaces: None,
        edited: None,
        summary: SnapshotSummary::default(),
        program_version: "crafted".into(),
    };
    let (id, file) = manifest::encode(&vault_engine::keys::Encryption::none(), &m);
    (id.to_hex(), file)
}

fn meta(mode: u32) -> Metadata {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Metadata {
        mode,
        uid,
        gid,
        mtime_sec: 1_650_000_000,
        mtime_nsec: 5,
        ..Metadata::default()
    }
}

/// Replaces the (length-prefixed) name `placeholder` in encoded tree bytes with `name`, the
/// way the engine's `hostile_names_are_rejected` unit test does: the encoder refuses to write
/// such names itself.
fn splice_name(raw: &mut Vec<u8>, placeholder: &[u8], name: &[u8]) {
    let mut needle = vec![placeholder.len() as u8];
    needle.extend_from_slice(placeholder);
    let hits: Vec<usize> = raw
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "placeholder {:?} found {} times",
        String::from_utf8_lossy(placeholder),
        hits.len()
    );
    let mut with = vec![name.len() as u8];
    with.extend_from_slice(name);
    raw.splice(hits[0]..hits[0] + needle.len(), with);
}

struct Sandbox {
    root: PathBuf,
    outside: PathBuf,
    target: PathBuf,
    before: Vec<String>,
}

impl Sandbox {
    fn new(env: &Env) -> Sandbox {
        let root = env.path("sandbox");
        let outside = root.join("outside");
        write(&outside.join("victim.txt"), b"original victim content\n");
        fs::create_dir_all(outside.join("victim-dir")).unwrap();
        let target = root.join("l1/l2/target");
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        let before = fingerprint(&outside);
        Sandbox {
            root,
            outside,
            target,
            before,
        }
    }

    /// Nothing outside the target changed: `outside` is intact and the directories around the
    /// target hold nothing new.
    #[track_caller]
    fn assert_untouched(&self, what: &str) {
        assert_eq!(
            fingerprint(&self.outside),
            self.before,
            "{what}: files outside the target changed"
        );
        assert_eq!(
            names(&self.root),
            ["l1", "outside"],
            "{what}: written next to the sandbox"
        );
        assert_eq!(
            names(&self.root.join("l1")),
            ["l2"],
            "{what}: written above the target"
        );
        let beside: Vec<_> = names(&self.root.join("l1/l2"))
            .into_iter()
            .filter(|n| n != "target")
            .collect();
        assert!(
            beside.is_empty(),
            "{what}: written next to the target: {beside:?}"
        );
        for p in ["/pwned-by-vault-test", "/tmp/pwned-by-vault-test"] {
            assert!(fs::symlink_metadata(p).is_err(), "{what}: {p} exists");
        }
    }
}

/// Entry names that must never reach the filesystem, each as a directory holding a file and as
/// a file, at the root of the snapshot and nested one level down.
#[test]
fn tree_entries_with_hostile_names_are_refused() {
    let env = Env::init();
    let sandbox = Sandbox::new(&env);
    let outside_abs = sandbox.outside.join("pwned-absolute");
    let hostile: Vec<Vec<u8>> = vec![
        b"..".to_vec(),
        b".".to_vec(),
        b"a/b".to_vec(),
        b"../../../outside/pwned-relative".to_vec(),
        outside_abs.to_str().unwrap().as_bytes().to_vec(),
        b"/pwned-by-vault-test".to_vec(),
        b"x\0y".to_vec(),
        Vec::new(),
    ];

    let mut craft = Craft::new();
    let mut roots = Vec::new();
    let mut labels = Vec::new();
    // The first name is the placeholder itself, left in place: a control proving that the
    // crafted snapshots are valid apart from the spliced name.
    let placeholder = b"PLACEHOLDER-NAME".to_vec();
    for name in std::iter::once(&placeholder).chain(&hostile) {
        for as_dir in [true, false] {
            for nested in [false, true] {
                // A symlink `a` to the outside directory comes first, so a name `a/b` would be
                // written through it if it were ever joined to a path.
                let mut entries = vec![
                    craft.symlink(b"a", sandbox.outside.to_str().unwrap().as_bytes()),
                    craft.file(b"0-ok.txt", b"fine\n"),
                ];
                entries.push(if as_dir {
                    let inner = vec![craft.file(b"pwned-by-vault-test", b"escaped!\n")];
                    craft.dir(&placeholder, inner)
                } else {
                    craft.file(&placeholder, b"escaped!\n")
                });
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                let mut raw = encode_tree(&Tree { entries });
                if *name != placeholder {
                    splice_name(&mut raw, &placeholder, name);
                }
                let hostile_tree = craft.raw_tree(&raw);
                let root = if nested {
                    let top = Entry {
                        name: b"top".to_vec(),
                        meta: meta(0o755),
                        kind: EntryKind::Dir(hostile_tree),
                    };
                    let ok = craft.file(b"ok.txt", b"fine\n");
                    craft.tree(vec![top, ok])
                } else {
                    hostile_tree
                };
                roots.push(root);
                labels.push(format!(
                    "{:?} as {} {}",
                    String::from_utf8_lossy(name),
                    if as_dir { "directory" } else { "file" },
                    if nested { "nested" } else { "at the root" }
                ));
            }
        }
    }
    let ids = craft.commit(&env.repo, &roots);
    // The manifests themselves are fine: list shows them all.
    assert_eq!(env.snapshot_ids().len(), ids.len());

    let target = &sandbox.target;
    let clean = |sandbox: &Sandbox| {
        if sandbox.target.exists() {
            fs::remove_dir_all(&sandbox.target).unwrap();
        }
    };
    // Controls: 4 valid variants (directory/file, root/nested) restore and dump fine.
    for (id, what) in ids.iter().zip(&labels).take(4) {
        env.restore(id, target, Vec::<&str>::new()).ok();
        let top = if what.ends_with("nested") {
            target.join("top")
        } else {
            target.clone()
        };
        assert!(
            top.join("PLACEHOLDER-NAME").exists(),
            "control {what}: not restored"
        );
        assert_eq!(fs::read(top.join("0-ok.txt")).unwrap(), b"fine\n");
        sandbox.assert_untouched(what);
        clean(&sandbox);
        if what.contains("directory nested") {
            let out = env.run(["dump", id, "/top/PLACEHOLDER-NAME/pwned-by-vault-test"]);
            out.ok();
            assert_eq!(out.stdout, b"escaped!\n");
        }
    }
    for (id, what) in ids.iter().zip(&labels).skip(4) {
        let out = env.restore(id, target, Vec::<&str>::new());
        // Refused by the tree decoder ("invalid entry name") as damage, exit code 1.
        out.code(1);
        assert!(
            out.stderr.contains("entry name"),
            "{what}: not refused for its name\n{}",
            out.stderr
        );
        sandbox.assert_untouched(what);
        clean(&sandbox);
        // Neither dump nor a subpath restore gets through.
        let out = env.run(["dump", id, "/top/PLACEHOLDER-NAME/pwned-by-vault-test"]);
        assert!(
            out.code != 0 && out.stdout.is_empty(),
            "{what}: dump succeeded"
        );
        let sub = env.restore(&format!("{id}:/top"), target, Vec::<&str>::new());
        assert_ne!(sub.code, 0, "{what}: subpath restore succeeded");
        assert!(sub.stderr.contains("entry name"), "{what}: {}", sub.stderr);
        sandbox.assert_untouched(what);
        clean(&sandbox);
    }
}

/// A symlink pointing outside is restored as a symlink (that is its content), and a file next
/// to it stays inside. A later restore of a snapshot with a directory of the same name over
/// that target must not write through the symlink.
#[test]
fn restore_never_writes_through_symlinks() {
    let env = Env::init();
    let sandbox = Sandbox::new(&env);
    let outside = sandbox.outside.to_str().unwrap().as_bytes().to_vec();
    let victim = sandbox.outside.join("victim.txt");

    let mut craft = Craft::new();
    // 1: evil -> outside dir, evil2 a file, evil-file -> outside victim file.
    let s1 = {
        let e = vec![
            craft.symlink(b"evil", &outside),
            craft.file(b"evil2", b"harmless\n"),
            craft.symlink(b"evil-file", victim.to_str().unwrap().as_bytes()),
            craft.symlink(b"evil-rel", b"../../../outside"),
        ];
        craft.tree(e)
    };
    // 2: the same names as directories and files, trying to write through them.
    let s2 = {
        let deeper = vec![craft.file(b"pwned2", b"through the symlink\n")];
        let sub = craft.dir(b"sub", deeper);
        let inner = vec![craft.file(b"pwned", b"through the symlink\n"), sub];
        let evil = craft.dir(b"evil", inner);
        let rel_inner = vec![craft.file(b"pwned-rel", b"through the relative symlink\n")];
        let evil_rel = craft.dir(b"evil-rel", rel_inner);
        let e = vec![
            evil,
            evil_rel,
            craft.file(b"evil-file", b"overwritten victim!\n"),
        ];
        craft.tree(e)
    };
    // 3: hard-linked files under names that a prepared target holds as symlinks.
    let s3 = {
        let mut h1 = craft.file(b"h1", b"hard-linked content\n");
        let mut h2 = craft.file(b"h2", b"hard-linked content\n");
        for h in [&mut h1, &mut h2] {
            h.meta.dev = 77;
            h.meta.inode = 88;
            if let EntryKind::File(f) = &mut h.kind {
                f.hardlinked = true;
            }
        }
        let victim_dir = vec![craft.file(b"planted", b"through a planted dir symlink\n")];
        let d = craft.dir(b"dir-link", victim_dir);
        craft.tree(vec![h1, h2, d])
    };
    let ids = craft.commit(&env.repo, &[s1, s2, s3]);
    let target = &sandbox.target;

    env.restore(&ids[0], target, Vec::<&str>::new()).ok();
    assert_eq!(fs::read_link(target.join("evil")).unwrap(), sandbox.outside);
    assert!(fs::symlink_metadata(target.join("evil2"))
        .unwrap()
        .is_file());
    assert_eq!(fs::read(target.join("evil2")).unwrap(), b"harmless\n");
    sandbox.assert_untouched("symlinks restored");

    // Into the same target: refused without --overwrite.
    env.restore(&ids[1], target, Vec::<&str>::new()).code(2);
    sandbox.assert_untouched("second snapshot without --overwrite");
    // With --overwrite the symlinks in the way are replaced, never followed.
    let out = env.restore(&ids[1], target, ["--overwrite"]);
    sandbox.assert_untouched("second snapshot with --overwrite");
    out.ok();
    for d in ["evil", "evil-rel"] {
        assert!(
            fs::symlink_metadata(target.join(d)).unwrap().is_dir(),
            "{d} still a symlink"
        );
    }
    assert_eq!(
        fs::read(target.join("evil/sub/pwned2")).unwrap(),
        b"through the symlink\n"
    );
    assert!(fs::symlink_metadata(target.join("evil-file"))
        .unwrap()
        .is_file());

    // Subpaths through a symlink do not exist.
    env.restore(
        &format!("{}:/evil/anything", ids[0]),
        &env.path("x"),
        Vec::<&str>::new(),
    )
    .code(2);

    // A target prepared with symlinks where the snapshot has files, hard links and a directory.
    let t3 = sandbox.root.join("l1/l2/target");
    fs::remove_dir_all(&t3).unwrap();
    fs::create_dir_all(&t3).unwrap();
    std::os::unix::fs::symlink(&victim, t3.join("h1")).unwrap();
    std::os::unix::fs::symlink(&victim, t3.join("h2")).unwrap();
    std::os::unix::fs::symlink(&sandbox.outside, t3.join("dir-link")).unwrap();
    let out = env.restore(&ids[2], &t3, ["--overwrite"]);
    sandbox.assert_untouched("planted symlinks with --overwrite");
    out.ok();
    for h in ["h1", "h2"] {
        assert!(fs::symlink_metadata(t3.join(h)).unwrap().is_file(), "{h}");
        assert_eq!(fs::read(t3.join(h)).unwrap(), b"hard-linked content\n");
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(t3.join("h1")).unwrap().ino(),
        fs::metadata(t3.join("h2")).unwrap().ino(),
        "hard links not restored as one inode"
    );
    assert!(fs::symlink_metadata(t3.join("dir-link")).unwrap().is_dir());
}

/// A chain of directories nested deeper than any filesystem path allows (and than the restore
/// follows) fails cleanly instead of overflowing the stack or escaping.
#[test]
fn absurdly_deep_tree_fails_cleanly() {
    let env = Env::init();
    let sandbox = Sandbox::new(&env);
    let mut craft = Craft::new();
    let mut tree = craft.tree(vec![craft_file_static()]);
    for _ in 0..5000 {
        tree = craft.tree(vec![Entry {
            name: b"d".to_vec(),
            meta: meta(0o755),
            kind: EntryKind::Dir(tree),
        }]);
    }
    let ids = craft.commit(&env.repo, &[tree]);
    let out = env.restore(&ids[0], &sandbox.target, Vec::<&str>::new());
    // The depth limit of 4096 refuses it (restore has no path length limit: it works through
    // directory descriptors); a clean refusal, not, say, a damaged-blob error from bad
    // crafting, nor a stack overflow.
    out.code(1);
    assert!(
        out.stderr.contains("File name too long") || out.stderr.contains("deeper than"),
        "{}",
        &out.stderr[out.stderr.len().saturating_sub(300)..]
    );
    sandbox.assert_untouched("deep tree");
}

fn craft_file_static() -> Entry {
    Entry {
        name: b"bottom".to_vec(),
        meta: meta(0o644),
        kind: EntryKind::File(FileData {
            size: 0,
            profile: 1,
            hardlinked: false,
            content: Content::Inline(Vec::new()),
        }),
    }
}
