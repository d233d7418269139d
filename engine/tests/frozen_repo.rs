//! Frozen version-4 repositories: `engine/tests/data/v4-repo/` (unencrypted) and
//! `engine/tests/data/v4-repo-encrypted/` (encrypted, `repokey`), each described by the sidecar
//! file of the same name with `.json` appended.
//!
//! Both were made by this engine (`Repository::init` on a `LocalBackend`, then `snapshot::run`
//! over the deterministic fixture built below plus one stream). The tests open a copy of each
//! (the encrypted one with `Repository::unlock` and the password [`PASSWORD`]), list its snapshot,
//! check every object against its name and checksums (the encrypted one's packs and manifest
//! decoded with the repository's keys, `repo.encryption()`), restore the snapshot and compare the
//! result with the fixture listing recorded in the sidecar file. They guard against a change that
//! makes existing repositories unreadable. A wrong password must fail with
//! [`Error::WrongPassword`] and write nothing.
//!
//! Version-3 repositories are not readable by version 4, and no version-3 frozen repository is
//! kept: the project brief allows format changes without migrations until encryption and
//! off-site storage have landed. `version_3_repository_is_refused_as_unsupported` checks that a
//! version-3 config is reported as an unsupported version, not as damage.
//!
//! `regenerate_frozen_repository` (ignored) rebuilds both repositories and both sidecars, only
//! with `VAULT_REGENERATE_VECTORS=1`:
//!
//! ```text
//! VAULT_REGENERATE_VECTORS=1 cargo test -p vault-engine --test frozen_repo -- --ignored
//! ```
//! Regenerate only when the format version changes (see `format-spec/README.md`): a new
//! repository has a new random id, new keys and new pack ids, so the diff is the whole directory.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use vault_engine::format::config::{ChunkerConfig, ChunkerParams, Compression, EncryptionConfig};
use vault_engine::format::tree::{Content, EntryKind};
use vault_engine::format::{self, pack, sealed};
use vault_engine::id::{PackId, SnapshotId};
use vault_engine::keys::keyfile::{self, KdfParams};
use vault_engine::keys::Encryption;
use vault_engine::repo::Password;
use vault_engine::snapshot::{self, SnapshotOptions, StreamSource};
use vault_engine::storage::LocalBackend;
use vault_engine::{restore, Error, InitOptions, NoProgress, Repository, RestoreOptions};

/// One frozen repository.
#[derive(Clone, Copy)]
struct Frozen {
    /// Directory name under `engine/tests/data/`; the sidecar is `<name>.json`.
    name: &'static str,
    encrypted: bool,
}

const PLAIN: Frozen = Frozen {
    name: "v4-repo",
    encrypted: false,
};

const ENCRYPTED: Frozen = Frozen {
    name: "v4-repo-encrypted",
    encrypted: true,
};

/// The password of the encrypted frozen repository's one key file.
const PASSWORD: &str = "vault frozen password";

/// Argon2id at its cheapest, so that unlocking in a test takes milliseconds.
const FROZEN_KDF: KdfParams = KdfParams {
    memory_kib: 64,
    passes: 1,
    parallelism: 1,
};

fn password(text: &str) -> Password {
    zeroize::Zeroizing::new(text.as_bytes().to_vec())
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

impl Frozen {
    fn dir(self) -> PathBuf {
        data_dir().join(self.name)
    }

    fn sidecar(self) -> PathBuf {
        data_dir().join(format!("{}.json", self.name))
    }

    fn options(self) -> InitOptions {
        InitOptions {
            encryption: self.encrypted.then(|| (password(PASSWORD), FROZEN_KDF)),
            ..frozen_options()
        }
    }

    /// Opens the repository at `dir` as a user would: unlocked with [`PASSWORD`] if encrypted.
    fn open(self, dir: &Path, cache: &Path) -> vault_engine::Result<Repository> {
        let backend = Arc::new(LocalBackend::new(dir));
        if self.encrypted {
            Repository::unlock(backend, cache, &|| Ok(password(PASSWORD)))
        } else {
            Repository::open(backend, cache)
        }
    }
}

/// Where the generator builds the fixture; it is recorded in the snapshots, so it is fixed.
const FIXTURE: &str = "/tmp/vault-v4-fixture";
const STREAM_NAME: &str = "db/dump.sql";
const SNAPSHOT_TIME: &str = "2024-01-02T03:04:05Z";
const HOST: &str = "frozen-host";

// ---------------------------------------------------------------------------------------------
// Deterministic content.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// About `len` bytes of pseudo-random words: compressible, and long enough to need chunk lists
/// at the frozen repository's small chunk sizes.
fn words(len: usize) -> Vec<u8> {
    const VOCABULARY: &[&str] = &[
        "vault",
        "pack",
        "blob",
        "chunk",
        "tree",
        "snapshot",
        "manifest",
        "index",
        "restore",
        "content",
        "defined",
        "digest",
        "zstd",
        "frame",
        "trailer",
        "footer",
        "header",
        "entry",
        "inode",
        "device",
        "symlink",
        "directory",
        "file",
        "stream",
        "window",
        "gear",
        "mask",
        "durable",
        "atomic",
        "rename",
        "fsync",
        "cache",
    ];
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let mut out = Vec::with_capacity(len + 64);
    let mut line = 0;
    while out.len() < len {
        line += 1;
        out.extend_from_slice(format!("{line:05}:").as_bytes());
        for _ in 0..10 {
            out.push(b' ');
            out.extend_from_slice(
                VOCABULARY[(rng.next() % VOCABULARY.len() as u64) as usize].as_bytes(),
            );
        }
        out.push(b'\n');
    }
    out
}

fn noise(len: usize) -> Vec<u8> {
    let mut rng = XorShift(0xfeed_face_cafe_beef);
    (0..len).map(|_| (rng.next() >> 56) as u8).collect()
}

fn dump_sql() -> Vec<u8> {
    let mut out = b"CREATE TABLE t (id integer PRIMARY KEY, name text);\n".to_vec();
    let mut rng = XorShift(42);
    for i in 0..400 {
        out.extend_from_slice(
            format!(
                "INSERT INTO t VALUES ({i}, 'name-{:08x}');\n",
                rng.next() as u32
            )
            .as_bytes(),
        );
    }
    out
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let times = [
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: valid path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds the fixture directory at `root` with fixed content, modes and modification times.
fn build_fixture(root: &Path) {
    let _ = std::fs::remove_dir_all(root);
    let t = 1_700_000_000i64;
    for dir in ["", "bin", "docs", "links", "a", "a/b", "a/b/c"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    write_file(&root.join("hello.txt"), b"hello, vault\n", 0o644);
    write_file(&root.join("empty"), b"", 0o600);
    write_file(
        &root.join("bin/tool.sh"),
        b"#!/bin/sh\necho vault\n",
        0o4755,
    );
    write_file(&root.join("docs/words.txt"), &words(96 * 1024), 0o644);
    write_file(&root.join("docs/noise.bin"), &noise(6000), 0o640);
    write_file(&root.join("docs/zeros.bin"), &vec![0u8; 64 * 1024], 0o644);
    write_file(&root.join("a/b/c/deep.txt"), b"deep\n", 0o444);
    write_file(
        &root.join(std::ffi::OsStr::from_bytes(b"name-\xff.txt")),
        b"a name that is not UTF-8\n",
        0o644,
    );
    write_file(&root.join("links/first"), b"linked content\n", 0o644);
    std::fs::hard_link(root.join("links/first"), root.join("links/second")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", root.join("links/to-hello")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("links/dangling")).unwrap();
    let fifo = CString::new(root.join("pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    std::fs::set_permissions(root.join("pipe"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(root.join("a/b"), std::fs::Permissions::from_mode(0o700)).unwrap();
    // Times last, children before their directories.
    let times: &[(&[u8], i64, i64)] = &[
        (b"hello.txt", t + 1, 500_000_000),
        (b"empty", t + 2, 0),
        (b"bin/tool.sh", t + 3, 1),
        (b"docs/words.txt", t + 4, 0),
        (b"docs/noise.bin", t + 5, 999_999_999),
        (b"docs/zeros.bin", t + 6, 0),
        (b"a/b/c/deep.txt", -1_000_000, 0),
        (b"name-\xff.txt", t + 7, 0),
        (b"links/first", t + 8, 0),
        (b"links/to-hello", t + 9, 250),
        (b"links/dangling", t + 10, 0),
        (b"pipe", t + 11, 0),
        (b"a/b/c", t + 20, 0),
        (b"a/b", t + 21, 0),
        (b"a", t + 22, 0),
        (b"bin", t + 23, 0),
        (b"docs", t + 24, 0),
        (b"links", t + 25, 0),
        (b"", t + 30, 123),
    ];
    for (name, sec, nsec) in times {
        set_mtime(&root.join(std::ffi::OsStr::from_bytes(name)), *sec, *nsec);
    }
}

// ---------------------------------------------------------------------------------------------
// Listing a directory tree, for comparing the fixture with its restore.

/// A path relative to the listed root, with bytes outside printable ASCII as `%xx`.
fn escape(path: &[u8]) -> String {
    let mut out = String::new();
    for &b in path {
        if b.is_ascii_graphic() && b != b'%' || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out
    }
}

fn listing(root: &Path) -> Value {
    fn walk(
        root: &Path,
        rel: &Path,
        out: &mut BTreeMap<String, Value>,
        inodes: &mut HashMap<(u64, u64), String>,
    ) {
        let path = root.join(rel);
        let stat = std::fs::symlink_metadata(&path).unwrap();
        let name = escape(rel.as_os_str().as_bytes());
        let ft = stat.file_type();
        let mut v = json!({
            "mode": format!("{:04o}", stat.mode() & 0o7777),
            "mtime": [stat.mtime(), stat.mtime_nsec()],
        });
        if ft.is_dir() {
            v["kind"] = json!("directory");
            let mut children: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for child in children {
                walk(root, &rel.join(child), out, inodes);
            }
        } else if ft.is_file() {
            v["kind"] = json!("file");
            let data = std::fs::read(&path).unwrap();
            v["size"] = json!(data.len());
            v["blake3"] = json!(blake3::hash(&data).to_hex().to_string());
            if stat.nlink() > 1 {
                let first = inodes
                    .entry((stat.dev(), stat.ino()))
                    .or_insert_with(|| name.clone());
                if *first != name {
                    v["same_file_as"] = json!(first.clone());
                }
            }
        } else if ft.is_symlink() {
            v["kind"] = json!("symlink");
            // Symlink permissions are not restored (Linux ignores them).
            v.as_object_mut().unwrap().remove("mode");
            v["target"] = json!(escape(
                std::fs::read_link(&path).unwrap().as_os_str().as_bytes()
            ));
        } else if ft.is_fifo() {
            v["kind"] = json!("fifo");
        } else {
            v["kind"] = json!("other");
        }
        out.insert(name, v);
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out, &mut HashMap::new());
    json!(out)
}

// ---------------------------------------------------------------------------------------------
// The generator.

fn frozen_options() -> InitOptions {
    InitOptions {
        chunker: ChunkerConfig {
            stream: ChunkerParams {
                min: 512,
                avg: 2048,
                max: 8192,
            },
            file: ChunkerParams {
                min: 256,
                avg: 1024,
                max: 4096,
            },
        },
        compression: Compression::Zstd { level: 1 },
        pack_target_size: 1 << 20,
        encryption: None,
    }
}

/// Removes every empty directory under `dir` (children first): a git checkout keeps none, so
/// the working tree is made to look like one.
fn remove_empty_dirs(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            remove_empty_dirs(&path);
            if std::fs::read_dir(&path).unwrap().next().is_none() {
                std::fs::remove_dir(&path).unwrap();
            }
        }
    }
}

/// Writes the frozen repository `which` with one snapshot of the fixture (already built at
/// [`FIXTURE`]) and the stream, and its sidecar.
fn generate(which: Frozen, fixture: &Path) {
    let repo_dir = which.dir();
    let _ = std::fs::remove_dir_all(&repo_dir);
    let cache = tempfile::tempdir().unwrap();
    let repo = Repository::init(
        Arc::new(LocalBackend::new(&repo_dir)),
        cache.path(),
        &which.options(),
    )
    .unwrap();
    assert_eq!(repo.encryption().is_on(), which.encrypted);
    let stream = dump_sql();
    let report = snapshot::run(
        &repo,
        SnapshotOptions {
            streams: vec![StreamSource::from_reader(
                STREAM_NAME,
                "stdin",
                Box::new(std::io::Cursor::new(stream.clone())),
            )],
            paths: vec![fixture.to_path_buf()],
            tags: vec!["frozen".into()],
            labels: vec![("purpose".into(), "format-v4".into())],
            host: Some(HOST.into()),
            time: Some(SNAPSHOT_TIME.parse().unwrap()),
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert!(
        report.manifest.complete,
        "{:?}",
        report.manifest.summary.errors
    );
    remove_empty_dirs(&repo_dir);
    let mut sidecar = json!({
        "about": format!("engine/tests/data/{}: a repository written by vault-engine; checked by engine/tests/frozen_repo.rs", which.name),
        "regenerate": "VAULT_REGENERATE_VECTORS=1 cargo test -p vault-engine --test frozen_repo -- --ignored",
        "format_version": FROZEN_VERSION,
        "repository_id": repo.id().to_hex(),
        "encryption": { "scheme": "none" },
        "snapshot_id": report.id.to_hex(),
        "root_tree": report.manifest.tree,
        "time": SNAPSHOT_TIME,
        "host": HOST,
        "source_path": FIXTURE,
        "stream": {
            "path": format!("/{STREAM_NAME}"),
            "size": stream.len(),
            "blake3": blake3::hash(&stream).to_hex().to_string(),
        },
        "fixture": listing(fixture),
    });
    if which.encrypted {
        sidecar["encryption"] = json!({
            "scheme": "repokey",
            "aead": format::config::AEAD,
            "password": PASSWORD,
            "kdf": { "algorithm": "argon2id", "memory_kib": FROZEN_KDF.memory_kib, "passes": FROZEN_KDF.passes, "parallelism": FROZEN_KDF.parallelism },
            "key_id": repo.current_key().expect("unlocked with a key"),
        });
    }
    let mut text = serde_json::to_vec_pretty(&sidecar).unwrap();
    text.push(b'\n');
    std::fs::write(which.sidecar(), text).unwrap();
}

#[test]
#[ignore = "rewrites engine/tests/data/v4-repo*; run with VAULT_REGENERATE_VECTORS=1"]
fn regenerate_frozen_repository() {
    if std::env::var("VAULT_REGENERATE_VECTORS").as_deref() != Ok("1") {
        eprintln!("set VAULT_REGENERATE_VECTORS=1 to rewrite engine/tests/data/v4-repo*");
        return;
    }
    let fixture = Path::new(FIXTURE);
    build_fixture(fixture);
    for which in [PLAIN, ENCRYPTED] {
        generate(which, fixture);
    }
    std::fs::remove_dir_all(fixture).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The tests.

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `root` (relative path -> bytes).
fn snapshot_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Opens a copy of `which`, checks every object, restores its snapshot and compares it with the
/// sidecar's listing.
fn check_frozen(which: Frozen) {
    let expected: Value = serde_json::from_slice(&std::fs::read(which.sidecar()).unwrap()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    copy_tree(&which.dir(), &repo_dir);
    let before = snapshot_files(&repo_dir);
    let cache = work.path().join("cache");

    let repo = which.open(&repo_dir, &cache).unwrap();
    assert!(repo.notices().is_empty(), "{:?}", repo.notices());
    assert_eq!(repo.config().version, FROZEN_VERSION);
    assert_eq!(expected["format_version"], json!(FROZEN_VERSION));
    assert_eq!(
        repo.id().to_hex(),
        expected["repository_id"].as_str().unwrap()
    );
    // The index cache lives at <cache root>/<repository id>/at-<location digest>/index.redb.
    let index = repo.index().path();
    assert!(index.is_file());
    assert!(index.starts_with(cache.join(repo.id().to_hex())));
    assert_eq!(
        index,
        vault_engine::repo::index_path(&cache, &repo.id(), &repo.location())
    );

    // Encryption: the config says so, the repository is unlocked, with the recorded key.
    let encryption: Encryption = repo.encryption().clone();
    assert_eq!(encryption.is_on(), which.encrypted);
    assert_eq!(repo.config().encryption.is_on(), which.encrypted);
    assert_eq!(
        expected["encryption"]["scheme"],
        json!(if which.encrypted { "repokey" } else { "none" })
    );
    match &repo.config().encryption {
        EncryptionConfig::None => assert_eq!(repo.current_key(), None),
        EncryptionConfig::Repokey { aead, .. } => {
            assert_eq!(aead, format::config::AEAD);
            assert_eq!(expected["encryption"]["password"], json!(PASSWORD));
            assert_eq!(
                repo.current_key(),
                Some(expected["encryption"]["key_id"].as_str().unwrap())
            );
        }
    }

    // Listing.
    let (snapshots, bad) = repo.snapshots().unwrap();
    assert!(bad.is_empty());
    assert_eq!(snapshots.len(), 1);
    let info = &snapshots[0];
    assert_eq!(info.id.to_hex(), expected["snapshot_id"].as_str().unwrap());
    assert_eq!(info.manifest.tree, expected["root_tree"].as_str().unwrap());
    assert_eq!(info.manifest.host, HOST);
    assert_eq!(info.manifest.time, SNAPSHOT_TIME);
    assert!(info.manifest.complete);
    assert_eq!(
        info.manifest.paths,
        vec![format!("/{STREAM_NAME}"), FIXTURE.to_string()]
    );

    // Every object matches its name and checksums.
    let (mut keys, mut manifests, mut packs, mut blobs) = (0, 0, 0, 0);
    for (path, bytes) in &before {
        let parts: Vec<&str> = path.iter().map(|p| p.to_str().unwrap()).collect();
        match parts.as_slice() {
            ["config"] => {
                let config = format::config::decode(bytes).unwrap();
                assert_eq!(&config, repo.config());
            }
            ["keys", name] => {
                keys += 1;
                assert!(which.encrypted, "a key file in an unencrypted repository");
                assert_eq!(blake3::hash(bytes).to_hex().as_str(), *name);
                let file = keyfile::decode(bytes).unwrap();
                assert_eq!(file.version, format::OBJECT_VERSION);
                assert_eq!(file.kdf.params, FROZEN_KDF);
                let master = file
                    .unwrap(PASSWORD.as_bytes(), &repo.id())
                    .expect("the password opens the key file");
                assert_eq!(
                    master.to_bytes()[..],
                    encryption.master().unwrap().to_bytes()[..]
                );
                assert!(file.unwrap(b"not the password", &repo.id()).is_none());
            }
            ["snapshots", name] => {
                manifests += 1;
                assert_eq!(SnapshotId::digest(bytes).to_hex(), *name);
                let manifest = format::manifest::decode(&encryption, bytes).unwrap();
                assert_eq!(manifest, info.manifest);
                // The payload is sealed: it does not decode without the keys, and the host name
                // is not in the file.
                assert_eq!(
                    format::manifest::decode(&Encryption::none(), bytes).is_ok(),
                    !which.encrypted
                );
                assert_eq!(contains(bytes, HOST.as_bytes()), !which.encrypted);
            }
            ["packs", fan, name] => {
                packs += 1;
                assert_eq!(PackId::digest(bytes).to_hex(), *name);
                assert_eq!(&name[..2], *fan);
                assert_eq!(
                    pack::decode_pack(&Encryption::none(), bytes).is_ok(),
                    !which.encrypted,
                    "a sealed trailer must not decode without the keys"
                );
                for e in pack::decode_pack(&encryption, bytes).unwrap() {
                    blobs += 1;
                    let stored =
                        &bytes[e.offset as usize..(e.offset + e.stored_len as u64) as usize];
                    let raw =
                        pack::open_blob(&encryption, e.id, e.kind, e.encoding, e.raw_len, stored)
                            .unwrap();
                    pack::check_blob(
                        &encryption,
                        e.id,
                        e.kind,
                        e.encoding,
                        e.raw_len,
                        stored,
                        None,
                    )
                    .unwrap();
                    assert_eq!(e.id, encryption.blob_id(e.kind, &raw));
                    // Keyed ids in an encrypted repository, plain digests otherwise.
                    assert_eq!(e.id == e.kind.digest(&raw), !which.encrypted);
                }
            }
            other => panic!("unexpected file in the repository: {other:?}"),
        }
    }
    assert_eq!(keys, usize::from(which.encrypted));
    assert_eq!(manifests, 1);
    assert!(packs >= 1 && blobs > packs, "{packs} packs, {blobs} blobs");
    // Nothing of the content is readable in an encrypted repository's files.
    if which.encrypted {
        for needle in [&b"hello, vault"[..], b"CREATE TABLE", b"vault-v4-fixture"] {
            for (path, bytes) in &before {
                assert!(!contains(bytes, needle), "{path:?} holds plaintext");
            }
        }
    }

    // The big file's content went through a chunk list; the small ones are inline.
    let words = restore::lookup_path(&repo, info, &format!("{FIXTURE}/docs/words.txt")).unwrap();
    assert!(matches!(&words.kind, EntryKind::File(f) if matches!(f.content, Content::Lists(_))));
    let hello = restore::lookup_path(&repo, info, &format!("{FIXTURE}/hello.txt")).unwrap();
    assert!(matches!(&hello.kind, EntryKind::File(f) if matches!(f.content, Content::Inline(_))));

    // Restore and compare with the fixture as it was.
    let target = work.path().join("restored");
    let report = restore::run(
        &repo,
        info,
        &RestoreOptions::new(target.clone()),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.hardlinks, 1);
    let restored_fixture = target.join(FIXTURE.trim_start_matches('/'));
    assert_eq!(listing(&restored_fixture), expected["fixture"]);
    let stream = std::fs::read(target.join(STREAM_NAME)).unwrap();
    assert_eq!(stream, dump_sql());
    assert_eq!(
        blake3::hash(&stream).to_hex().as_str(),
        expected["stream"]["blake3"].as_str().unwrap()
    );

    // Reading a repository never writes to it.
    assert!(
        snapshot_files(&repo_dir) == before,
        "the repository changed"
    );

    // Writing into it keeps it a version 4 repository (readable by the vault that made it):
    // a changed dump is stored in version 4 packs, without delta chunks.
    let mut changed = dump_sql();
    let middle = changed.len() / 2;
    changed.splice(middle..middle + 8, b"changed!".iter().copied());
    snapshot::run(
        &repo,
        SnapshotOptions {
            streams: vec![StreamSource::from_reader(
                STREAM_NAME,
                "stdin",
                Box::new(std::io::Cursor::new(changed)),
            )],
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    let mut new_packs = 0;
    for (path, bytes) in snapshot_files(&repo_dir) {
        if path.starts_with("packs") && !before.contains_key(&path) {
            new_packs += 1;
            assert_eq!(&bytes[8..12], &FROZEN_VERSION.to_le_bytes());
            let entries = pack::decode_pack(&encryption, &bytes).unwrap();
            assert!(entries.iter().all(|e| e.encoding.base().is_none()));
        }
    }
    assert!(new_packs > 0);
    assert_eq!(
        format::config::decode(&std::fs::read(repo_dir.join("config")).unwrap())
            .unwrap()
            .version,
        FROZEN_VERSION
    );
}

/// The format version of the frozen repositories: every later version reads them.
const FROZEN_VERSION: u32 = 4;

#[test]
fn frozen_v4_repository_opens_verifies_and_restores() {
    check_frozen(PLAIN);
}

#[test]
fn frozen_v4_encrypted_repository_unlocks_verifies_and_restores() {
    check_frozen(ENCRYPTED);
}

#[test]
fn frozen_v4_encrypted_repository_refuses_a_wrong_or_missing_password() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    copy_tree(&ENCRYPTED.dir(), &repo_dir);
    let before = snapshot_files(&repo_dir);
    let cache = work.path().join("cache");
    let backend = || Arc::new(LocalBackend::new(&repo_dir));

    let wrong = Repository::unlock(backend(), &cache, &|| Ok(password("vault frozen Password")));
    match wrong {
        Err(Error::WrongPassword { keys, .. }) => assert_eq!(keys, 1),
        other => panic!("expected WrongPassword, got {other:?}"),
    }
    let empty = Repository::unlock(backend(), &cache, &|| Ok(password("")));
    assert!(
        matches!(empty, Err(Error::WrongPassword { .. })),
        "{empty:?}"
    );
    // `open` is for unencrypted repositories: it asks for no password and refuses.
    let open = Repository::open(backend(), &cache);
    assert!(matches!(open, Err(Error::PasswordNeeded)), "{open:?}");

    // Nothing was written: not to the repository, not to the cache.
    assert!(
        snapshot_files(&repo_dir) == before,
        "the repository changed"
    );
    assert!(!cache.exists() || snapshot_files(&cache).is_empty());

    // The right password still works afterwards.
    ENCRYPTED.open(&repo_dir, &cache).unwrap();
}

#[test]
fn version_3_repository_is_refused_as_unsupported() {
    // The config of a version-3 repository (the JSON of format-spec/vectors/config.json as
    // version 3 wrote it: no `encryption` member) in a version-3 envelope.
    let payload = br#"{
  "version": 3,
  "id": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
  "created": "2024-05-06T07:00:00Z",
  "chunker": {
    "stream": { "min": 4096, "avg": 16384, "max": 65536 },
    "file": { "min": 262144, "avg": 1048576, "max": 4194304 }
  },
  "compression": { "algorithm": "zstd", "level": 1 },
  "pack_target_size": 16777216
}"#;
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    std::fs::write(
        repo_dir.join("config"),
        sealed::encode(sealed::CONFIG_MAGIC, 3, payload),
    )
    .unwrap();
    let open = Repository::open(
        Arc::new(LocalBackend::new(&repo_dir)),
        &work.path().join("cache"),
    );
    match open {
        Err(Error::UnsupportedVersion {
            found, supported, ..
        }) => assert_eq!((found, supported), (3, format::FORMAT_VERSION)),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}
